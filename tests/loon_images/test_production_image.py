"""The production image (docker/) built and run through the supervisor, with HTTPS from a
test certificate, the stand-in Django project (docker-common/standin-loon, which reads the
environment as Loon's settings do) and without MinIO (its binary cannot be fetched on CI
machines): the env must then say MINIO_ENABLED=false, DEBUG=false, and uploads must land in
the host volume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loon_supervisor.spec.envfile import read_env_file
from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    HTTPS_PORT,
    Loon,
    deploy,
    ensure_base_image,
    exec_in,
    http,
    retry,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

SERVICES = ["mysql", "redis", "nginx", "duckdb", "server", "celery"]
TAG = "loon-ci:prod"


@pytest.fixture(scope="module")
def loon(engine: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ensure_base_image()
    d = deploy(tmp_path_factory.mktemp("prod"), "production", https=True)
    try:
        d.up()
        print(f"\nproduction image: build.py -d took {d.build_seconds:.0f} s")
        yield d
    finally:
        d.cleanup()


def test_image_has_no_minio_and_says_so(loon: Loon) -> None:
    checks.check_labels(loon, TAG, "production", SERVICES)
    out_log = (loon.session() / "out.log").read_text(errors="replace")
    assert "building without MinIO" in out_log, out_log[:3000]
    assert "MinIO is NOT in this image: MINIO_ENABLED=false, so uploads are UNAVAILABLE" \
        in out_log
    assert "MinIO is NOT in this image" in loon.up_output  # the terminal too
    env = read_env_file(loon.deployment.project / ".build-files" / ".env")
    assert env["MINIO_ENABLED"] == "false" and env["DEBUG"] == "false"
    assert env["MINIO_STORAGE_ACCESS_KEY"] == "" and env["ALLOWED_HOST"] == "localhost"
    status = loon.status()
    assert status.returncode == 0 and "MinIO is not in this image" in status.stdout, status.stdout
    assert "uploads are unavailable" in status.stdout


def test_image_without_client_says_so(loon: Loon) -> None:
    """The stand-in checkout has a server but no client: terminal, out.log and status say
    the client is missing and why (what client.sh recorded in the image)."""
    said = "the Loon client is NOT in this image: the build's Loon source has no client"
    assert said in (loon.session() / "out.log").read_text(errors="replace")
    assert said in loon.up_output
    status = loon.status()
    assert status.returncode == 0 and said in status.stdout, status.stdout


def test_server_runs_with_minio_disabled_and_no_debug(loon: Loon) -> None:
    """Django answers through nginx, with MINIO_ENABLED and DEBUG as the env file says, and
    its error pages are not Django's debug pages."""
    api = f"https://localhost:{HTTPS_PORT}/api/"
    _, _, body = retry(lambda: checks.ok(http(api)), timeout=120)
    info = json.loads(body)
    assert info["minio_enabled"] is False and info["debug"] is False, info
    status, _, body = http(api + "boom/")
    assert status == 500 and b"Traceback" not in body and b"on purpose" not in body, body[:500]
    status, _, body = http(f"https://127.0.0.1:{HTTPS_PORT}/api/")  # not ALLOWED_HOST
    assert status == 400 and b"DisallowedHost" not in body and b"settings" not in body, body[:500]
    server_log = (loon.session() / "server.log").read_text(errors="replace")
    assert "uploads are unavailable" in server_log, server_log[-2000:]
    assert "files the server writes itself are stored in /var/lib/loon/media" in server_log
    celery_log = retry(lambda: _contains(loon.session() / "celery.log", " ready."), timeout=90)
    assert "MINIO_ENABLED is false" in celery_log
    assert "CRASH LOOP" not in (loon.session() / "out.log").read_text(errors="replace")


def _doctor(loon: Loon) -> tuple[int, dict[tuple[str, str], dict]]:
    r = loon.deployment.loon("doctor", "--config-file", str(loon.deployment.config), "--json",
                             timeout=180)
    data = json.loads(r.stdout)
    return r.returncode, {(c["service"], c["check"]): c for c in data["checks"]}


