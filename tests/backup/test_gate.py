"""The health gate against a scripted container: it passes only once every serving check
passes with no service restarted since the round before, names the check that decided, and
fails at once on a FATAL service or a crash loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.upgrade.gate import gate_context, health_gate
from tests.conftest import base_config

SERVICES = ("mysql", "redis", "nginx", "server", "celery")


class _Container:
    """Answers the gate's execs; ``api`` and ``server_line`` script the server per round."""

    def __init__(self, api: list[int], server_line: list[str]) -> None:
        self.api, self.server_line = api, server_line
        self.round = -1

    async def run_capture(self, cid: str, cmd: list[str], env: dict[str, str] | None = None
                          ) -> tuple[int, bytes]:
        if cmd[0] == "sh" and "status" in cmd[2]:
            self.round += 1
            i = min(self.round, len(self.server_line) - 1)
            lines = [f"{s:<8} RUNNING   pid {10 + n}, uptime 0:01:00"
                     for n, s in enumerate(SERVICES) if s != "server"]
            lines.append(f"server   {self.server_line[i]}")
            return 3, "\n".join(lines).encode()
        if cmd[0] == "mariadb":
            return 0, b"loon\n"
        if cmd[0] == "redis-cli":
            return 0, b"PONG\n"
        if cmd[0] == "bash":
            return 0, b"ok 0.05\n"
        if cmd[0] == "tail":
            return 0, SERVER_LOG
        url = cmd[3]
        status = self.api[min(self.round, len(self.api) - 1)] if "/api/" in url else 200
        return 0, json.dumps({"status": status, "body": "{}"}).encode()


def _ctx(tmp_path: Path, container: _Container):  # type: ignore[no-untyped-def]
    config = LoonConfig.model_validate(base_config(tmp_path, crashLoopRestarts=3))
    return gate_context(container, "cid", ContainerInfo(), SERVICES, config,  # type: ignore[arg-type]
                        tmp_path / ".env")


SERVER_LOG = b"""\
2026-12-04 18:00:00,000 ERROR django.request: Internal Server Error: /api/x [GET /api/x -> HTTP 500]
Traceback (most recent call last):
  File "views.py", line 250, in get
    with default_storage.open('aa_index.json', 'r') as file:
FileNotFoundError: [Errno 2] No such file or directory: '/var/lib/loon/media/aa_index.json'
127.0.0.1 - - "GET /api/x HTTP/1.1" 500 145
"""

RUNNING = "RUNNING   pid 99, uptime 0:00:30"


@pytest.mark.anyio
async def test_passes_once_the_server_answers_and_names_it(tmp_path: Path) -> None:
    said: list[str] = []
    c = _Container(api=[502, 502, 200], server_line=[RUNNING])
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 60, said.append,
                               poll=0)
    assert result.passed, result.sentence()
    assert (result.decided_by.service, result.decided_by.check) == ("server", "name check route")
    assert "decided by server name check route (HTTP 200" in result.sentence()
    assert any("waiting for server name check route" in s for s in said)


@pytest.mark.anyio
async def test_one_passing_round_is_not_enough_while_the_server_restarts(
        tmp_path: Path) -> None:
    restarting = [f"RUNNING   pid {p}, uptime 0:00:0{p % 5}" for p in range(100, 200)]
    c = _Container(api=[200], server_line=restarting)
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 60, lambda s: None,
                               poll=0)
    assert not result.passed
    assert (result.culprit, result.decided_by.check) == ("server", "crash loop")
    assert "restarted 3 times" in result.sentence()


@pytest.mark.anyio
async def test_a_fatal_server_fails_at_once(tmp_path: Path) -> None:
    c = _Container(api=[502], server_line=[RUNNING, "FATAL     Exited too quickly"])
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 600, lambda s: None,
                               poll=0)
    assert not result.passed and result.culprit == "server"
    assert "FATAL" in result.decided_by.detail


