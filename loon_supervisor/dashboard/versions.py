"""The deployment's versions (what ``loon versions`` lists, from the same function) and a
rollback to one of them: confirmed, CSRF-protected, recorded in out.log like every action."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
from aiohttp import web

from loon_supervisor.dashboard.record import record
from loon_supervisor.dashboard.render import html
from loon_supervisor.dashboard.security import action, current, page
from loon_supervisor.deploy.app import SETTINGS_KEY
from loon_supervisor.errors import LoonError, operator_error
from loon_supervisor.lifecycle.identity import resolve
from loon_supervisor.verbs.versions import list_versions
from loon_supervisor.versions import store

ROLLBACK_TIMEOUT_S = 1800.0


async def _versions(request: web.Request) -> tuple[list[store.Version], str | None, str | None]:
    """(versions oldest first, the current tag, an error sentence)."""
    who = resolve(request.app[SETTINGS_KEY].config_file)
    try:
        found = await list_versions(who)
    except (LoonError, OSError) as exc:
        return [], None, str(operator_error(exc) if isinstance(exc, LoonError) else exc)
    return found, store.load(who.name).current, None


@page
async def versions_page(request: web.Request) -> web.StreamResponse:
    found, now, error = await _versions(request)
    return html("versions.html", session=current(request), versions=list(reversed(found)),
                current_tag=now, error=error)


@page
async def confirm_rollback(request: web.Request) -> web.StreamResponse:
    tag = request.query.get("tag", "")
    found, now, _ = await _versions(request)
    if tag not in {v.tag for v in found} or tag == now:
        raise web.HTTPNotFound()
    return html("confirm.html", session=current(request),
                question=f"Roll back to {tag}?", button="Roll back",
                target="/dashboard/actions/rollback", extra={"tag": tag})


@action
async def rollback(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    tag = form.get("tag")
    found, _, error = await _versions(request)
    if not isinstance(tag, str) or tag not in {v.tag for v in found}:
        return html("result.html", 404, session=current(request), ok=False,
                    message=error or "no such version of this deployment",
                    link="/dashboard/versions")
    record(request, f"rollback to {tag} requested")
    cmd = [sys.executable, "-m", "loon_supervisor", "rollback", tag, "--config-file",
           str(request.app[SETTINGS_KEY].config_file)]
    env = dict(os.environ, NO_COLOR="1", TERM="dumb")
    try:
        with anyio.fail_after(ROLLBACK_TIMEOUT_S):
            done = await anyio.run_process(cmd, check=False, stdin=subprocess.DEVNULL,
                                           stderr=subprocess.STDOUT, env=env)
        output, ok = done.stdout.decode("utf-8", "replace"), done.returncode == 0
    except TimeoutError:
        output, ok = f"no answer within {ROLLBACK_TIMEOUT_S:.0f} s", False
    except OSError as exc:
        output, ok = f"cannot start loon rollback: {exc.strerror or exc}", False
    record(request, f"rollback to {tag} {'done' if ok else 'FAILED'}")
    return html("result.html", 200 if ok else 500, session=current(request), ok=ok,
                message=f"rollback to {tag} {'done' if ok else 'failed'}", output=output,
                link="/dashboard/versions")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/dashboard/versions", versions_page)
    r.add_get("/dashboard/versions/rollback", confirm_rollback)
    r.add_post("/dashboard/actions/rollback", rollback)
