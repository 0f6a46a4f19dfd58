"""The deploy server over real HTTP on loopback, with stand-in deploy steps (no engine).

The deploy itself against the engine is in test_deploy_engine.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from pathlib import Path

import aiohttp
import anyio
import pytest

from loon_supervisor.deploy import DeployContext, DeployStepFailed
from tests.deploy.support import (
    call,
    files_containing,
    make_settings,
    new_token,
    push_body,
    running_server,
    self_signed_cert,
    signed,
    wait_terminal,
)

pytestmark = pytest.mark.anyio


async def ok_step(ctx: DeployContext) -> None:
    ctx.log("stand-in step ran")


class GatedStep:
    """Runs until released, so a deploy can be observed while it runs."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.ids: list[str] = []

    async def __call__(self, ctx: DeployContext) -> None:
        self.ids.append(ctx.deploy_id)
        ctx.log("the supervisor printed this")
        self.started.set()
        await self.release.wait()


async def test_healthz_needs_no_auth(tmp_path: Path) -> None:
    async with running_server(make_settings(tmp_path, new_token()), ok_step) as srv:
        ans = await call("GET", f"{srv.url}/healthz")
        assert ans.status == 200 and ans.body == {"status": "ok"}
        assert ans.headers["Cache-Control"] == "no-store"


async def test_missing_wrong_and_right_tokens(tmp_path: Path) -> None:
    token = new_token()
    async with running_server(make_settings(tmp_path, token), ok_step) as srv:
        url = f"{srv.url}/deploy"
        missing = await call("POST", url)
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await call("POST", url, raw_auth="   ")).status == 401
        for wrong in ("nope", token[:-1], token + "x", f"Bearer {token[:-1]}",
                      f"Basic {token}", f"Bearer  {token}x", token.upper()):
            ans = await call("POST", url, raw_auth=wrong)
            assert ans.status == 403, wrong
            assert ans.body == {"error": "invalid token"}
        assert (await call("GET", f"{url}/20250101T000000Z-00000000", raw_auth="x")).status \
            == 403
        assert (await call("GET", f"{url}/20250101T000000Z-00000000")).status == 401
        for good in (token, f"Bearer {token}", f"bearer {token}", f"  Bearer {token}  "):
            ans = await call("POST", url, raw_auth=good)
            assert ans.status == 202, (good == token, ans.text)
            assert ans.body["status"] in ("queued", "running", "succeeded")
            assert ans.headers["Location"] == f"/deploy/{ans.body['id']}"
            done = await wait_terminal(srv.url, ans.body["id"], token)
            assert done["status"] == "succeeded" and done["reason"] is None


async def test_status_lifecycle_and_own_log_directory(tmp_path: Path) -> None:
    token = new_token()
    step = GatedStep()
    settings = make_settings(tmp_path, token)
    async with running_server(settings, step) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        assert ans.status == 202
        deploy_id = ans.body["id"]
        await step.started.wait()
        running = await call("GET", f"{srv.url}/deploy/{deploy_id}", token=token)
        assert running.body["status"] == "running" and running.body["startedAt"]
        step.release.set()
        done = await wait_terminal(srv.url, deploy_id, token)
        assert done["status"] == "succeeded" and done["finishedAt"]
    log_dir = settings.logs_root / deploy_id
    assert Path(done["logDir"]) == log_dir
    assert json.loads((log_dir / "status.json").read_text())["status"] == "succeeded"
    deploy_log = (log_dir / "deploy.log").read_text()
    assert "the supervisor printed this" in deploy_log
    assert f"deploy {deploy_id} succeeded" in deploy_log


async def test_concurrent_deploy_gets_409_with_running_id(tmp_path: Path) -> None:
    token = new_token()
    step = GatedStep()
    async with running_server(make_settings(tmp_path, token), step) as srv:
        url = f"{srv.url}/deploy"
        answers = await asyncio.gather(*(call("POST", url, token=token) for _ in range(6)))
        accepted = [a for a in answers if a.status == 202]
        refused = [a for a in answers if a.status == 409]
        assert len(accepted) == 1 and len(refused) == 5, [a.status for a in answers]
        first = accepted[0].body["id"]
        assert {a.body["running"] for a in refused} == {first}
        assert all(a.body["statusUrl"] == f"/deploy/{first}" for a in refused)
        await step.started.wait()
        again = await call("POST", url, token=token)
        assert again.status == 409 and again.body["running"] == first
        assert again.body["status"] == "running"
        step.release.set()
        await wait_terminal(srv.url, first, token)
        # Finished: the next deploy is accepted.
        step.started, step.release = anyio.Event(), anyio.Event()
        step.release.set()
        nxt = await call("POST", url, token=token)
        assert nxt.status == 202 and nxt.body["id"] != first
        await wait_terminal(srv.url, nxt.body["id"], token)
        assert step.ids == [first, nxt.body["id"]]


async def test_failing_deploy_reports_failed_with_reason(tmp_path: Path) -> None:
    token = new_token()

    async def failing(ctx: DeployContext) -> None:
        ctx.log("building")
        raise DeployStepFailed("starting the deployment failed: up exited with code 1")

    settings = make_settings(tmp_path, token)
    async with running_server(settings, failing) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        done = await wait_terminal(srv.url, ans.body["id"], token)
        assert done["status"] == "failed"
        assert done["reason"] == "starting the deployment failed: up exited with code 1"
        # A failed deploy does not block the next one.
        assert (await call("POST", f"{srv.url}/deploy", token=token)).status == 202
    log_text = (settings.logs_root / ans.body["id"] / "deploy.log").read_text()
    assert "failed: starting the deployment failed" in log_text