def test_doctor_passes_on_the_running_image(loon: Loon) -> None:
    code, checks_ = retry(lambda: _all_pass(_doctor(loon)), timeout=120, interval=5)
    assert code == 0
    minio = checks_[("minio", "health and buckets")]
    assert minio["result"] == "warn" and "not in this image" in minio["detail"]
    assert "uploads are unavailable" in minio["detail"]
    uploads = checks_[("uploads", "presigned round trip")]
    assert uploads["result"] == "skip" and "uploads are unavailable" in uploads["detail"]
    client = checks_[("client", "built in")]  # the stand-in source has no client
    assert client["result"] == "warn" and "has no client" in client["detail"], client
    table = loon.deployment.loon("doctor", "--config-file", str(loon.deployment.config))
    assert table.returncode == 0, table.stdout + table.stderr
    for name in ("mysql", "redis", "nginx", "server", "celery", "duckdb", "volumes",
                 "env file", "engine"):
        assert name in table.stdout
    assert loon.mysql["databasePassword"] not in table.stdout


def _all_pass(answer: tuple[int, dict[tuple[str, str], dict]]
              ) -> tuple[int, dict[tuple[str, str], dict]]:
    code, found = answer
    allowed = {("minio", "health and buckets"): "warn", ("nginx", "https certificate"): "warn",
               ("client", "built in"): "warn", ("uploads", "presigned round trip"): "skip"}
    bad = {k: v for k, v in found.items() if v["result"] != "pass" and allowed.get(k) !=
           v["result"]}
    assert not bad and code == 0, bad
    return answer


def test_doctor_names_a_broken_check_with_its_hint(loon: Loon) -> None:
    supervisorctl = ["supervisorctl", "-c", "/etc/supervisor/loon.conf"]
    code, out = exec_in(loon.name, *supervisorctl, "stop", "duckdb")
    assert code == 0, out
    try:
        code, found = _doctor(loon)
        assert code == 1
        duck = found[("duckdb", "query")]
        assert duck["result"] == "fail" and duck["hint"] == "see duckdb.log", duck
        others = [k for k, v in found.items() if v["result"] == "fail" and k != ("duckdb",
                                                                                "query")]
        assert others == []
    finally:
        exec_in(loon.name, *supervisorctl, "start", "duckdb")
    loon.wait_healthy()


CELERY = (". /opt/loon/server/loon-server.env; cd $LOON_SERVER_DIR; "
          "/opt/loon/server/venv/bin/celery -A $LOON_DJANGO_PROJECT ")


def test_doctor_fails_celery_when_the_worker_answers_ping_but_runs_no_task(
        loon: Loon) -> None:
    """A worker that stopped consuming its queue still answers ``inspect ping`` (remote
    control has its own channel): only a task's round trip sees that nothing would run."""
    retry(lambda: _all_pass(_doctor(loon)), timeout=120, interval=5)
    code, out = exec_in(loon.name, "bash", "-c", CELERY + "control cancel_consumer celery")
    assert code == 0 and "no longer consuming" in out, out
    try:
        code, out = exec_in(loon.name, "bash", "-c", CELERY + "inspect ping")
        assert code == 0 and "pong" in out, out  # what the old check asked
        code, found = _doctor(loon)
        celery = found[("celery", "task round trip")]
        assert code == 1 and celery["result"] == "fail", celery
        assert "no task came back from a worker" in celery["detail"], celery
        assert celery["hint"].startswith("see celery.log"), celery
        others = [k for k, v in found.items() if v["result"] == "fail" and k != (
            "celery", "task round trip")]
        assert others == []
    finally:
        exec_in(loon.name, "bash", "-c", CELERY + "control add_consumer celery")
    retry(lambda: _all_pass(_doctor(loon)), timeout=120, interval=5)


def _contains(path: Path, text: str) -> str:
    data = path.read_text(errors="replace")
    assert text in data, data[-1500:]
    return data


def test_mysql_login_with_configured_credentials(loon: Loon) -> None:
    checks.check_mysql_login(loon)


def test_redis_answers_ping(loon: Loon) -> None:
    checks.check_redis()