@pytest.mark.anyio
async def test_times_out_naming_the_failing_check(tmp_path: Path) -> None:
    c = _Container(api=[500], server_line=[RUNNING])
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 0.2, lambda s: None,
                               poll=0.05)
    assert not result.passed
    assert "server name check route: /api/verifyExperimentName/loon-doctor-probe answered " \
        "HTTP 500; last error in server.log:\n2026-12-04 18:00:00,000 ERROR django.request" \
        in result.sentence()
    assert result.sentence().endswith("No such file or directory: "
                                      "'/var/lib/loon/media/aa_index.json'")


@pytest.mark.anyio
async def test_times_out_naming_a_service_still_restarting_over_the_checks(
        tmp_path: Path) -> None:
    """Seen on CI: the server in slow BACKOFF (too slow for the crash-loop detector) while
    nginx refused; the timeout named nginx, whose log says nothing of the cause."""
    c = _Container(api=[502], server_line=["BACKOFF   Exited too quickly (process log may "
                                           "have details)"])
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 0.2, lambda s: None,
                               poll=0.05)
    assert not result.passed
    assert (result.culprit, result.decided_by.check) == ("server", "process state")
    assert "server BACKOFF Exited too quickly" in result.sentence()
    assert "(failing: server name check route" in result.sentence()


@pytest.mark.anyio
async def test_times_out_naming_the_service_seen_in_backoff_when_the_last_status_is_empty(
        tmp_path: Path) -> None:
    """Seen on CI: the server went FATAL in the gate's last seconds, the logger stopped the
    container, and the last status (supervisord shutting down) named nobody: the server,
    seen in BACKOFF before, is still the culprit."""
    c = _Container(api=[502], server_line=[RUNNING, "BACKOFF   Exited too quickly", RUNNING])
    real = c.run_capture
    calls = 0

    async def status_then_nothing(cid: str, cmd: list[str], env: dict[str, str] | None = None
                                  ) -> tuple[int, bytes]:
        nonlocal calls
        if cmd[0] == "sh" and "status" in cmd[2]:
            calls += 1
            if calls > 2:
                return 7, b"unix:///run/supervisor.sock refused connection\n"
        return await real(cid, cmd, env)
    c.run_capture = status_then_nothing  # type: ignore[method-assign]
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 0.2, lambda s: None,
                               poll=0.05)
    assert not result.passed
    assert (result.culprit, result.decided_by.check) == ("server", "process state")
    assert "seen during the gate: server BACKOFF Exited too quickly" in result.sentence()


def test_the_rollback_reason_names_the_error_a_restart_loop_buries() -> None:
    from loon_supervisor.upgrade.rollout import error_lines

    lines = ["Traceback (most recent call last):", '  File "wsgi.py", line 8',
             "RuntimeError: v2 cannot serve", "[INFO] Worker exiting (pid: 7)",
             "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>",
             "loon-wait: mysql is ready", "loon-server: applying migrations",
             "  No migrations to apply."]
    assert error_lines(lines * 3) == ["RuntimeError: v2 cannot serve"]


class _Vanishing(_Container):
    """The background logger stops the container once the server is FATAL: the gate's next
    status exec fails and the engine no longer knows the container."""

    def __init__(self, server_line: list[str]) -> None:
        super().__init__(api=[502], server_line=server_line)

    async def run_capture(self, cid: str, cmd: list[str], env: dict[str, str] | None = None
                          ) -> tuple[int, bytes]:
        if cmd[0] == "sh" and "status" in cmd[2] and self.round + 1 >= len(self.server_line):
            from loon_supervisor.errors import EngineError

            raise EngineError("running sh in the container: No such container: cid")
        return await super().run_capture(cid, cmd, env)

    async def inspect(self, cid: str) -> None:
        return None


@pytest.mark.anyio
async def test_a_container_stopped_during_the_gate_fails_it_naming_the_troubled_service(
        tmp_path: Path) -> None:
    c = _Vanishing(server_line=["STARTING", "BACKOFF   Exited too quickly", "STARTING"])
    result = await health_gate(_ctx(tmp_path, c), "supervisorctl status", 60, lambda s: None,
                               poll=0)
    assert not result.passed
    assert result.culprit == "server", result.sentence()
    assert "the container stopped during the gate" in result.sentence()
    assert "BACKOFF" in result.sentence()
