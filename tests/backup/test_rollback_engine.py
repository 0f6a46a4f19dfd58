"""A redeploy whose new version migrates the database (a new column) and then cannot
serve (its WSGI module fails): the health gate fails, the previous version runs again, the
database is the pre-swap backup's (the column is gone, a row written before the deploy is
there), and the versions store says `rolled back` and why. The stand-in Loon is a git
checkout, so each build is a version with a revision."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.backup.downtime import assert_downtime_within_bound
from tests.deploy.support import call, make_settings, new_token, running_server
from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    STANDIN,
    Loon,
    deploy,
    ensure_base_image,
    http,
    mariadb_ok,
    retry,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

MIGRATION = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("api", "{leaf}")]
    operations = [migrations.AddField("upload", "extra", models.IntegerField(null=True))]
'''


def migration(server: Path) -> str:
    """MIGRATION after the stand-in's newest migration (two leaves would stop migrate)."""
    leaf = max(p.stem for p in (server / "api" / "migrations").glob("0*.py"))
    return MIGRATION.replace("{leaf}", leaf)


def add_extra(models: Path) -> None:
    """The new column's field, in the Upload model (not whichever class ends the file)."""
    text = models.read_text()
    created = "    created = models.DateTimeField(auto_now_add=True)\n"
    assert created in text
    models.write_text(text.replace(
        created, created + "    extra = models.IntegerField(null=True)\n", 1))


def git(checkout: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(checkout), "-c", "user.name=test", "-c",
                    "user.email=test@example.org", *args], check=True, capture_output=True)


@pytest.fixture
def loon(engine: None, tmp_path: Path):  # type: ignore[no-untyped-def]
    ensure_base_image()
    checkout = tmp_path / "loon-src"
    shutil.copytree(STANDIN, checkout)
    git(checkout, "init", "-q")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "v1")

    d = deploy(tmp_path, "production", https=False)
    d.config["deploymentSettings"].update(loonSourceLocation=str(checkout), healthTimeout=90,
                                          stopTimeout=30)
    d.deployment.config.write_text(json.dumps(d.config, indent=2))
    d.config["checkout"] = str(checkout)
    try:
        d.up()
        yield d
    finally:
        d.cleanup()


def _columns(loon: Loon) -> list[str]:
    out = mariadb_ok(loon, "SELECT column_name FROM information_schema.columns WHERE "
                     "table_schema = DATABASE() AND table_name = 'api_upload' ORDER BY 1",
                     database=loon.mysql["databaseName"])
    return out.split()


def _break(loon: Loon) -> None:
    """Commit a change that migrates (a new column) and then cannot serve."""
    checkout = Path(loon.config["checkout"])
    server = checkout / "apps" / "server"
    (server / "api" / "migrations" / "0002_upload_extra.py").write_text(migration(server))
    add_extra(server / "api" / "models.py")
    wsgi = server / "server" / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + '\nraise RuntimeError("v2 cannot serve")\n')
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "v2: a column, and a server that does not start")


def _store(loon: Loon) -> dict:  # type: ignore[type-arg]
    path = loon.deployment.project / ".build-files" / f"versions.{loon.name}.json"
    return dict(json.loads(path.read_text()))


FILE_URL = f"http://localhost:{HTTP_PORT}/api/files/before.txt"


def _write_before(loon: Loon) -> None:
    retry(lambda: checks.ok(http(FILE_URL, b"written before the deploy", method="PUT")),
          timeout=120)
    assert _columns(loon) == ["created", "id", "name"]


def _assert_restored(loon: Loon, old: str) -> dict:  # type: ignore[type-arg]
    """The old version serves, with the database as it was before the deploy; the failed
    version's record."""
    loon.wait_healthy()
    _, _, body = retry(lambda: checks.ok(http(FILE_URL)), timeout=120)
    assert body == b"written before the deploy"
    assert _columns(loon) == ["created", "id", "name"]
    rows = mariadb_ok(loon, "SELECT name FROM api_upload", database=loon.mysql["databaseName"])
    assert rows.split() == ["before.txt"]
    data = _store(loon)
    assert data["current"] == old
    [new] = [v for v in data["versions"] if v["tag"] != old and v["outcome"] == "rolled back"]
    assert "health gate failed" in new["reason"] and "server" in new["reason"], new
    assert "v2 cannot serve" in new["reason"], new  # the culprit's last lines
    return new


def test_a_failing_new_version_is_rolled_back_with_its_database(loon: Loon) -> None:
    _write_before(loon)
    old = _store(loon)["current"]
    _break(loon)

    result = loon.deployment.run("-d", "--replace", timeout=1800)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    for phase in ("backing up", "swapping", "checking health", "rolled back"):
        assert f"phase: {phase}" in out, (phase, out)
    assert "health gate failed" in out and "server" in out, out
    assert "changed the schema (api.0002_upload_extra): restoring" in out, out
    assert f"rolled back to {old}" in out, out

    _assert_restored(loon, old)
    out_log = (loon.deployment.project / "logs").glob("logs_*/out.log")
    assert any("health gate failed" in p.read_text(errors="replace") for p in out_log)


