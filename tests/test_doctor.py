"""loon doctor's pure parts: verdict conversion, per-check timeout, exit code, JSON, and
that a failed check keeps its hint."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from loon_supervisor.doctor.checks import Context
from loon_supervisor.doctor.runner import run_check, run_doctor
from loon_supervisor.doctor.verdict import (
    CheckFailed,
    Verdict,
    exit_code,
    print_table,
    to_json,
)

CTX = Context(None, "", {}, (), None, Path("/nonexistent"))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_run_check_outcomes() -> None:
    async def ok(ctx: Context) -> str:
        return "fine"

    async def broken(ctx: Context) -> str:
        raise CheckFailed("redis-cli ping answered ''", "see redis.log")

    async def slow(ctx: Context) -> str:
        await anyio.sleep(10)
        return "late"

    async def absent(ctx: Context) -> Verdict:
        return Verdict("minio", "health", "warn", "not in this image", "rebuild with it")

    assert await run_check(CTX, "redis", "PING", ok) == Verdict("redis", "PING", "pass", "fine")
    failed = await run_check(CTX, "redis", "PING", broken)
    assert (failed.result, failed.hint) == ("fail", "see redis.log")
    late = await run_check(CTX, "duckdb", "query", slow, timeout=0.1)
    assert late.result == "fail" and "no answer within" in late.detail
    assert (await run_check(CTX, "minio", "health", absent)).result == "warn"


def test_exit_code_and_json() -> None:
    good = [Verdict("a", "x", "pass"), Verdict("b", "y", "warn"), Verdict("c", "z", "skip")]
    assert exit_code(good) == 0
    bad = [*good, Verdict("d", "w", "fail", "broken", "fix it")]
    assert exit_code(bad) == 1
    data = json.loads(to_json(bad))
    assert data["ok"] is False and data["checks"][-1] == {
        "service": "d", "check": "w", "result": "fail", "detail": "broken", "hint": "fix it"}


def test_table_shows_hint_and_summary() -> None:
    console = Console(record=True, width=200)
    print_table([Verdict("duckdb", "query", "fail", "SELECT 42 answered ''", "see duckdb.log"),
                 Verdict("redis", "PING", "pass", "PONG")], console)
    text = console.export_text()
    assert "see duckdb.log" in text and "FAIL" in text and "PASS" in text
    assert "FAILED: duckdb/query" in text


@pytest.mark.anyio
async def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text("{ not json")
    assert await run_doctor(config) == 2
    assert "Traceback" not in capsys.readouterr().err


class _Exec:
    """An engine whose exec answers with a fixed output (the client check's one command)."""

    def __init__(self, code: int, out: bytes) -> None:
        self.code, self.out = code, out

    async def run_capture(self, cid: str, cmd: list[str], env: object = None
                          ) -> tuple[int, bytes]:
        return self.code, self.out


@pytest.mark.anyio
async def test_client_check_warns_with_the_recorded_reason() -> None:
    from loon_supervisor.doctor.checks import CHECKS, client_built

    assert ("client", "built in", client_built) in CHECKS
    why = (b"client build failed: the client's yarn lockfile pins a version the package "
           b"registry could not provide: @hms-dbmi/viv@0.15.1 (HTTP 404)\n")
    ctx = Context(_Exec(0, why), "", {}, (), None, Path("/x"))  # type: ignore[arg-type]
    v = await run_check(ctx, "client", "built in", client_built)
    assert v.result == "warn" and "@hms-dbmi/viv@0.15.1" in v.detail
    assert "registry mirror" in v.hint
    none = Context(_Exec(0, b"the build's Loon source has no client (apps/client/package.json)"),
                   "", {}, (), None, Path("/x"))  # type: ignore[arg-type]
    v = await run_check(none, "client", "built in", client_built)
    assert v.result == "warn" and "loonSourceLocation" in v.hint
    built = Context(_Exec(0, b""), "", {}, (), None, Path("/x"))  # type: ignore[arg-type]
    assert (await run_check(built, "client", "built in", client_built)).result == "pass"
    broken = Context(_Exec(126, b"exec failed"), "", {}, (), None, Path("/x"))  # type: ignore[arg-type]
    assert (await run_check(broken, "client", "built in", client_built)).result == "fail"


@pytest.mark.anyio
async def test_up_and_status_name_a_missing_client_only_for_a_loon_checkout() -> None:
    from loon_supervisor.spec.client import absent_message, client_absence

    why = b"client build failed: ... could not provide: @hms-dbmi/viv@0.15.1 (404)\n"
    reason = await client_absence(_Exec(0, why), "c", ("mysql", "server", "celery"))
    assert reason is not None and "@hms-dbmi/viv@0.15.1" in absent_message(reason)
    assert absent_message(reason).startswith("WARNING: the Loon client is NOT in this image")
    # a client was built (no file), or no Loon checkout at all (the status page says it)
    assert await client_absence(_Exec(1, b"No such file"), "c", ("server",)) is None
    assert await client_absence(_Exec(0, why), "c", ("mysql", "nginx")) is None


# ---------------------------------------------------------------- server.log tracebacks

def test_last_traceback_is_the_last_error_record_up_to_its_exception() -> None:
    from loon_supervisor.doctor.checks import last_traceback

    log = "\n".join([
        "2026-12-04 10:00:00,000 ERROR django.request: Internal Server Error: /api/old",
        "Traceback (most recent call last):", '  File "a.py", line 1, in f', "KeyError: 'old'",
        '127.0.0.1 - - "GET /api/old HTTP/1.1" 500 145',
        "2026-12-04 10:00:01,000 ERROR django.request: Internal Server Error: /api/new "
        "[GET /api/new -> HTTP 500]",
        "Traceback (most recent call last):", '  File "b.py", line 2, in g',
        "OSError: inner", "", "The above exception was the direct cause of the following "
        "exception:", "", "Traceback (most recent call last):", '  File "c.py", line 3, in h',
        "RuntimeError: outer",
        '127.0.0.1 - - "GET /api/new HTTP/1.1" 500 145',
        "[2026-12-04 10:00:02 +0000] [7] [INFO] Booting worker with pid: 7",
    ])
    found = last_traceback(log)
    assert found is not None
    lines = found.splitlines()
    assert lines[0].endswith("[GET /api/new -> HTTP 500]") and lines[-1] == "RuntimeError: outer"
    assert "OSError: inner" in lines and "KeyError: 'old'" not in found
    assert "Booting worker" not in found and "GET /api/new HTTP/1.1" not in found


def test_last_traceback_without_a_record_line_and_when_long_or_absent() -> None:
    from loon_supervisor.doctor.checks import TRACEBACK_LINES, last_traceback

    frames = [f'  File "f{i}.py", line {i}, in f{i}' for i in range(40)]
    found = last_traceback("\n".join(["boot", "Traceback (most recent call last):", *frames,
                                      "ValueError: deep", "next record"]))
    assert found is not None
    lines = found.splitlines()
    assert len(lines) == TRACEBACK_LINES and lines[1] == "  ..."
    assert lines[0].startswith("Traceback") and lines[-1] == "ValueError: deep"
    found = last_traceback("\n".join(["2026 ERROR django.request: x", "Traceback (most recent "
                                      "call last):", *frames, "    ^^^^^^", "ValueError: y"]))
    assert found is not None
    lines = found.splitlines()
    assert len(lines) == TRACEBACK_LINES and lines[1].startswith("Traceback") and "^" not in found
    assert lines[2] == "  ..." and lines[-2] == frames[-1] and lines[-1] == "ValueError: y"
    assert last_traceback("only access lines\nand more\n") is None


def test_last_traceback_prefers_the_route_asked_about() -> None:
    """Doctor's checks run at once: the name check's 500 must show its own record, not the
    upload check's that came after it."""
    from loon_supervisor.doctor.checks import last_traceback

    log = ("2026-12-05 09:22:35,100 ERROR django.request: Internal Server Error: "
           "/api/verifyExperimentName/x [GET /api/verifyExperimentName/x -> HTTP 500]\n"
           "Traceback (most recent call last):\n  File \"v.py\", line 1, in get\n"
           "FileNotFoundError: aa_index.json\n"
           "2026-12-05 09:22:36,107 ERROR django.request: Internal Server Error: "
           "/api/s3-upload/upload-initialize/ [POST /api/s3-upload/upload-initialize/ -> "
           "HTTP 500]\nTraceback (most recent call last):\n  File \"u.py\", line 2, in post\n"
           "MaxRetryError: refused\n")
    assert (last_traceback(log) or "").endswith("MaxRetryError: refused")
    assert (last_traceback(log, "/api/verifyExperimentName/") or "").endswith(
        "FileNotFoundError: aa_index.json")
    assert (last_traceback(log, "/api/nothing/") or "").endswith("MaxRetryError: refused")