async def test_crashing_step_is_reported_and_server_keeps_serving(tmp_path: Path) -> None:
    token = new_token()

    async def crashing(ctx: DeployContext) -> None:
        raise RuntimeError("boom")

    async with running_server(make_settings(tmp_path, token), crashing) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        done = await wait_terminal(srv.url, ans.body["id"], token)
        assert done["status"] == "failed" and done["reason"] == "unexpected error: RuntimeError: boom"
        assert (await call("GET", f"{srv.url}/healthz")).status == 200


async def test_unknown_paths_wrong_methods_and_large_bodies(tmp_path: Path) -> None:
    token = new_token()
    settings = make_settings(tmp_path, token)
    async with running_server(settings, ok_step) as srv:
        for path in ("/", "/deploys", "/deploy/not-an-id", "/healthz/x"):
            ans = await call("GET", f"{srv.url}{path}", token=token)
            assert ans.status == 404, path
        unknown = await call("GET", f"{srv.url}/deploy/20250101T000000Z-00000000", token=token)
        assert unknown.status == 404 and "error" in unknown.body
        for method, path in (("GET", "/deploy"), ("PUT", "/deploy"), ("DELETE", "/deploy"),
                             ("POST", "/healthz"), ("POST", "/deploy/20250101T000000Z-00000000")):
            ans = await call(method, f"{srv.url}{path}", token=token)
            assert ans.status == 405, (method, path)
            assert ans.body == {"error": "method not allowed"}
            assert "Allow" in ans.headers
        big = b"x" * (settings.max_body_bytes + 1)
        ans = await call("POST", f"{srv.url}/deploy", token=token, data=big)
        assert ans.status == 413
        # Refused before authentication: no token needed to learn the limit, none consumed.
        assert (await call("POST", f"{srv.url}/deploy", data=big)).status == 413

        async def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(settings.max_body_bytes // 4096 + 2):
                yield b"y" * 4096

        ans = await call("POST", f"{srv.url}/deploy", token=token, data=chunks())
        assert ans.status == 413
        small = await call("POST", f"{srv.url}/deploy", token=token, data=b'{"ref": "main"}')
        assert small.status == 202


async def test_hmac_signature(tmp_path: Path) -> None:
    token, secret = new_token(), new_token()
    async with running_server(make_settings(tmp_path, token, webhook_secret=secret),
                              ok_step) as srv:
        url = f"{srv.url}/deploy"
        body = push_body()
        missing = await call("POST", url, token=token, data=body)
        assert missing.status == 401 and "X-Hub-Signature-256" in missing.body["error"]
        wrong = await call("POST", url, token=token, data=body, headers=signed(body, "other"))
        assert wrong.status == 403
        tampered = await call("POST", url, token=token, data=body + b" ",
                              headers=signed(body, secret))
        assert tampered.status == 403
        garbage = await call("POST", url, token=token, data=body,
                             headers={"X-Hub-Signature-256": "sha256=zz"})
        assert garbage.status == 403
        # The signature does not replace the token.
        assert (await call("POST", url, data=body, headers=signed(body, secret))).status == 401
        right = await call("POST", url, token=token, data=body, headers=signed(body, secret))
        assert right.status == 202, right.text
        await wait_terminal(srv.url, right.body["id"], token)
        empty = await call("POST", url, raw_auth=token, headers=signed(b"", secret))
        assert empty.status == 400 and "must name the commit" in empty.body["error"]


async def test_tls(tmp_path: Path) -> None:
    token = new_token()
    cert, key = self_signed_cert(tmp_path / "tls")
    async with running_server(make_settings(tmp_path, token, tls_cert=cert, tls_key=key),
                              ok_step) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        assert (await call("GET", f"{srv.url}/healthz", ssl_context=trust)).status == 200
        ans = await call("POST", f"{srv.url}/deploy", token=token, ssl_context=trust)
        assert ans.status == 202
        await wait_terminal(srv.url, ans.body["id"], token, ssl_context=trust)
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port: no answer
            await call("GET", srv.url.replace("https", "http") + "/healthz")


async def test_token_never_in_output_logs_or_answers(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token, secret = new_token(), new_token()

    async def chatty(ctx: DeployContext) -> None:
        print("deploying", ctx.deploy_id)
        ctx.log("step log line")
        raise DeployStepFailed("stand-in failure")

    settings = make_settings(tmp_path, token, webhook_secret=secret)
    answers = []
    async with running_server(settings, chatty) as srv:
        url = f"{srv.url}/deploy"
        answers.append(await call("POST", url))
        for auth in (token[:-1], token + "0", f"Bearer {token[1:]}", f"Token {token}"):
            answers.append(await call("POST", url, raw_auth=auth))
        body = push_body()
        answers.append(await call("POST", url, token=token, data=body,
                                  headers=signed(body, secret[:-1])))
        ok = await call("POST", url, token=token, data=body, headers=signed(body, secret))
        answers.append(ok)
        answers.append(await call("GET", f"{url}/{ok.body['id']}", raw_auth=token[:-1]))
        await wait_terminal(srv.url, ok.body["id"], token)
        answers.append(await call("GET", f"{url}/{ok.body['id']}", token=token))
    out, err = capfd.readouterr()
    assert "deploying" in out + err or "deploying" in (settings.logs_root / ok.body["id"] /
                                                      "deploy.log").read_text()
    for needle in (token, secret, token[:16], secret[:16]):
        assert needle not in out and needle not in err
        assert needle not in caplog.text
        for a in answers:
            assert needle not in a.text and needle not in json.dumps(a.headers)
        assert files_containing(settings.logs_root, needle) == []
    assert "refused: wrong token (403)" in caplog.text
    assert "refused: no Authorization header (401)" in caplog.text
