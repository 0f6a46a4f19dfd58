"""Issue 26: the deploy server's second hardening pass, each attack reproduced on loopback
(in-process server, stand-in deploy steps). Subprocess and engine-free attacks that need
``prlimit`` or signals are in test_deploy_exhaustion.py and test_deploy_children.py."""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

from loon_supervisor.deploy import DeployContext
from loon_supervisor.deploy import runner as runner_mod
from tests.deploy.support import call, make_settings, new_token, running_server, wait_terminal

pytestmark = pytest.mark.anyio


async def ok_step(ctx: DeployContext) -> None:
    ctx.log("stand-in step ran")


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        s.settimeout(5)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_percent_encoded_newline_in_a_path_cannot_forge_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = new_token()
    caplog.set_level(logging.DEBUG)
    fake = "2026-12-04 13:00:00,000 INFO deploy FAKE succeeded"
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        port = _port(srv.url)
        for path in ("/deploy%0A" + fake.replace(" ", "%20"),
                     "/deploy%0D%0A" + fake.replace(" ", "%20"),
                     "/healthz%0A" + fake.replace(" ", "%20"),
                     f"/{token}", f"/deploy/{token}"):
            answer = await anyio.to_thread.run_sync(
                _raw, port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                f"Connection: close\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 4"), answer[:40]
    messages = [r.getMessage() for r in caplog.records]
    assert messages, "the access log logged nothing"
    for message in messages:
        assert "\n" not in message and "\r" not in message, message
        assert "FAKE" not in message and token not in message, message
    assert any("<other path" in m for m in messages)