def test_nginx_serves_https_with_the_test_certificate(loon: Loon) -> None:
    status, _, body = retry(lambda: checks.ok(http(f"https://127.0.0.1:{HTTPS_PORT}/")))
    assert b"Loon" in body
    for svc in SERVICES:  # the status page of an image built without the client
        assert f"<li>{svc}</li>".encode() in body
    # plain HTTP redirects to the HTTPS port
    status, headers, _ = http(f"http://localhost:{HTTP_PORT}/some/path?q=1")
    assert status == 301
    assert headers["Location"] == f"https://localhost:{HTTPS_PORT}/some/path?q=1"
    # the certificate served is the one from nginxSettings
    import ssl
    served = ssl.get_server_certificate(("127.0.0.1", HTTPS_PORT))
    configured = Path(loon.config["nginxSettings"]["sourceVolumeLocation"], "loon.crt")
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(configured.read_text())
    # without MinIO, /data answers with a reason instead of hanging or 502
    status, _, body = http(f"https://127.0.0.1:{HTTPS_PORT}/data/x")
    assert status == 503 and b"MinIO" in body


def test_duckdb_answers_a_query(loon: Loon) -> None:
    checks.check_duckdb(f"https://127.0.0.1:{HTTPS_PORT}/ws", f"wss://127.0.0.1:{HTTPS_PORT}/ws")


def test_each_service_log_matches_the_container(loon: Loon) -> None:
    checks.check_logs(loon, SERVICES)


def _is_file(path: Path) -> None:
    assert path.is_file(), f"{path} does not exist"


VERIFY = f"https://localhost:{HTTPS_PORT}/api/verifyExperimentName/"


def test_first_run_creates_the_experiment_index_and_says_so_once(loon: Loon) -> None:
    """Loon's name check reads aa_index.json, which only a finished experiment writes: the
    deployment creates it, empty, in the default storage (here the media volume)."""
    _, _, body = retry(lambda: checks.ok(http(f"{VERIFY}foo")), timeout=120)
    assert json.loads(body) == {"status": "SUCCESS"}
    index = Path(loon.config["minioSettings"]["sourceVolumeLocation"], "aa_index.json")
    assert json.loads(index.read_text()) == {"experiments": []}
    server_log = (loon.session() / "server.log").read_text(errors="replace")
    assert server_log.count("first run: created aa_index.json") == 1, server_log[-3000:]


def _secrets(loon: Loon) -> list[str]:
    env = read_env_file(loon.deployment.project / ".build-files" / ".env")
    return [env[n] for n in ("DATABASE_PASSWORD", "DATABASE_ROOT_PASSWORD", "SECRET_KEY")]


def test_a_request_error_reaches_server_log_with_its_traceback_and_no_secret(
        loon: Loon) -> None:
    """DEBUG=false and no LOGGING in Loon's settings: the deployment settings module sends
    django.request errors to server.log, with the request line; the view holds the database
    password in a local variable, which must not show."""
    status, _, _ = retry(lambda: _status_is(http(f"https://localhost:{HTTPS_PORT}/api/boom/"
                                                 "?token=query-secret"), 500), timeout=120)
    log = loon.session() / "server.log"
    text = retry(lambda: _contains(log, "RuntimeError: the stand-in fails on purpose"),
                 timeout=30)
    assert "Internal Server Error: /api/boom/ [GET /api/boom/ -> HTTP 500]" in text
    block = text[text.rindex("[GET /api/boom/ -> HTTP 500]"):]
    assert "Traceback (most recent call last):" in block and 'in boom' in block, block[:2000]
    error = block[:block.index("RuntimeError: the stand-in fails on purpose")]
    assert "query-secret" not in error  # the record's request line leaves the query out
    # security errors too (a Host that is not ALLOWED_HOST)
    http(f"https://127.0.0.1:{HTTPS_PORT}/api/")
    text = retry(lambda: _contains(log, "django.security.DisallowedHost"), timeout=30)
    for value in _secrets(loon):
        for name in ("server.log", "celery.log", "out.log"):
            assert value not in (loon.session() / name).read_text(errors="replace"), name


def _status_is(answer: tuple[int, dict[str, str], bytes], want: int
               ) -> tuple[int, dict[str, str], bytes]:
    assert answer[0] == want, answer[:2]
    return answer


def test_a_failed_celery_task_reaches_celery_log_with_its_traceback(loon: Loon) -> None:
    code, out = exec_in(loon.name, "bash", "-c",
                        ". /opt/loon/server/loon-server.env; cd $LOON_SERVER_DIR; "
                        "/opt/loon/server/venv/bin/celery -A $LOON_DJANGO_PROJECT call "
                        "api.tasks.fail")
    assert code == 0, out
    text = retry(lambda: _contains(loon.session() / "celery.log",
                                   "RuntimeError: the stand-in task fails on purpose"),
                 timeout=60)
    block = text[text.rindex("api.tasks.fail["):]
    assert "Traceback (most recent call last):" in block, block[:2000]
    for value in _secrets(loon):
        assert value not in text


