"""``loon deploy-server`` and ``loon dashboard``: the authenticated redeploy webhook and the
operator's dashboard (deploy/). Their options are defined once in deploy/options.py, where
every front end (this verb, ``.build-files/deploy-server.py``, the tests) parses them."""

from __future__ import annotations

from dataclasses import dataclass

from loon_supervisor.deploy.options import ServerOptions


@dataclass(frozen=True)
class DeployServerOptions:
    """The server's options; ``webhooks`` False is ``loon dashboard`` (no POST /deploy)."""

    server: ServerOptions
    webhooks: bool = True


def run(opts: DeployServerOptions) -> int:
    from loon_supervisor.deploy.server import run_deploy_server

    return run_deploy_server(opts.server, webhooks=opts.webhooks)
