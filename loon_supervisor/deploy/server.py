"""Running the deploy server: :class:`DeployServer` (async, for tests and embedding) and
:func:`run_deploy_server` (blocking, for ``loon deploy-server`` and
``.build-files/deploy-server.py``)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import anyio
from aiohttp import web

from loon_supervisor.deploy.app import make_app
from loon_supervisor.deploy.guard import GuardedSite
from loon_supervisor.deploy.handshake_guard import Admission
from loon_supervisor.deploy.options import ServerOptions
from loon_supervisor.deploy.runner import DeployRunner, DeployStep
from loon_supervisor.deploy.settings import (
    ServerSettings,
    load_settings,
)
from loon_supervisor.errors import LoonError

log = logging.getLogger("loon_supervisor.deploy")

class DeployServer:
    """``async with DeployServer(settings) as server:`` serves until the block ends.

    ``server.urls`` are the bound addresses (``port=0`` picks a free port). Leaving the block
    stops accepting requests, then cancels a deploy still running.
    """

    def __init__(self, settings: ServerSettings, step: DeployStep | None = None) -> None:
        self.settings = settings
        self.runner = DeployRunner(logs_root=settings.logs_root, config_file=settings.config_file,
                                   repo_dir=settings.repo_dir, git_branch=settings.git_branch,
                                   step=step, deploy_timeout=settings.opts.deploy_timeout,
                                   kill_grace=settings.opts.kill_grace,
                                   keep=settings.opts.keep_deploys)
        self._app_runner: web.AppRunner | None = None
        self.urls: list[str] = []

    async def __aenter__(self) -> DeployServer:
        self.settings.logs_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.settings.logs_root.chmod(0o700)
        await self.runner.__aenter__()
        try:
            app = make_app(self.settings, self.runner)
            self._app_runner = web.AppRunner(app, handle_signals=False)
            await self._app_runner.setup()
            opts = self.settings.opts
            admission = Admission(opts.max_connections, opts.max_connections_per_client,
                                  self.settings.allow_from,
                                  proxies=self.settings.trusted_proxies)
            site = GuardedSite(self._app_runner, self.settings.host, self.settings.port,
                               ssl_context=self.settings.ssl_context, admission=admission,
                               header_timeout=opts.header_timeout,
                               keepalive_timeout=opts.keepalive_timeout,
                               handshake_timeout=opts.tls_handshake_timeout)
            await site.start()
        except BaseException:
            await self._cleanup()
            await self.runner.__aexit__(None, None, None)
            raise
        self.urls = [_url(self.settings.scheme, addr) for addr in self._app_runner.addresses]
        return self

    async def _cleanup(self) -> None:
        if self._app_runner is not None:
            await self._app_runner.cleanup()
            self._app_runner = None

    async def __aexit__(self, *exc: Any) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await self._cleanup()
        finally:
            await self.runner.__aexit__(*exc)

    @property
    def url(self) -> str:
        return self.urls[0]


def _url(scheme: str, addr: Any) -> str:
    host, port = addr[0], addr[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


async def serve(settings: ServerSettings, step: DeployStep | None = None) -> None:
    """Serve until SIGINT or SIGTERM. Deploys run in child processes, so the server is the
    only owner of these signals; a deploy still running is stopped and cleaned up."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with DeployServer(settings, step) as server:
            for url in server.urls:
                log.info("deploy server listening on %s", url)
                if settings.dashboard is not None:
                    log.info("dashboard on %s/dashboard/", url)
            async for signum in signals:
                log.info("received %s: stopping", signal.Signals(signum).name)
                if server.runner.current is not None:
                    log.warning("deploy %s is still running and is stopped",
                                server.runner.current.id)
                return


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("loon_supervisor.deploy", "aiohttp.access", "aiohttp.server", "aiohttp.web"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run_deploy_server(opts: ServerOptions | None = None, step: DeployStep | None = None,
                      **overrides: Any) -> int:
    """Check the settings, then serve until SIGINT/SIGTERM. Blocking; returns the exit code:
    0 after a signal, 2 when the settings are wrong (nothing was started), 1 when the server
    cannot run (e.g. the port is taken). ``opts`` comes from options.py (every front end);
    ``overrides`` are ServerOptions fields; ``step`` replaces the real deploy step (tests).
    """
    _configure_logging()
    try:
        settings = load_settings(None, opts, **overrides)
    except LoonError as exc:  # ConfigError, or NoProjectError (no project found)
        prog = "loon deploy-server" if overrides.get("webhooks", True) else "loon dashboard"
        print(f"{prog}: refusing to start: {exc}", file=sys.stderr)
        return exc.exit_code
    for warning in settings.warnings:
        log.warning("%s", warning)
    log.info("config file %s; deploy logs under %s; %s", settings.config_file,
             settings.logs_root,
             f"git branch {settings.git_branch} of {settings.repo_dir}" if settings.git_branch
             else "no git update")
    if settings.webhook_secret is not None:
        log.info("X-Hub-Signature-256 is required on POST /deploy")
    try:
        anyio.run(serve, settings, step, backend="asyncio")
    except OSError as exc:
        print(f"loon deploy-server: cannot serve on {settings.host}:{settings.port}: "
              f"{exc.strerror or exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
