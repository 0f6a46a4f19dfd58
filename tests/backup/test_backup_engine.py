"""`loon backup`, `loon backups` and `loon restore` on the production image with the
stand-in Loon (MariaDB, Django storing uploads in minioSettings.sourceVolumeLocation): a row
and an uploaded file round-trip identical, and a damaged backup refuses with the reason and
changes nothing (the container is not even stopped)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.engine_helpers import containers_named
from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    Loon,
    deploy,
    ensure_base_image,
    http,
    mariadb_ok,
    retry,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

FILE_URL = f"http://localhost:{HTTP_PORT}/api/files/kept.bin"
VERIFY = f"http://localhost:{HTTP_PORT}/api/verifyExperimentName/foo"
CONTENT = bytes(range(256)) * 40 + b"uploaded before the backup"


@pytest.fixture(scope="module")
def loon(engine: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ensure_base_image()
    d = deploy(tmp_path_factory.mktemp("backup"), "production", https=False)
    try:
        d.up()
        yield d
    finally:
        d.cleanup()


def _loon(loon: Loon, *args: str, timeout: float = 600) -> tuple[int, str]:
    r = loon.deployment.loon(*args, "--config-file", str(loon.deployment.config),
                             timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def _rows(loon: Loon) -> str:
    return mariadb_ok(loon, "SELECT id, note FROM ci_kept ORDER BY id",
                      database=loon.mysql["databaseName"])


def _columns(loon: Loon) -> str:
    return mariadb_ok(loon, "SELECT column_name FROM information_schema.columns WHERE "
                      "table_schema = DATABASE() AND table_name = 'ci_kept' ORDER BY 1",
                      database=loon.mysql["databaseName"])


def _state(loon: Loon) -> tuple[str, str, bytes]:
    _, _, body = retry(lambda: checks.ok(http(FILE_URL)), timeout=120)
    return retry(lambda: _rows(loon), timeout=120), _columns(loon), body


def _is_file(path: Path) -> None:
    assert path.is_file(), f"{path} does not exist"


def _backups(loon: Loon) -> list[Path]:
    root = loon.deployment.project / "backups"
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def test_backup_then_restore_round_trips_a_row_and_a_file(loon: Loon) -> None:
    db = loon.mysql["databaseName"]
    retry(lambda: mariadb_ok(loon, "SELECT 1"), timeout=120)  # RUNNING is not yet serving
    mariadb_ok(loon, "CREATE TABLE ci_kept (id INT PRIMARY KEY, note VARCHAR(64)); "
                     "INSERT INTO ci_kept VALUES (1, 'written before the backup')", database=db)
    retry(lambda: checks.ok(http(FILE_URL, CONTENT, method="PUT")), timeout=120)
    before = _state(loon)
    assert before == ("1\twritten before the backup\n", "id\nnote\n", CONTENT)
    # a backup taken before the first-run step existed holds no experiment index
    # (issue 25): the restored deployment's start must create it
    live_dir = Path(loon.config["minioSettings"]["sourceVolumeLocation"])
    retry(lambda: _is_file(live_dir / "aa_index.json"), timeout=60)
    (live_dir / "aa_index.json").unlink()

    code, out = _loon(loon, "backup")
    assert code == 0, out
    [backup] = _backups(loon)
    assert f"backup written: {backup}" in out, out
    manifest = json.loads((backup / "manifest.json").read_text())
    by_path = {e["path"]: e for e in manifest["files"]}
    assert {"database.sql", "env", "config.json", "data/kept.bin"} <= set(by_path), by_path
    assert by_path["data/kept.bin"]["size"] == len(CONTENT)
    for private in ("database.sql", "env", "config.json", "manifest.json"):
        assert stat.S_IMODE((backup / private).stat().st_mode) == 0o600, private
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    live = Path(loon.config["minioSettings"]["sourceVolumeLocation"], "kept.bin")
    assert os.stat(backup / "data" / "kept.bin").st_ino == live.stat().st_ino, \
        "same file system: the data file should be a hard link"
    assert "migrations applied" in out, out
    assert loon.mysql["databasePassword"] not in out

    listed = loon.deployment.loon("backups")
    assert listed.returncode == 0 and backup.name in listed.stdout, listed

    # what an upgrade gone wrong would do: a new column, a changed row, a replaced file
    mariadb_ok(loon, "ALTER TABLE ci_kept ADD COLUMN added INT; "
                     "UPDATE ci_kept SET note = 'changed after the backup'; "
                     "INSERT INTO ci_kept VALUES (2, 'after', 7); CREATE TABLE ci_new (x INT)",
               database=db)
    retry(lambda: checks.ok(http(FILE_URL, b"replaced after the backup", method="PUT")),
          timeout=60)
    retry(lambda: checks.ok(http(f"http://localhost:{HTTP_PORT}/api/files/extra.txt", b"new",
                                 method="PUT")), timeout=60)
    assert _state(loon)[0] != before[0]

    code, out = _loon(loon, "restore", backup.name)
    assert code == 0, out
    assert "every sha256 matches" in out, out
    loon.wait_healthy()
    assert _state(loon) == before
    tables = mariadb_ok(loon, "SHOW TABLES LIKE 'ci_new'", database=db)
    assert tables == "", "a table created after the backup survived the restore"
    assert not (live.parent / "extra.txt").exists(), "a file added after the backup survived"
    assert live.read_bytes() == CONTENT
    assert "data/aa_index.json" not in by_path
    # first-run initialisation after the restore: the index is back, and the name check,
    # which reads it, answers
    _, _, body = retry(lambda: checks.ok(http(VERIFY)), timeout=120)
    assert json.loads(body) == {"status": "SUCCESS"}
    assert json.loads((live.parent / "aa_index.json").read_text()) == {"experiments": []}


def test_damaged_backup_refuses_and_changes_nothing(loon: Loon) -> None:
    code, out = _loon(loon, "backup")
    assert code == 0, out
    backup = _backups(loon)[-1]
    db = loon.mysql["databaseName"]
    mariadb_ok(loon, "CREATE TABLE IF NOT EXISTS ci_kept (id INT PRIMARY KEY, note "
                     "VARCHAR(64)); INSERT INTO ci_kept VALUES (9, 'after the backup')",
               database=db)
    before = _state(loon)
    ids = [c["Id"] for c in containers_named(loon.name)]
    dump = backup / "database.sql"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0x01
    dump.write_bytes(bytes(data))

    code, out = _loon(loon, "restore", backup.name)
    assert code == 1, out
    assert "is damaged" in out and "database.sql" in out and "nothing was changed" in out, out
    assert "Traceback" not in out
    assert [c["Id"] for c in containers_named(loon.name)] == ids, "the deployment was touched"
    assert _state(loon) == before
