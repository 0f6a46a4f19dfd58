"""Issue 15 over real HTTP on loopback: timeouts, connection caps, 429, nothing secret in
any output, malformed requests, and the deploy timeout. Short limits keep them fast."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import aiohttp
import anyio
import pytest

from loon_supervisor.deploy import DeployContext
from tests.deploy.support import (
    call,
    make_settings,
    new_token,
    push_body,
    running_server,
    signed,
    wait_terminal,
)

pytestmark = pytest.mark.anyio


async def ok_step(ctx: DeployContext) -> None:
    ctx.log("stand-in step ran")


async def hung_step(ctx: DeployContext) -> None:
    await anyio.sleep_forever()


def _open_idle(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                    source_address=(source, 0))
    sock.settimeout(5)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return False


async def test_idle_sockets_neither_delay_nor_outlive_the_header_timeout(
        tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token, header_timeout=1.5)
    async with running_server(settings, ok_step) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        # 200 idle sockets from another loopback address: 10 held (per-client cap), 190
        # closed at once; a half-sent header counts as idle too.
        # (in a thread: a blocking connect here would stall the server's own event loop)
        socks = await anyio.to_thread.run_sync(
            lambda: [_open_idle(port, "127.0.0.2") for _ in range(200)])
        socks[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            start = time.monotonic()
            ans = await call("GET", f"{srv.url}/deploy/20250101T000000Z-00000000", token=token)
            assert ans.status == 404
            assert time.monotonic() - start < 1.0
            await anyio.sleep(2.5)  # past the header timeout
            closed = await anyio.to_thread.run_sync(
                lambda: sum(_closed_by_server(s) for s in socks))
            assert closed == 200
        finally:
            for s in socks:
                s.close()


async def test_query_token_never_in_any_output(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    token = new_token()
    caplog.set_level(logging.DEBUG)
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        ans = await call("GET", f"{srv.url}/deploy/20250101T000000Z-00000000?token={token}")
        assert ans.status == 401 and token not in ans.text
        ans = await call("POST", f"{srv.url}/deploy?token={token}", token=token)
        assert ans.status == 202 and token not in ans.text
        await wait_terminal(srv.url, ans.body["id"], token)
    out, err = capfd.readouterr()
    everything = caplog.text + out + err
    assert "/deploy" in caplog.text  # the access log did log the requests
    assert token not in everything and token[:12] not in everything


async def test_twenty_wrong_tokens_then_429(tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token, max_auth_failures=10)
    async with running_server(settings, ok_step) as srv:
        codes = [(await call("POST", f"{srv.url}/deploy", raw_auth="x" * 40)).status
                 for _ in range(20)]
        assert codes[:10] == [403] * 10 and codes[10:] == [429] * 10, codes
        blocked = await call("POST", f"{srv.url}/deploy", raw_auth="y" * 40)
        assert blocked.status == 429 and int(blocked.headers["Retry-After"]) >= 1
        # the right token is never refused for the address's failures (issue 26)
        assert (await call("POST", f"{srv.url}/deploy", token=token)).status == 202


async def test_duplicate_authorization_and_malformed_requests(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = new_token()
    caplog.set_level(logging.DEBUG)
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        port = int(srv.url.rsplit(":", 1)[1])

        def raw(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request)
                s.settimeout(5)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                return data

        dup = await anyio.to_thread.run_sync(raw, (
            f"POST /deploy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode())
        assert dup.startswith(b"HTTP/1.1 400") and b"more than one Authorization" in dup
        secret_bytes = b"SENDERSBYTES" + b"q" * 50
        bad = await anyio.to_thread.run_sync(raw, b"GET /x HTTP/1.1\r\nHost: x\r\n"
                                             b"Bad Header\x01" + secret_bytes + b"\r\n\r\n")
        head, _, body = bad.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"400"
        assert b"Cache-Control: no-store" in head and b"Server: loon-deploy" in head
        assert body.startswith(b'{"error"') and b"SENDERSBYTES" not in bad
    assert "SENDERSBYTES" not in caplog.text and "Traceback" not in caplog.text
    lines = [r for r in caplog.records if "refused: 400" in r.getMessage()]
    assert lines and all(r.exc_info is None for r in lines)


async def test_answers_carry_a_minimal_server_header(tmp_path: Path) -> None:
    async with running_server(make_settings(tmp_path, new_token()), ok_step) as srv:
        for path in ("/healthz", "/nope"):
            ans = await call("GET", srv.url + path)
            assert ans.headers["Server"] == "loon-deploy"
            assert ans.headers["Cache-Control"] == "no-store"


async def test_hung_deploy_fails_at_the_timeout_and_frees_the_lock(tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token, deploy_timeout=1.0)
    async with running_server(settings, hung_step) as srv:
        first = await call("POST", f"{srv.url}/deploy", token=token)
        assert first.status == 202
        done = await wait_terminal(srv.url, first.body["id"], token, timeout=10)
        assert done["status"] == "failed" and "deploy timeout of 1 s" in done["reason"]
        again = await call("POST", f"{srv.url}/deploy", token=token)
        assert again.status == 202, again.text


async def test_replayed_delivery_gets_409_and_no_deploy_even_after_restart(
        tmp_path: Path) -> None:
    token, secret = new_token(), new_token()
    settings = make_settings(tmp_path, token, webhook_secret=secret)
    body = push_body()
    headers = signed(body, secret, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    async with running_server(settings, ok_step) as srv:
        first = await call("POST", f"{srv.url}/deploy", token=token, data=body, headers=headers)
        assert first.status == 202
        await wait_terminal(srv.url, first.body["id"], token)
        again = await call("POST", f"{srv.url}/deploy", token=token, data=body, headers=headers)
        assert again.status == 409 and "already received" in again.body["error"]
        unsigned_id = await call("POST", f"{srv.url}/deploy", token=token, data=body,
                                 headers={k: v for k, v in headers.items()
                                          if k != "X-GitHub-Delivery"})
        assert unsigned_id.status == 400
    async with running_server(settings, ok_step) as srv:  # remembered across a restart
        again = await call("POST", f"{srv.url}/deploy", token=token, data=body, headers=headers)
        assert again.status == 409
    deploys = [p for p in settings.logs_root.iterdir() if p.is_dir()]
    assert len(deploys) == 1  # only the first request deployed
    assert oct(settings.logs_root.stat().st_mode & 0o777) == "0o700"
    assert oct(deploys[0].stat().st_mode & 0o777) == "0o700"


async def test_event_and_ref_rules(tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token, require_push_event=True, require_ref="main")
    async with running_server(settings, ok_step) as srv:
        url = f"{srv.url}/deploy"
        ping = await call("POST", url, token=token, headers={"X-GitHub-Event": "ping"})
        assert ping.status == 200 and ping.body["status"] == "ignored"
        other = await call("POST", url, token=token, data=b'{"ref": "refs/heads/dev"}',
                           headers={"X-GitHub-Event": "push"})
        assert other.status == 200 and other.body["status"] == "ignored"
        issue = await call("POST", url, token=token, data=b'{"ref": "refs/heads/main"}',
                           headers={"X-GitHub-Event": "issues"})
        assert issue.status == 400
        ok = await call("POST", url, token=token, data=b'{"ref": "refs/heads/main"}',
                        headers={"X-GitHub-Event": "push"})
        assert ok.status == 202


async def test_source_allowlist(tmp_path: Path) -> None:
    """Enforced at accept: an address outside --allow-from gets its connection closed
    before any HTTP (or TLS) work, so it gets no answer at all."""
    token = new_token()
    async with running_server(make_settings(tmp_path, token, allow_from=["10.0.0.0/8"]),
                              ok_step) as srv:
        with pytest.raises(aiohttp.ClientConnectionError):
            await call("POST", f"{srv.url}/deploy", token=token)
        assert not [p for p in srv.settings.logs_root.iterdir() if p.is_dir()]
    async with running_server(make_settings(tmp_path, token, allow_from=["127.0.0.1"]),
                              ok_step) as srv:
        assert (await call("POST", f"{srv.url}/deploy", token=token)).status == 202


async def test_records_survive_restarts_and_retention_deletes_the_oldest(
        tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token, keep_deploys=2)
    ids = []
    async with running_server(settings, ok_step) as srv:
        for _ in range(3):
            ans = await call("POST", f"{srv.url}/deploy", token=token)
            ids.append(ans.body["id"])
            await wait_terminal(srv.url, ans.body["id"], token)
    assert not (settings.logs_root / ids[0]).exists()
    async with running_server(settings, ok_step) as srv:
        assert (await call("GET", f"{srv.url}/deploy/{ids[0]}", token=token)).status == 404
        for deploy_id in ids[1:]:
            ans = await call("GET", f"{srv.url}/deploy/{deploy_id}", token=token)
            assert ans.status == 200 and ans.body["status"] == "succeeded"
    modes = {oct(p.stat().st_mode & 0o777) for p in settings.logs_root.rglob("*")}
    assert modes <= {"0o700", "0o600"}, modes
