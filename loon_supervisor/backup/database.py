"""The deployment's database out of and back into its running MariaDB, through an exec in
the container (so it works on every engine and network mode).

The configured application user does both (it has every privilege on its database and no
other). Its password reaches ``mysqldump``/``mariadb`` as ``MYSQL_PWD`` in the exec's
environment: never on a command line, where ``ps`` in the container would show it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import anyio

from loon_supervisor.backup.manifest import CHUNK, BackupError
from loon_supervisor.config.model import MySqlSettings
from loon_supervisor.engine.records import ExecResult


class ExecEngine(Protocol):
    async def run_capture(self, cid: str, cmd: list[str], env: dict[str, str] | None = None
                          ) -> ExecResult: ...
    async def run_streaming(self, cid: str, cmd: list[str], env: dict[str, str],
                            workdir: str | None, on_output: Callable[[int, bytes], None]
                            ) -> int | None: ...
    async def run_feeding(self, cid: str, cmd: list[str], chunks: AsyncIterator[bytes],
                          env: dict[str, str] | None = None) -> ExecResult: ...


def _client(m: MySqlSettings, program: str) -> list[str]:
    return [program, "--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P3306",
            f"-u{m.databaseUser}"]


def _env(m: MySqlSettings) -> dict[str, str]:
    return {"MYSQL_PWD": m.databasePassword.get_secret_value()}


async def query(engine: ExecEngine, cid: str, m: MySqlSettings, sql: str) -> list[list[str]]:
    """Rows of ``sql`` run as the application user in its database."""
    code, out = await engine.run_capture(
        cid, [*_client(m, "mariadb"), "--batch", "--skip-column-names",
              f"--database={m.databaseName}", "-e", sql], env=_env(m))
    text = out.decode(errors="replace")
    if code != 0:
        raise BackupError(f"MariaDB refused {sql.split()[0]} as {m.databaseUser}: "
                          f"{text.strip()[-300:]}; see mysql.log")
    return [line.split("\t") for line in text.splitlines() if line]


async def applied_migrations(engine: ExecEngine, cid: str, m: MySqlSettings) -> list[str]:
    """Django's applied migrations as ``app.name`` in the order applied; empty when the
    database has no django_migrations table (yet)."""
    tables = await query(engine, cid, m, "SHOW TABLES LIKE 'django_migrations'")
    if not tables:
        return []
    rows = await query(engine, cid, m,
                       "SELECT CONCAT(app, '.', name) FROM django_migrations ORDER BY id")
    return [r[0] for r in rows]


async def dump(engine: ExecEngine, cid: str, m: MySqlSettings, target: Path) -> int:
    """A consistent ``mysqldump --single-transaction`` of the database into ``target``
    (mode 0600); its size. A failed dump leaves no file."""
    errors = bytearray()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            def write(stream: int, data: bytes) -> None:
                if stream == 1:
                    fh.write(data)
                else:
                    errors.extend(data)
                    del errors[:-4096]

            code = await engine.run_streaming(
                cid, [*_client(m, "mysqldump"), "--single-transaction", "--quick",
                      "--no-tablespaces", "--hex-blob", "--triggers",
                      "--default-character-set=utf8mb4", m.databaseName],
                _env(m), None, write)
            fh.flush()
            os.fsync(fh.fileno())
        if code != 0:
            raise BackupError(f"mysqldump exited {code}: "
                              f"{errors.decode(errors='replace').strip()[-300:]}; see mysql.log")
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    return target.stat().st_size


async def load(engine: ExecEngine, cid: str, m: MySqlSettings, source: Path) -> None:
    """Make the database exactly the dump: every table and view in it now is dropped first
    (a table a newer migration added must not survive), then the dump is streamed in."""
    rows = await query(engine, cid, m, "SELECT table_name, table_type FROM "
                       "information_schema.tables WHERE table_schema = DATABASE()")
    drops = ["SET FOREIGN_KEY_CHECKS=0;"]
    for name, kind in rows:
        what = "VIEW" if kind == "VIEW" else "TABLE"
        drops.append(f"DROP {what} IF EXISTS `{name.replace('`', '``')}`;")

    async def chunks() -> AsyncIterator[bytes]:
        yield ("\n".join(drops) + "\n").encode()
        async with await anyio.open_file(source, "rb") as fh:
            while chunk := await fh.read(CHUNK):
                yield chunk
        yield b"\nSET FOREIGN_KEY_CHECKS=1;\n"

    code, out = await engine.run_feeding(
        cid, [*_client(m, "mariadb"), "--batch", f"--database={m.databaseName}"], chunks(),
        env=_env(m))
    if code != 0:
        raise BackupError(f"loading {source.name} into {m.databaseName} failed (mariadb "
                          f"exited {code}): {out.decode(errors='replace').strip()[-300:]}")