async def test_a_log_that_cannot_be_opened_fails_the_deploy_and_the_server_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Descriptors exhausted (EMFILE) while opening deploy.log: 202, then the deploy is
    failed with the reason; the server keeps answering and deploys again afterwards."""
    token = new_token()
    real_open = os.open
    broken = {"on": True}

    def failing_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if broken["on"] and os.fspath(path).endswith("deploy.log"):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(runner_mod.os, "open", failing_open)
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        for _ in range(3):
            ans = await call("POST", f"{srv.url}/deploy", token=token)
            assert ans.status == 202, ans.text
            done = await wait_terminal(srv.url, ans.body["id"], token)
            assert done["status"] == "failed"
            assert "cannot open the deploy's log" in done["reason"]
            assert "Too many open files" in done["reason"]
        broken["on"] = False
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        assert (await wait_terminal(srv.url, ans.body["id"], token))["status"] == "succeeded"
        assert (await call("GET", f"{srv.url}/healthz")).status == 200


async def test_a_deploy_directory_that_cannot_be_made_is_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = new_token()
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        def full(self: Path, *args: Any, **kwargs: Any) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(Path, "mkdir", full)
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        monkeypatch.undo()
        assert ans.status == 503 and "No space left on device" in ans.body["error"]
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        assert ans.status == 202


async def test_bearer_with_a_tab_is_accepted(tmp_path: Path) -> None:
    token = new_token()
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        ans = await anyio.to_thread.run_sync(
            _raw, _port(srv.url), f"POST /deploy HTTP/1.1\r\nHost: x\r\nAuthorization: "
            f"Bearer\t{token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        assert ans.startswith(b"HTTP/1.1 202"), ans[:60]


async def test_unknown_deploy_404_tells_the_retention_truth(tmp_path: Path) -> None:
    token = new_token()
    async with running_server(make_settings(tmp_path, token, keep_deploys=7), ok_step) as srv:
        ans = await call("GET", f"{srv.url}/deploy/20250101T000000Z-00000000", token=token)
        assert ans.status == 404
        assert "restarts)" in ans.body["error"] and "newest 7" in ans.body["error"]
        assert "until the server restarts" not in ans.body["error"]


async def test_deeply_nested_json_is_400_not_500(tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token, require_ref="main")
    async with running_server(settings, ok_step) as srv:
        for body in (b"[" * 30000 + b"]" * 30000, b'{"a":' * 10000 + b"1" + b"}" * 10000):
            ans = await call("POST", f"{srv.url}/deploy", token=token, data=body)
            assert ans.status == 400, ans.status
            assert "nested deeper than" in ans.body["error"]
        ans = await call("POST", f"{srv.url}/deploy", token=token, data=b'"[[[["')
        assert ans.status == 400 and "JSON object" in ans.body["error"]
        ok = await call("POST", f"{srv.url}/deploy", token=token,
                        data=b'{"ref": "refs/heads/main", "x": [[["[[[[[[[[[[[[[[[[["]]]}')
        assert ok.status == 202, ok.text


def test_ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() -> None:
    from loon_supervisor.deploy.handshake_guard import Admission, client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    admission = Admission(total=100, per_client=3)
    tickets = [admission.admit(f"2001:db8:1:2::{n:x}") for n in range(1, 4)]
    assert all(tickets)
    assert admission.admit("2001:db8:1:2::ffff") is None  # same /64: over its cap
    assert admission.admit("2001:db8:1:3::1") is not None  # another /64
    for ticket in tickets:
        assert ticket is not None
        ticket.release()
        ticket.release()  # twice is harmless
    assert admission.by_client.get(client_key("2001:db8:1:2::1")) is None


def test_allow_from_is_decided_at_accept() -> None:
    import ipaddress

    from loon_supervisor.deploy.handshake_guard import Admission

    admission = Admission(10, 10, [ipaddress.ip_network("192.0.2.0/24")])
    assert admission.admit("192.0.2.9") is not None
    assert admission.admit("::ffff:192.0.2.9") is not None
    assert admission.admit("198.51.100.1") is None and admission.admit("nonsense") is None


def _through_proxy(port: int, forwarded_for: str, auth: str, method: str = "POST",
                   path: str = "/deploy") -> int:
    """What a reverse proxy at 127.0.0.3 sends: the client's request plus the address it
    saw, appended to X-Forwarded-For (here the attacker also sent one of its own)."""
    with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.3", 0)) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                  f"X-Forwarded-For: {forwarded_for}\r\nContent-Length: 0\r\n"
                  "Connection: close\r\n\r\n".encode())
        s.settimeout(5)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("trusted", [True, False])
async def test_wrong_tokens_through_a_proxy_never_lock_ci_out(tmp_path: Path,
                                                              trusted: bool) -> None:
    """10 wrong requests through the proxy (the attacker's address in X-Forwarded-For, and
    a forged one before it), then CI's right request through the same proxy is accepted.
    With --trusted-proxy the attacker alone is locked out; without it X-Forwarded-For is
    ignored (no escape by inventing addresses) and only the right token passes."""
    token = new_token()
    extra = {"trusted_proxy": ["127.0.0.3"]} if trusted else {}
    settings = make_settings(tmp_path, token, max_auth_failures=10, **extra)
    async with running_server(settings, ok_step) as srv:
        port = _port(srv.url)

        def attack(n: int) -> list[int]:
            return [_through_proxy(port, f"10.9.9.{i}, 198.51.100.7", f"Bearer {'x' * 48}")
                    for i in range(n)]

        codes = await anyio.to_thread.run_sync(attack, 12)
        assert codes[:10] == [403] * 10 and codes[10:] == [429] * 2, codes
        ci = await anyio.to_thread.run_sync(_through_proxy, port, "203.0.113.5",
                                            f"Bearer {token}")
        assert ci == 202
        # the right token from the attacker's own address passes too: the lockout never
        # refuses the right credentials
        again = await anyio.to_thread.run_sync(_through_proxy, port, "198.51.100.7",
                                               f"Bearer {token}", "GET", "/healthz")
        assert again == 200
        other_wrong = await anyio.to_thread.run_sync(_through_proxy, port, "203.0.113.5",
                                                     "Bearer " + "z" * 48)
        # trusted: another client is not locked out by the attacker; untrusted: all one key
        assert other_wrong == (403 if trusted else 429)


async def test_a_captured_signed_push_replayed_with_a_new_delivery_id_cannot_redeploy(
        tmp_path: Path) -> None:
    from tests.deploy.support import push_body, signed

    token, secret = new_token(), new_token()
    settings = make_settings(tmp_path, token, webhook_secret=secret)
    commit = "a" * 39 + "1"
    body = push_body(commit)
    async with running_server(settings, ok_step) as srv:
        url = f"{srv.url}/deploy"
        first = await call("POST", url, token=token, data=body, headers=signed(body, secret))
        assert first.status == 202
        await wait_terminal(srv.url, first.body["id"], token)
        replay = await call("POST", url, token=token, data=body, headers=signed(body, secret))
        assert replay.status == 409, replay.text
        assert f"commit {commit} was already deployed" in replay.body["error"]
    async with running_server(settings, ok_step) as srv:  # remembered across a restart
        url = f"{srv.url}/deploy"
        replay = await call("POST", url, token=token, data=body, headers=signed(body, secret))
        assert replay.status == 409
        forced = push_body(commit, force=True)  # a new signed body: the secret's holder
        again = await call("POST", url, token=token, data=forced,
                           headers=signed(forced, secret))
        assert again.status == 202, again.text
        await wait_terminal(srv.url, again.body["id"], token)
    deploys = [p for p in settings.logs_root.iterdir() if p.is_dir()]
    assert len(deploys) == 2  # the first request and the forced one


async def test_a_failed_commit_may_be_deployed_again(tmp_path: Path) -> None:
    from loon_supervisor.deploy import DeployStepFailed
    from tests.deploy.support import push_body, signed

    outcomes = ["fail", "ok"]

    async def flaky(ctx: DeployContext) -> None:
        if outcomes.pop(0) == "fail":
            raise DeployStepFailed("stand-in failure")

    token, secret = new_token(), new_token()
    body = push_body()
    async with running_server(make_settings(tmp_path, token, webhook_secret=secret),
                              flaky) as srv:
        url = f"{srv.url}/deploy"
        for want in ("failed", "succeeded"):
            ans = await call("POST", url, token=token, data=body, headers=signed(body, secret))
            assert ans.status == 202, ans.text
            assert (await wait_terminal(srv.url, ans.body["id"], token))["status"] == want
        ans = await call("POST", url, token=token, data=body, headers=signed(body, secret))
        assert ans.status == 409


async def test_a_push_older_than_the_deployed_commit_is_refused_even_forced(
        tmp_path: Path) -> None:
    import subprocess

    from tests.deploy.support import push_body, signed

    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    commits = []
    for n in range(2):
        (work / "f").write_text(f"{n}\n")
        subprocess.run(["git", "-C", str(work), "add", "f"], check=True)
        subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-qm", f"c{n}"], check=True)
        commits.append(subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"],
                                      check=True, capture_output=True, text=True).stdout.strip())
    token, secret = new_token(), new_token()
    settings = make_settings(tmp_path, token, webhook_secret=secret, git_branch="main",
                             repo_dir=work)
    async with running_server(settings, ok_step) as srv:
        url = f"{srv.url}/deploy"
        for body in (push_body(commits[0]), push_body(commits[0], force=True)):
            old = await call("POST", url, token=token, data=body, headers=signed(body, secret))
            assert old.status == 409 and "older than the deployed commit" in old.body["error"]
        head = push_body(commits[1])
        ok = await call("POST", url, token=token, data=head, headers=signed(head, secret))
        assert ok.status == 202, ok.text


def test_without_a_webhook_secret_the_start_up_says_what_protects_against_replays(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path, new_token())
    assert any("nothing but TLS and the token protects against a replayed request" in w
               for w in settings.warnings)
    assert not any("replayed" in w for w in make_settings(
        tmp_path, new_token(), webhook_secret=new_token()).warnings)


async def test_each_deploys_session_logs_are_pruned_with_its_record(tmp_path: Path) -> None:
    """A stand-in for ``up -d``: each deploy makes a session directory the way the real
    one does (new_session_dir, the ``latest`` link) and says where, as up does."""
    from loon_supervisor.sinks.session import new_session_dir

    project_logs = tmp_path / "logs"
    sessions: list[Path] = []

    async def up_like(ctx: DeployContext) -> None:
        await anyio.sleep(1.1)  # session names are per second
        session = new_session_dir(project_logs)
        (session / "out.log").write_text("x\n")
        sessions.append(session)
        ctx.log(f"logs are in {session} (a background logger keeps writing them)")

    token = new_token()
    settings = make_settings(tmp_path, token, keep_deploys=2)
    async with running_server(settings, up_like) as srv:
        for _ in range(4):
            ans = await call("POST", f"{srv.url}/deploy", token=token)
            await wait_terminal(srv.url, ans.body["id"], token)
    assert [s.exists() for s in sessions] == [False, False, True, True]
    assert (project_logs / "latest").resolve() == sessions[-1]


def test_the_latest_session_is_never_pruned(tmp_path: Path) -> None:
    from loon_supervisor.deploy.session_prune import prune_sessions
    from loon_supervisor.sinks.session import new_session_dir

    live = new_session_dir(tmp_path / "logs")
    deploy_dir = tmp_path / "d"
    deploy_dir.mkdir()
    (deploy_dir / "deploy.log").write_text(f"x logs are in {live} (...)\n"
                                           f"x logs are in {tmp_path / 'etc'}\n")
    (tmp_path / "etc").mkdir()
    prune_sessions(deploy_dir)
    assert live.exists() and (tmp_path / "etc").exists()  # latest; not a session name


async def test_a_child_that_cannot_start_fails_the_deploy_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No descriptor left for a child's pipes: the deploy fails saying so (no traceback,
    no 'unexpected error'), and the server keeps serving."""
    from loon_supervisor.deploy.runner import run_loon

    async def no_pipes(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(runner_mod.anyio, "open_process", no_pipes)

    async def step(ctx: DeployContext) -> None:
        await run_loon(ctx, "down")

    token = new_token()
    async with running_server(make_settings(tmp_path, token), step) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        done = await wait_terminal(srv.url, ans.body["id"], token)
        assert done["status"] == "failed"
        assert done["reason"] == "cannot start loon down: Too many open files"
        assert (await call("GET", f"{srv.url}/healthz")).status == 200


async def test_throttled_warnings_sum_up_a_burst_that_stopped(
        caplog: pytest.LogCaptureFixture) -> None:
    from loon_supervisor.deploy.handshake_guard import Throttled

    caplog.set_level(logging.WARNING, logger="loon_supervisor.deploy")
    throttle = Throttled(quiet=0.3)
    for _ in range(500):
        throttle.note(lambda n: f"refused {n} time(s)")
    with anyio.fail_after(10):
        while len(caplog.records) < 2:
            await anyio.sleep(0.05)
    assert [r.getMessage() for r in caplog.records] == ["refused 1 time(s)",
                                                        "refused 499 time(s)"]
