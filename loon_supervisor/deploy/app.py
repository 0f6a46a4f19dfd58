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
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from loon_supervisor.deploy.auth import Verdict, check_signature, check_token
from loon_supervisor.deploy.client_id import client_address
from loon_supervisor.deploy.commits import CommitLog, NoCommit, older_than_head, pushed_commit
from loon_supervisor.deploy.guard import JSON_HEADERS, GuardedHandler
from loon_supervisor.deploy.handshake_guard import Throttled, client_key
from loon_supervisor.deploy.logsafe import loggable_path
from loon_supervisor.deploy.payload import BadPayload, parse_object
from loon_supervisor.deploy.replay import DELIVERY_RE, DeliveryLog
from loon_supervisor.deploy.runner import (
    DEPLOY_ID_PATTERN,
    DeployBusy,
    DeployRunner,
    DeployStatus,
    NotActive,
)
from loon_supervisor.deploy.settings import ServerSettings
from loon_supervisor.versions.reference import NotAllowed, requested_version

log = logging.getLogger("loon_supervisor.deploy")

SETTINGS_KEY: web.AppKey[ServerSettings] = web.AppKey("settings", ServerSettings)
RUNNER_KEY: web.AppKey[DeployRunner] = web.AppKey("runner", DeployRunner)


class AuthFailures:
    """Failed authentications per client (an IPv4 address or an IPv6 /64) in the last
    ``window`` seconds; a client at the limit gets 429 for every request without the right
    token until old failures age out."""

    def __init__(self, limit: int, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = time.monotonic()
        times = self._seen.get(client, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds until the client may try again, or None when it may now."""
        times = self._recent(client)
        if len(times) < self.limit:
            return None
        return max(1, int(self.window - (time.monotonic() - times[0])) + 1)

    def failed(self, client: str) -> None:
        if client not in self._seen and len(self._seen) >= self.max_clients:
            self._seen.pop(next(iter(self._seen)))  # bounded memory: forget the oldest
        times = self._recent(client)
        times.append(time.monotonic())
        self._seen[client] = times


FAILURES_KEY: web.AppKey[AuthFailures] = web.AppKey("failures", AuthFailures)
LOCKOUT_LOG_KEY: web.AppKey[Throttled] = web.AppKey("lockout_log", Throttled)
DELIVERIES_KEY: web.AppKey[DeliveryLog] = web.AppKey("deliveries", DeliveryLog)
COMMITS_KEY: web.AppKey[CommitLog] = web.AppKey("commits", CommitLog)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers={**JSON_HEADERS, **(headers or {})})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


@web.middleware
async def _connection_state(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection a request is being handled (its header deadline stops) and
    when it is done. (--allow-from is enforced at accept: handshake_guard.py.)"""
    protocol = request.protocol
    if isinstance(protocol, GuardedHandler):
        protocol.request_started()
    try:
        return await handler(request)
    finally:
        if isinstance(protocol, GuardedHandler):
            protocol.request_finished()


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
    response.headers.update(JSON_HEADERS)
    return response


def who(request: web.Request) -> str:
    """The client address logged and locked out (the forwarded one behind a trusted proxy)."""
    return client_address(request, request.app[SETTINGS_KEY].trusted_proxies)


def _authenticate(request: web.Request) -> web.Response | None:
    """None when the token is right; otherwise the 400/401/403/429 answer.

    The right token is never refused for failures counted against its address: behind a
    shared NAT or proxy, ten wrong requests from anyone would otherwise lock CI out. The
    lockout does not protect the token (its 128+ random bits do, checked at start-up); it
    keeps a failing client from being answered, and logged, at full length."""
    settings = request.app[SETTINGS_KEY]
    failures = request.app[FAILURES_KEY]
    client = who(request)
    key = client_key(client)
    path = loggable_path(request.path)
    given = request.headers.getall("Authorization", [])
    verdict = check_token(given[0] if len(given) == 1 else None, settings.token)
    if verdict is Verdict.OK:
        return None
    wait = failures.retry_after(key)
    if wait is not None:
        request.app[LOCKOUT_LOG_KEY].note(
            lambda n: f"{request.method} {path} from {client} refused: too many failed "
            f"authentications from {key} (429; {n} such refusal(s))")
        return _error(429, "too many failed authentications; try again later",
                      {"Retry-After": str(wait)})
    if len(given) > 1:
        failures.failed(key)
        log.warning("%s %s from %s refused: %d Authorization headers (400)",
                    request.method, path, client, len(given))
        return _error(400, "more than one Authorization header")
    if verdict is Verdict.MISSING:
        log.warning("%s %s from %s refused: no Authorization header (401)",
                    request.method, path, client)
        return _error(401, "missing Authorization header",
                      {"WWW-Authenticate": 'Bearer realm="loon-deploy"'})
    failures.failed(key)
    log.warning("%s %s from %s refused: wrong token (403)", request.method, path, client)
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
    try:
        with anyio.fail_after(settings.opts.body_timeout):
            body = await request.read()  # raises 413 past client_max_size (chunked too)
    except TimeoutError:
        log.warning("POST /deploy from %s refused: body not received within %g s (408)",
                    who(request), settings.opts.body_timeout)
        return _error(408, f"request body not received within {settings.opts.body_timeout:g} s",
                      {"Connection": "close"})
    if settings.webhook_secret is not None:
        verdict = check_signature(request.headers.get("X-Hub-Signature-256"), body,
                                  settings.webhook_secret)
        if verdict is not Verdict.OK:
            code = 401 if verdict is Verdict.MISSING else 403
            what = "missing" if verdict is Verdict.MISSING else "wrong"
            request.app[FAILURES_KEY].failed(client_key(who(request)))
            log.warning("POST /deploy from %s refused: %s X-Hub-Signature-256 (%d)",
                        who(request), what, code)
            return _error(code, f"{what} X-Hub-Signature-256 signature")
    refused = _check_rules(request, body)
    if refused is not None:
        return refused
    try:
        image = _named_version(body, settings.config_file)
    except NotAllowed as exc:
        log.warning("POST /deploy from %s refused: %s (400)", who(request), exc)
        return _error(400, str(exc))
    delivery = request.headers.get("X-GitHub-Delivery")
    if settings.webhook_secret is not None:
        if delivery is None or not DELIVERY_RE.match(delivery):
            return _error(400, "missing or malformed X-GitHub-Delivery header (required with "
                          "a webhook secret, against replays)")
        if delivery in request.app[DELIVERIES_KEY]:
            log.warning("POST /deploy from %s refused: delivery %s was already received (409)",
                        who(request), delivery)
            return _error(409, f"delivery {delivery} was already received; not deploying again")
    commit: str | None = None
    if settings.webhook_secret is not None:
        checked = await _check_commit(request, body)
        if isinstance(checked, web.Response):
            return checked
        commit = checked
    try:
        record = runner.submit(image=image)
    except OSError as exc:  # e.g. a full disk: the deploy's directory cannot be made
        log.warning("POST /deploy from %s refused: cannot create the deploy's directory "
                    "(%s) (503)", who(request), exc.strerror or exc)
        return _error(503, f"cannot create the deploy's directory: {exc.strerror or exc}; "
                      "try again later")
    except DeployBusy as busy:
        running = busy.running
        log.info("POST /deploy from %s refused: deploy %s is %s (409)",
                 who(request), running.id, running.status)
        return _json(409, {"error": f"deploy {running.id} is {running.status}; try again later",
                           "running": running.id, "status": str(running.status),
                           "statusUrl": f"/deploy/{running.id}"})
    if settings.webhook_secret is not None and delivery is not None:
        request.app[DELIVERIES_KEY].remember(delivery)
    if commit is not None:
        request.app[COMMITS_KEY].remember(commit, record.id)
    log.info("deploy %s accepted from %s%s%s", record.id, who(request),
             f" (commit {commit})" if commit else "", f" (version {image})" if image else "")
    url = f"/deploy/{record.id}"
    return _json(202, {**record.to_json(), "statusUrl": url}, {"Location": url})


def _named_version(body: bytes, config_file: Path) -> str | None:
    """The version a JSON body names in ``image``, checked against the configured
    repository (docs/upgrades.md); None for any other body (a push event, no body)."""
    try:
        payload = parse_object(body)
    except BadPayload:
        return None
    return requested_version(payload, config_file)


async def _check_commit(request: web.Request, body: bytes) -> str | web.Response:
    """The commit a signed body deploys, or the answer refusing it (see commits.py)."""
    settings = request.app[SETTINGS_KEY]
    try:
        payload = parse_object(body)
        commit = pushed_commit(payload)
    except (BadPayload, NoCommit) as exc:
        return _error(400, str(exc))
    if commit is None:
        return _json(200, {"status": "ignored", "reason": "the push deleted the branch: "
                           "nothing to deploy"})
    force = payload.get("force") is True
    previous = request.app[COMMITS_KEY].deploy_of(commit)
    record = request.app[RUNNER_KEY].get(previous) if previous else None
    done_before = previous is not None and (
        record is None or record.status not in (DeployStatus.FAILED, DeployStatus.CANCELLED))
    if done_before and not force:
        log.warning("POST /deploy from %s refused: commit %s was already deployed by %s (409)",
                    who(request), commit, previous)
        return _error(409, f"commit {commit} was already deployed (deploy {previous}); a "
                      'signed body with "force": true deploys it again')
    if settings.git_branch and await older_than_head(settings.repo_dir, commit):
        log.warning("POST /deploy from %s refused: commit %s is older than the working "
                    "copy's HEAD (409)", who(request), commit)
        return _error(409, f"commit {commit} is older than the deployed commit (an ancestor "
                      "of the working copy's HEAD); not deploying it")
    return commit


def _check_rules(request: web.Request, body: bytes) -> web.Response | None:
    """--require-push-event and --require-ref: None when the request may deploy."""
    opts = request.app[SETTINGS_KEY].opts
    if opts.require_push_event:
        event = request.headers.get("X-GitHub-Event")
        if event == "ping":
            return _json(200, {"status": "ignored", "reason": "ping event: nothing to deploy"})
        if event != "push":
            return _error(400, "X-GitHub-Event must be push (or ping)")
    if opts.require_ref is not None:
        want = f"refs/heads/{opts.require_ref}"
        try:
            ref = parse_object(body).get("ref")
        except BadPayload as exc:
            return _error(400, f"{exc}; --require-ref needs a JSON object with a ref field")
        if ref != want:
            return _json(200, {"status": "ignored", "reason": f"ref is not {want}"})
    return None


async def get_deploy(request: web.Request) -> web.Response:
    refused = _authenticate(request)
    if refused is not None:
        return refused
    record = request.app[RUNNER_KEY].get(request.match_info["deploy_id"])
    if record is None:
        keep = request.app[SETTINGS_KEY].opts.keep_deploys
        return _error(404, f"no such deploy (the newest {keep} deploys are kept, across "
                      "restarts)")
    return _json(200, record.to_json())


async def delete_deploy(request: web.Request) -> web.Response:
    """Cancel a queued or running deploy: its child processes are stopped and what it
    started is torn down; GET shows ``cancelled`` once that is done."""
    refused = _authenticate(request)
    if refused is not None:
        return refused
    deploy_id = request.match_info["deploy_id"]
    try:
        record = request.app[RUNNER_KEY].cancel(deploy_id)
    except NotActive:
        return _error(409, f"deploy {deploy_id} has already finished")
    if record is None:
        return _error(404, "no such deploy")
    log.info("deploy %s cancelled by %s", deploy_id, who(request))
    return _json(202, {**record.to_json(), "statusUrl": f"/deploy/{deploy_id}"})


def make_app(settings: ServerSettings, runner: DeployRunner) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[_connection_state, _json_errors])
    app[SETTINGS_KEY] = settings
    app[FAILURES_KEY] = AuthFailures(settings.opts.max_auth_failures)
    app[LOCKOUT_LOG_KEY] = Throttled()
    app[DELIVERIES_KEY] = DeliveryLog(settings.logs_root / ".deliveries.json")
    app[COMMITS_KEY] = CommitLog(settings.logs_root / ".commits.json")
    app[RUNNER_KEY] = runner
    app.router.add_get("/healthz", healthz)
    if settings.webhooks:  # not for `loon dashboard` alone
        app.router.add_post("/deploy", post_deploy)
        app.router.add_get("/deploy/{deploy_id:" + DEPLOY_ID_PATTERN + "}", get_deploy)
        app.router.add_delete("/deploy/{deploy_id:" + DEPLOY_ID_PATTERN + "}", delete_deploy)
    if settings.dashboard is not None:
        from loon_supervisor.dashboard.routes import add_dashboard  # (import cycle)

        add_dashboard(app)
    return app
