"""The HTTP interface (aiohttp's server, which comes with aiodocker).

==================  ======  ==============================================================
``GET /healthz``    no auth ``{"status": "ok"}``
``POST /deploy``    auth    202 + the new deploy; 409 + the running deploy's id when busy
``GET /deploy/ID``  auth    the deploy's status: queued, running, succeeded, failed+reason
==================  ======  ==============================================================

Auth: ``Authorization: <token>`` or ``Authorization: Bearer <token>`` (missing: 401, wrong:
403) and, when a webhook secret is configured, ``X-Hub-Signature-256`` over the raw body
(missing: 401, wrong: 403). Bodies above the limit: 413. Unknown paths: 404; wrong methods:
405. Every answer is JSON and ``Cache-Control: no-store``. Nothing about a credential is
logged or echoed: log lines name the client address and the outcome only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from loon_supervisor.deploy.auth import Verdict, check_signature, check_token
from loon_supervisor.deploy.runner import DEPLOY_ID_PATTERN, DeployBusy, DeployRunner
from loon_supervisor.deploy.settings import ServerSettings

log = logging.getLogger("loon_supervisor.deploy")

SETTINGS_KEY: web.AppKey[ServerSettings] = web.AppKey("settings", ServerSettings)
RUNNER_KEY: web.AppKey[DeployRunner] = web.AppKey("runner", DeployRunner)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(status: int, body: dict, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405/413 answers as JSON, and no-store on everything."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        message = {404: "not found", 405: "method not allowed"}.get(exc.status, exc.reason)
        if exc.status == 413:
            max_size = request.app[SETTINGS_KEY].max_body_bytes
            message = f"request body larger than {max_size} bytes"
        response = _error(exc.status, message, headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def _authenticate(request: web.Request) -> web.Response | None:
    """None when the token is right; otherwise the 401/403 answer."""
    settings = request.app[SETTINGS_KEY]
    verdict = check_token(request.headers.get("Authorization"), settings.token)
    if verdict is Verdict.OK:
        return None
    who = request.remote or "?"
    if verdict is Verdict.MISSING:
        log.warning("%s %s from %s refused: no Authorization header (401)",
                    request.method, request.path, who)
        return _error(401, "missing Authorization header",
                      {"WWW-Authenticate": 'Bearer realm="loon-deploy"'})
    log.warning("%s %s from %s refused: wrong token (403)", request.method, request.path, who)
    return _error(403, "invalid token")


async def healthz(request: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


async def post_deploy(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    runner = request.app[RUNNER_KEY]
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(settings.max_body_bytes, request.content_length)
    refused = _authenticate(request)
    if refused is not None:
        return refused
    body = await request.read()  # raises 413 past client_max_size (chunked bodies too)
    if settings.webhook_secret is not None:
        verdict = check_signature(request.headers.get("X-Hub-Signature-256"), body,
                                  settings.webhook_secret)
        if verdict is not Verdict.OK:
            code = 401 if verdict is Verdict.MISSING else 403
            what = "missing" if verdict is Verdict.MISSING else "wrong"
            log.warning("POST /deploy from %s refused: %s X-Hub-Signature-256 (%d)",
                        request.remote or "?", what, code)
            return _error(code, f"{what} X-Hub-Signature-256 signature")
    try:
        record = runner.submit()
    except DeployBusy as busy:
        running = busy.running
        log.info("POST /deploy from %s refused: deploy %s is %s (409)",
                 request.remote or "?", running.id, running.status)
        return _json(409, {"error": f"deploy {running.id} is {running.status}; try again later",
                           "running": running.id, "status": str(running.status),
                           "statusUrl": f"/deploy/{running.id}"})
    log.info("deploy %s accepted from %s", record.id, request.remote or "?")
    url = f"/deploy/{record.id}"
    return _json(202, {**record.to_json(), "statusUrl": url}, {"Location": url})


async def get_deploy(request: web.Request) -> web.Response:
    refused = _authenticate(request)
    if refused is not None:
        return refused
    record = request.app[RUNNER_KEY].get(request.match_info["deploy_id"])
    if record is None:
        return _error(404, "no such deploy (ids are kept until the server restarts)")
    return _json(200, record.to_json())


def make_app(settings: ServerSettings, runner: DeployRunner) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_json_errors])
    app[SETTINGS_KEY] = settings
    app[RUNNER_KEY] = runner
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/deploy", post_deploy)
    app.router.add_get("/deploy/{deploy_id:" + DEPLOY_ID_PATTERN + "}", get_deploy)
    return app
