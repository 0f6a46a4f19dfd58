"""Live logs over Server-Sent Events, read from the session files (no engine needed: the
files are written here as the logger would)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from loon_supervisor.dashboard import logs as dash_logs
from loon_supervisor.dashboard.logs import WATCHERS_KEY
from loon_supervisor.sinks.session import new_session_dir
from tests.dashboard.support import browser, dash_settings, new_secret, serving, sign_in

pytestmark = pytest.mark.anyio


def session(project: Path, **files: bytes) -> Path:
    d = new_session_dir(project / "logs")
    for name, data in files.items():
        (d / f"{name}.log").write_bytes(data)
    return d


async def events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str | None, Any]]:
    ident: str | None = None
    async for raw in resp.content:
        line = raw.decode("utf-8").rstrip("\n")
        if line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("data: "):
            yield ident, json.loads(line[6:])


async def collect_until(resp: aiohttp.ClientResponse, last: str, timeout: float = 20
                        ) -> tuple[list[str], str | None]:
    got: list[str] = []
    ident = None
    with anyio.fail_after(timeout):  # a liveness bound, not a performance claim
        async for event_id, msg in events(resp):
            ident = event_id
            got += msg["l"]
            if last in msg["l"]:
                break
    return got, ident


async def test_appended_lines_stream_as_text_with_bad_utf8_replaced(
        project: Path, tmp_path: Path) -> None:
    d = session(project, alpha=b"old 1\nold 2\n")
    password = new_secret()
    async with serving(dash_settings(tmp_path, password=password, token=new_secret())) as s, \
            browser() as client:
        async with client.get(f"{s.url}/dashboard/logs/stream?service=alpha") as r:
            assert r.status == 401
        await sign_in(client, s.url, password)
        async with client.get(f"{s.url}/dashboard/logs/stream?service=alpha") as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            with (d / "alpha.log").open("ab") as fh:
                fh.write(b"<script>alert(1)</script>\nbad \xff\xfe byte\npartial")
            got, _ = await collect_until(r, "bad \ufffd\ufffd byte")
        assert got == ["old 1", "old 2", "<script>alert(1)</script>", "bad \ufffd\ufffd byte"]
        async with client.get(f"{s.url}/dashboard/logs/stream?service=../etc") as r:
            assert r.status == 404


async def test_a_reconnect_with_last_event_id_loses_and_repeats_nothing(
        project: Path, tmp_path: Path) -> None:
    d = session(project, alpha=b"", beta=b"")
    password = new_secret()
    async with serving(dash_settings(tmp_path, password=password, token=new_secret())) as s, \
            browser() as client:
        await sign_in(client, s.url, password)
        url = f"{s.url}/dashboard/logs/stream?service=alpha&service=beta"
        async with client.get(url) as r:
            with (d / "alpha.log").open("a") as fa, (d / "beta.log").open("a") as fb:
                fa.write("a1\na2\n")
                fb.write("b1\n")
            first, ident = await collect_until(r, "a2")
        with (d / "alpha.log").open("a") as fa, (d / "beta.log").open("a") as fb:
            fa.write("a3\n")
            fb.write("b2\n")
        async with client.get(url, headers={"Last-Event-ID": ident or ""}) as r:
            second: list[str] = []
            with anyio.fail_after(20):
                async for _, msg in events(r):
                    second += msg["l"]
                    if "a3" in second and "b2" in second:
                        break
        assert sorted(first + second) == ["a1", "a2", "a3", "b1", "b2"]


async def test_a_stalled_viewer_never_stalls_the_others(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dash_logs, "WRITE_TIMEOUT_S", 2.0)
    d = session(project, alpha=b"")
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret())
    async with serving(settings) as s, browser() as client:
        r = await sign_in(client, s.url, password)
        cookie = r.cookies["loon-dashboard"].value
        host, port = s.url.removeprefix("http://").rsplit(":", 1)
        stalled = socket.create_connection((host, int(port)))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(f"GET /dashboard/logs/stream?service=alpha HTTP/1.1\r\nHost: {host}\r\n"
                        f"Cookie: loon-dashboard={cookie}\r\n\r\n".encode())
        watchers = s._app_runner.app[WATCHERS_KEY]  # type: ignore[union-attr]
        path = d / "alpha.log"
        async with client.get(f"{s.url}/dashboard/logs/stream?service=alpha") as live:
            with anyio.fail_after(10):
                while watchers._watches.get(path) is None or \
                        watchers._watches[path].viewers < 2:
                    await anyio.sleep(0.05)
            line = "x" * 200
            with path.open("a") as fh:  # ~20 MB: far more than the stalled socket holds
                for i in range(100_000):
                    fh.write(f"{i} {line}\n")
                fh.write("the last line\n")
            got, _ = await collect_until(live, "the last line", timeout=60)
            assert len(got) == 100_001 and got[0].startswith("0 ")
            # the stalled viewer is disconnected after WRITE_TIMEOUT_S; the live one stays
            with anyio.fail_after(30):
                while watchers._watches[path].viewers > 1:
                    await anyio.sleep(0.1)
            with path.open("a") as fh:
                fh.write("after\n")
            more, _ = await collect_until(live, "after")
            assert more == ["after"]
        stalled.close()


async def test_the_download_is_the_session_file_as_an_attachment(
        project: Path, tmp_path: Path) -> None:
    data = b"one\n<b>two</b>\n\xff\n"
    session(project, alpha=data)
    password = new_secret()
    async with serving(dash_settings(tmp_path, password=password, token=new_secret())) as s, \
            browser() as client:
        async with client.get(f"{s.url}/dashboard/logs/download/alpha") as r:
            assert r.status == 401
        await sign_in(client, s.url, password)
        async with client.get(f"{s.url}/dashboard/logs/download/alpha") as r:
            assert r.status == 200 and await r.read() == data
            assert r.headers["Content-Disposition"].startswith("attachment")
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        async with client.get(f"{s.url}/dashboard/logs?service=alpha") as r:
            text = await r.text()
        assert 'data-stream="/dashboard/logs/stream?service=alpha"' in text


async def test_open_live_streams_do_not_hold_up_a_server_stop(project: Path, tmp_path: Path
                                                              ) -> None:
    """aiohttp waits up to 60 s for running handlers at shutdown; the streams end at once."""
    session(project, alpha=b"one\n")
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret())
    async with browser() as client:
        async with serving(settings) as s:
            await sign_in(client, s.url, password)
            r = await client.get(f"{s.url}/dashboard/logs/stream?service=alpha")
            await collect_until(r, "one")
            stopping = anyio.current_time()
        # a liveness bound, not a performance figure: the stop is shielded from cancelling,
        # so only the elapsed time tells "at once" (~0 s) from aiohttp's 60 s wait
        assert anyio.current_time() - stopping < 30
        r.close()
