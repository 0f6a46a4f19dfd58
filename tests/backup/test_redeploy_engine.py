"""Redeploys of the production image with the stand-in Loon that the other engine tests do
not drive: a foreground `up --replace` (backup, gate, rollback as with `-d`), and a new
version whose container does not start at all.

The new versions are small images built `FROM` the running version (a changed view, a WSGI
module that raises, an entrypoint that exits at once) through `deploymentSettings.
imageDirectory`, so each redeploy builds in seconds instead of reinstalling the server's
requirements; `up --replace` treats them as any new version (tag, labels, store). The tests
share one deployment and run in file order; each leaves version 1 serving, except the last.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from tests.backup.downtime import assert_downtime_within_bound
from tests.deploy.support import call, make_settings, new_token, running_server, wait_terminal
from tests.engine_helpers import containers_named, stop_with
from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    Loon,
    deploy,
    ensure_base_image,
    http,
    retry,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

API = f"http://localhost:{HTTP_PORT}/api/"
STOP_TIMEOUT = 30
# The server's files inside the image (docker-common/build/server.sh writes this env file).
SERVER_ENV = ". /opt/loon/server/loon-server.env"


@pytest.fixture(scope="module")
def loon(engine: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ensure_base_image()
    d = deploy(tmp_path_factory.mktemp("redeploy"), "production", https=False)
    d.config["deploymentSettings"].update(stopTimeout=STOP_TIMEOUT, keepVersions=10)
    _write_config(d)
    try:
        d.up()
        d.config[V1] = _store(d)["current"]
        yield d
    finally:
        d.cleanup()


# Kept beside the config (never written into config.json): version 1's tag, and the
# versions earlier tests saw rolled back.
V1, FAILED = "test: v1", "test: failed"


def _write_config(loon: Loon) -> None:
    cfg = {k: v for k, v in loon.config.items() if not k.startswith("test: ")}
    loon.deployment.config.write_text(json.dumps(cfg, indent=2))


def _store(loon: Loon) -> dict:  # type: ignore[type-arg]
    path = loon.deployment.project / ".build-files" / f"versions.{loon.name}.json"
    return dict(json.loads(path.read_text()))


def _serves(loon: Loon, text: str) -> None:
    """GET /api/ answers with the stand-in's name ``text`` (the version that serves)."""
    def answer() -> str:
        _, _, body = checks.ok(http(API))
        return str(json.loads(body)["loon"])

    assert retry(answer, timeout=180) == text


def _new_version(loon: Loon, tmp: Path, body: str, health_timeout: int) -> None:
    """Make the next `up --replace` build ``FROM`` version 1 plus the Dockerfile ``body``."""
    image_dir = tmp / "image"
    image_dir.mkdir()
    (image_dir / "Dockerfile").write_text(f"FROM {loon.config[V1]}\n{body}\n")
    d = loon.config["deploymentSettings"]
    d.update(imageDirectory=str(image_dir), healthTimeout=health_timeout)
    _write_config(loon)


def _foreground(loon: Loon) -> subprocess.Popen[str]:
    """`build.py --replace` without -d: it follows the new version in this subprocess."""
    return loon.deployment.start("--replace")


def _wait_for(loon: Loon, proc: subprocess.Popen[str], text: str, timeout: float = 1200
              ) -> None:
    """Until the foreground run's out.log says ``text``; it must not exit meanwhile."""
    out_log = loon.deployment.logs / "latest" / "out.log"
    deadline = time.monotonic() + timeout
    while text not in (out_log.read_text(errors="replace") if out_log.exists() else ""):
        if proc.poll() is not None:
            raise AssertionError(f"build.py exited {proc.returncode}: {proc.communicate()[0]}")
        assert time.monotonic() < deadline, f"{text!r} not in {out_log} after {timeout} s"
        time.sleep(0.5)


def _assert_rolled_back_to_v1(loon: Loon, out: str) -> dict:  # type: ignore[type-arg]
    v1 = loon.config[V1]
    assert "phase: rolled back" in out, out
    assert f"rolled back to {v1}" in out, out
    loon.wait_healthy()
    _serves(loon, "stand-in")
    data = _store(loon)
    assert data["current"] == v1
    [failed] = [v for v in data["versions"] if v["outcome"] == "rolled back"
                and v["tag"] not in _earlier_failures(loon)]
    loon.config.setdefault(FAILED, []).append(failed["tag"])
    assert len(containers_named(loon.name)) == 1  # the failed one is gone
    return dict(failed)


def _earlier_failures(loon: Loon) -> list[str]:
    return list(loon.config.get(FAILED, []))


def test_foreground_replace_whose_server_fails_is_rolled_back(loon: Loon,
                                                               tmp_path: Path) -> None:
    _new_version(loon, tmp_path, f'RUN {SERVER_ENV} && echo \'raise RuntimeError("v2 cannot '
                 'serve")\' >> "$LOON_SERVER_DIR/$LOON_DJANGO_PROJECT/wsgi.py"', 90)
    proc = _foreground(loon)
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 1, out
    for phase in ("backing up", "swapping", "checking health", "rolled back"):
        assert f"phase: {phase}" in out, (phase, out)
    assert "backup before the swap:" in out, out
    assert "health gate failed" in out, out
    failed = _assert_rolled_back_to_v1(loon, out)
    assert "health gate failed" in failed["reason"] and "server" in failed["reason"], failed
    assert "v2 cannot serve" in failed["reason"], failed  # the culprit's own lines
    # The rollback's lines reach the foreground run's session, after its own.
    sessions = sorted((loon.deployment.project / "logs").glob("logs_*/out.log"))
    assert any("rolling back from" in p.read_text(errors="replace") and
               "health gate failed" in p.read_text(errors="replace") for p in sessions)