async def _deploy(srv_url: str, token: str) -> tuple[dict, list[str]]:  # type: ignore[type-arg]
    """POST /deploy, then GET it until it ends; its final answer and the phases seen."""
    ans = await call("POST", f"{srv_url}/deploy", token=token)
    assert ans.status == 202, ans.text
    phases: list[str] = []
    with anyio.fail_after(1800):
        while True:
            got = await call("GET", f"{srv_url}/deploy/{ans.body['id']}", token=token)
            phase = got.body.get("phase")
            if phase and (not phases or phases[-1] != phase):
                phases.append(phase)
            if got.body["status"] not in ("queued", "running"):
                return got.body, phases
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_the_deploy_server_redeploys_then_rolls_back(
        loon: Loon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(loon.deployment.project))
    checkout = Path(loon.config["checkout"])
    views = checkout / "apps" / "server" / "api" / "views.py"
    views.write_text(views.read_text().replace('"loon": "stand-in"', '"loon": "stand-in v2"'))
    git(checkout, "commit", "-qam", "v2: a change that works")
    token = new_token()
    settings = make_settings(tmp_path / "srv", token, config_file=loon.deployment.config,
                             repo_dir=checkout)
    sync = anyio.to_thread.run_sync  # the helpers below block (and run anyio themselves)
    async with running_server(settings) as srv:
        done, phases = await _deploy(srv.url, token)
        log = Path(done["logDir"], "deploy.log").read_text()
        assert done["status"] == "succeeded", (done, log[-4000:])
        assert phases[:4] == ["building", "backing up", "swapping", "checking health"], phases
        assert done["health"].startswith("health gate passed in"), done
        assert "decided by" in done["health"], done
        assert "passing its health gate" in log, log[-4000:]
        _, _, body = await sync(lambda: retry(
            lambda: checks.ok(http(f"http://localhost:{HTTP_PORT}/api/")), timeout=60))
        assert json.loads(body)["loon"] == "stand-in v2"
        await sync(_write_before, loon)
        good = (await sync(_store, loon))["current"]

        await sync(_break, loon)
        done, phases = await _deploy(srv.url, token)
        log = Path(done["logDir"], "deploy.log").read_text()
        assert done["status"] == "failed" and done["phase"] == "rolled back", (done, log[-4000:])
        assert phases[:4] == ["building", "backing up", "swapping", "checking health"], phases
        assert done["reason"].startswith("rolled back: health gate failed"), done
        assert done["health"].startswith("health gate failed"), done
    new = await sync(_assert_restored, loon, good)
    assert new["reason"].split(";")[0] in done["reason"]
    _, _, body = await sync(lambda: retry(
        lambda: checks.ok(http(f"http://localhost:{HTTP_PORT}/api/")), timeout=60))
    assert json.loads(body)["loon"] == "stand-in v2"

def test_loon_rollback_by_hand_goes_back_with_the_database(loon: Loon) -> None:
    """v2 adds a column and works; `loon rollback` returns to v1 and, since the schema
    changed, puts back the database of the backup taken before v2's swap."""
    _write_before(loon)
    v1 = _store(loon)["current"]
    checkout = Path(loon.config["checkout"])
    server = checkout / "apps" / "server"
    (server / "api" / "migrations" / "0002_upload_extra.py").write_text(migration(server))
    add_extra(server / "api" / "models.py")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "v2: a column, and it works")
    result = loon.deployment.run("-d", "--replace", timeout=1800)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "health gate passed" in out and "passing its health gate" in out, out
    assert_downtime_within_bound(out, loon.config["deploymentSettings"]["stopTimeout"])
    v2 = _store(loon)["current"]
    assert v2 != v1
    assert retry(lambda: _columns(loon), timeout=120) == ["created", "extra", "id", "name"]

    code = loon.deployment.loon("rollback", "--config-file", str(loon.deployment.config),
                                timeout=900)
    out = code.stdout + code.stderr
    assert code.returncode == 0, out
    assert f"rolling back from {v2} to {v1}: rolled back by hand" in out, out
    assert "changed the schema (api.0002_upload_extra): restoring" in out, out
    assert f"rolled back to {v1}" in out, out
    loon.wait_healthy()
    assert retry(lambda: _columns(loon), timeout=120) == ["created", "id", "name"]
    data = _store(loon)
    assert data["current"] == v1
    assert [v["outcome"] for v in data["versions"] if v["tag"] == v2] == ["rolled back"]