def test_static_files_are_served_by_nginx_without_minio(loon: Loon) -> None:
    """Loon puts static files on MinIO only; without it they are collected to a directory
    and nginx serves them at /static/ with caching headers: the admin comes styled."""
    css = f"https://localhost:{HTTPS_PORT}/static/admin/css/base.css"
    status, headers, body = retry(lambda: checks.ok(http(css)), timeout=120)
    assert headers["Content-Type"].startswith("text/css") and b"body" in body
    assert headers["Cache-Control"] == "max-age=86400" and "Expires" in headers, headers
    status, _, body = retry(lambda: checks.ok(
        http(f"https://localhost:{HTTPS_PORT}/admin/login/")), timeout=60)
    assert b"/static/admin/css/base.css" in body
    status, _, _ = http(f"https://localhost:{HTTPS_PORT}/static/admin/css/nothing.css")
    assert status == 404
    server_log = (loon.session() / "server.log").read_text(errors="replace")
    assert "static files collected to /var/lib/loon/static" in server_log
    assert "collectstatic failed" not in server_log


def test_doctor_fails_with_the_traceback_when_the_name_check_fails_and_passes_after(
        loon: Loon) -> None:
    """The name-check route answering 500 (its index gone) fails doctor's server check with
    the traceback server.log holds; a server restart recreates the index and doctor passes.
    Celery's check is a task's round trip through Redis."""
    retry(lambda: checks.ok(http(f"{VERIFY}foo")), timeout=120)  # the server is up
    index = Path(loon.config["minioSettings"]["sourceVolumeLocation"], "aa_index.json")
    index.unlink()
    supervisorctl = ["supervisorctl", "-c", "/etc/supervisor/loon.conf"]
    try:
        code, found = _doctor(loon)
        server = found[("server", "name check route")]
        assert code == 1 and server["result"] == "fail", server
        detail = server["detail"]
        assert "/api/verifyExperimentName/loon-doctor-probe answered HTTP 500" in detail
        assert "last error in server.log" in detail and "Traceback" in detail, detail
        assert detail.rstrip().splitlines()[-1].startswith("FileNotFoundError"), detail
        assert "aa_index.json" in detail
        celery = found[("celery", "task round trip")]
        assert celery["result"] == "pass" and "celery.accumulate" in celery["detail"], celery
        for value in _secrets(loon):
            assert value not in json.dumps(list(found.values()))
    finally:
        exec_in(loon.name, *supervisorctl, "restart", "server")
    retry(lambda: _is_file(index), timeout=120)
    code, found = retry(lambda: _all_pass(_doctor(loon)), timeout=120, interval=5)
    assert "status SUCCESS" in found[("server", "name check route")]["detail"]


def test_mysql_row_and_upload_survive_down_and_up(loon: Loon) -> None:
    """Without MinIO an uploaded file lives in minioSettings.sourceVolumeLocation."""
    url = f"https://localhost:{HTTPS_PORT}/api/files/survivor.txt"
    status, _, body = retry(lambda: checks.ok(http(url, b"kept across down/up", method="PUT")),
                            timeout=120)
    assert json.loads(body)["path"] == "/var/lib/loon/media/survivor.txt"
    host_file = Path(loon.config["minioSettings"]["sourceVolumeLocation"], "survivor.txt")
    assert host_file.read_bytes() == b"kept across down/up"
    # first-run initialisation (issue 25): an existing aa_index.json is kept, never recreated
    index = Path(loon.config["minioSettings"]["sourceVolumeLocation"], "aa_index.json")
    retry(lambda: _is_file(index), timeout=60)
    index.write_text('{"experiments": ["kept.json"]}')
    checks.check_row_survives_down_up(loon, SERVICES)
    _, _, body = retry(lambda: checks.ok(http(url)), timeout=120)
    assert body == b"kept across down/up"
    assert index.read_text() == '{"experiments": ["kept.json"]}'
    _, _, body = retry(lambda: checks.ok(http(f"{VERIFY}kept")), timeout=60)
    assert json.loads(body) == {"status": "FAILED"}
    server_log = (loon.session() / "server.log").read_text(errors="replace")
    assert "first run: created" not in server_log, server_log[-2000:]