def test_a_new_version_whose_container_exits_at_once_is_rolled_back(loon: Loon,
                                                                     tmp_path: Path) -> None:
    _new_version(loon, tmp_path, 'ENTRYPOINT ["/bin/sh", "-c", "echo v3 misses a required '
                 'setting >&2; exit 3"]', 90)
    result = loon.deployment.run("-d", "--replace", timeout=1200)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "phase: swapping" in out, out
    failed = _assert_rolled_back_to_v1(loon, out)
    # Why: the container ran no service (it exited: the gate found no running container,
    # or the start failed), and the container's own last line.
    assert re.search(r"container|did not start", failed["reason"]), failed
    assert "v3 misses a required setting" in failed["reason"], failed


def _healthy(name: str) -> str:
    """A Dockerfile body for a version that works and calls itself ``name``."""
    return (f"RUN {SERVER_ENV} && sed -i 's/\"loon\": \"stand-in\"/\"loon\": \"{name}\"/' "
            '"$LOON_SERVER_DIR/api/views.py"')


def test_sigint_during_the_gate_rolls_back(loon: Loon, tmp_path: Path) -> None:
    """Ctrl+C once the new version is swapped in but not yet checked: back to version 1,
    not a half-checked new one."""
    _new_version(loon, tmp_path, _healthy("stand-in v3"), 240)
    proc = loon.deployment.start("-d", "--replace")
    _wait_for(loon, proc, "phase: checking health")
    code, out = stop_with(proc, signal.SIGINT, timeout=900)
    assert code == 130, out
    assert "SIGINT during the health gate: rolling back" in out, out
    failed = _assert_rolled_back_to_v1(loon, out)
    assert failed["reason"].startswith("cancelled (SIGINT) after the swap"), failed


def test_foreground_ctrl_c_during_the_gate_rolls_back(loon: Loon, tmp_path: Path) -> None:
    """A foreground run's Ctrl+C while its new version is checked: the new version is
    stopped as in any foreground run, and version 1 runs again (in the background)."""
    _new_version(loon, tmp_path, _healthy("stand-in v3b"), 240)
    proc = _foreground(loon)
    _wait_for(loon, proc, "phase: checking health")
    code, out = stop_with(proc, signal.SIGINT, timeout=900)
    assert code == 130, out
    failed = _assert_rolled_back_to_v1(loon, out)
    assert failed["reason"].startswith("cancelled (SIGINT) after the swap"), failed


@pytest.mark.anyio
async def test_delete_during_the_gate_rolls_back(loon: Loon, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The deploy server's cancel once the new version is swapped in: the `up` child rolls
    back (no `loon down`), and the deploy is cancelled with version 1 serving."""
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(loon.deployment.project))
    _new_version(loon, tmp_path, _healthy("stand-in v4"), 240)
    token = new_token()
    settings = make_settings(tmp_path / "srv", token, config_file=loon.deployment.config)
    async with running_server(settings) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        assert ans.status == 202, ans.text
        url = f"{srv.url}/deploy/{ans.body['id']}"
        with anyio.fail_after(900):
            while (await call("GET", url, token=token)).body["phase"] != "checking health":
                await anyio.sleep(0.1)
        assert (await call("DELETE", url, token=token)).status == 202
        done = await wait_terminal(srv.url, ans.body["id"], token, timeout=900)
    log = Path(done["logDir"], "deploy.log").read_text()
    assert done["status"] == "cancelled" and done["phase"] == "rolled back", (done, log[-4000:])
    assert "stopped after the swap: rolled back" in log, log[-4000:]
    assert "$ loon down" not in log, log[-4000:]  # the rollback, not a stop
    failed = await anyio.to_thread.run_sync(_assert_rolled_back_to_v1, loon, log)
    assert failed["reason"].startswith("cancelled (SIGTERM) after the swap"), failed


def test_foreground_replace_with_a_healthy_version_serves_it(loon: Loon,
                                                              tmp_path: Path) -> None:
    _new_version(loon, tmp_path, _healthy("stand-in v5"), 240)
    backups = loon.deployment.project / "backups"
    before = set(backups.iterdir()) if backups.is_dir() else set()
    proc = _foreground(loon)
    try:
        _wait_for(loon, proc, "phase: deployed")
        _serves(loon, "stand-in v5")
        out_log = (loon.session() / "out.log").read_text(errors="replace")
        assert "phase: backing up" in out_log and "phase: checking health" in out_log, out_log
        [backup] = set(backups.iterdir()) - before
        assert (backup / "manifest.json").is_file()
        assert f"backup before the swap: {backup}" in out_log, out_log

        data = _store(loon)
        new = data["current"]
        assert new != loon.config[V1]
        listed = loon.deployment.loon("versions", "--config-file", str(loon.deployment.config))
        assert listed.returncode == 0, listed.stderr
        assert loon.config[V1] in listed.stdout and new in listed.stdout, listed.stdout
        assert re.search(rf"\*\s*{re.escape(new)}", listed.stdout), listed.stdout

        downtime = assert_downtime_within_bound(out_log, STOP_TIMEOUT)
        [record] = [v for v in data["versions"] if v["tag"] == new]
        assert record["outcome"] == "deployed", record
        assert abs(record["downtime"] - downtime) < 0.01, (record, out_log)
    finally:
        code, out = stop_with(proc, signal.SIGINT, timeout=300)
    assert code == 130, out
