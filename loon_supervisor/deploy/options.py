"""The deploy server's options, defined once for every front end.

``loon deploy-server`` (cli.py), ``.build-files/deploy-server.py`` and the tests all build
their command line from :data:`OPTIONS` and get a :class:`ServerOptions`; settings.py checks
it and server.py runs it. argparse (standard library) parses: typer hands its arguments on
untouched, so the options, their defaults and their help cannot drift apart again.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypedDict

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5421


def _opt(default: Any, help: str, *, metavar: str | None = None, flag: bool = False,
         repeat: bool = False) -> Any:
    meta = {"help": help, "metavar": metavar, "flag": flag, "repeat": repeat}
    if repeat:
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ServerOptions:
    """Every option of the deploy server; the field name is the option (``--tls-cert``)."""

    env_file: Path | None = _opt(None, "secrets file holding DEPLOYMENT_AUTH_TOKEN "
                                 "(default: .build-files/.env.secrets)", metavar="PATH")
    host: str = _opt(DEFAULT_HOST, "address to listen on", metavar="ADDR")
    port: int = _opt(DEFAULT_PORT, "port to listen on (0: any free port)", metavar="N")
    config_file: Path | None = _opt(None, "config.json each deploy uses "
                                    "(default: config.json of the project)", metavar="PATH")
    tls_cert: Path | None = _opt(None, "PEM certificate (chain): serve HTTPS", metavar="PATH")
    tls_key: Path | None = _opt(None, "PEM private key for --tls-cert", metavar="PATH")
    behind_tls_proxy: bool = _opt(False, "allow plain HTTP on a non-loopback address because "
                                  "a TLS proxy in front terminates HTTPS", flag=True)
    git_branch: str | None = _opt(None, "before each deploy, git pull --ff-only this branch",
                                  metavar="NAME")
    webhook_secret_env: str | None = _opt(None, "secrets-file variable holding the "
                                          "X-Hub-Signature-256 secret (default: "
                                          "DEPLOYMENT_WEBHOOK_SECRET when set)", metavar="NAME")
    require_ref: str | None = _opt(None, "only deploy when the JSON body's ref is "
                                   "refs/heads/NAME (others: 200, ignored)", metavar="NAME")
    require_push_event: bool = _opt(False, "X-GitHub-Event must be push (deploys) or ping "
                                    "(answered, no deploy)", flag=True)
    allow_from: list[str] = _opt(None, "only accept requests from this address or network "
                                 "(repeatable; default: everyone)", metavar="CIDR", repeat=True)
    trusted_proxy: list[str] = _opt(None, "a reverse proxy at this address or network: "
                                    "lockouts and logs use the X-Forwarded-For address it "
                                    "adds, and it has no per-client connection cap "
                                    "(repeatable; default: none, the header is ignored)",
                                    metavar="CIDR", repeat=True)
    logs_dir: Path | None = _opt(None, "where each deploy's directory goes "
                                 "(default: logs/deploys)", metavar="PATH")
    repo_dir: Path | None = _opt(None, "working copy --git-branch updates "
                                 "(default: the project root)", metavar="PATH")
    deploy_timeout: float = _opt(1800.0, "seconds a deploy may run before it is stopped and "
                                 "recorded as failed", metavar="S")
    kill_grace: float = _opt(10.0, "seconds between SIGTERM and SIGKILL when a deploy is "
                             "stopped", metavar="S")
    keep_deploys: int = _opt(50, "deploy directories (and records) kept; older ones are "
                             "deleted", metavar="N")
    header_timeout: float = _opt(10.0, "seconds a client has to send a request's headers",
                                 metavar="S")
    tls_handshake_timeout: float = _opt(5.0, "seconds a connection has to finish the TLS "
                                        "handshake (counted from accept)", metavar="S")
    keepalive_timeout: float = _opt(15.0, "seconds an idle keep-alive connection stays open",
                                    metavar="S")
    body_timeout: float = _opt(10.0, "seconds a client has to send a request's body",
                               metavar="S")
    max_connections: int = _opt(100, "open connections at most (more are closed at once)",
                                metavar="N")
    max_connections_per_client: int = _opt(10, "open connections at most per client address",
                                           metavar="N")
    max_auth_failures: int = _opt(10, "failed authentications per client address per "
                                  "minute before its requests without the right token get "
                                  "429", metavar="N")

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}



class ServerOverrides(TypedDict, total=False):
    """:class:`ServerOptions` fields given by keyword (``load_settings(env, port=0)``), typed
    so a misspelt or mistyped override is a mypy error, not a TypeError at run time;
    ``logs_root`` is the older name of ``logs_dir``. tests/deploy/test_deploy_settings.py
    checks the keys against the dataclass's fields (``env_file`` is load_settings' first
    argument)."""

    host: str
    port: int
    config_file: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    behind_tls_proxy: bool
    git_branch: str | None
    webhook_secret_env: str | None
    require_ref: str | None
    require_push_event: bool
    allow_from: list[str]
    trusted_proxy: list[str]
    logs_dir: Path | None
    logs_root: Path | None
    repo_dir: Path | None
    deploy_timeout: float
    kill_grace: float
    keep_deploys: int
    header_timeout: float
    tls_handshake_timeout: float
    keepalive_timeout: float
    body_timeout: float
    max_connections: int
    max_connections_per_client: int
    max_auth_failures: int

def build_parser(prog: str, defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The one argparse parser for :class:`ServerOptions` (``defaults`` overrides a default,
    e.g. the script's --env-file next to itself)."""
    defaults = defaults or {}
    about = ("The operator's web dashboard alone, under the deploy server's rules (see "
             "docs/dashboard.md)." if prog.endswith("dashboard") else
             "Re-deploy Loon on an authenticated POST /deploy (see docs/deploy-server.md).")
    parser = argparse.ArgumentParser(prog=prog, description=about)
    for f in fields(ServerOptions):
        meta = f.metadata
        name = "--" + f.name.replace("_", "-")
        default = defaults.get(f.name, None if meta["repeat"] else f.default)
        shown = "" if default in (None, [], False) else " (default: %(default)s)"
        if meta["flag"]:
            parser.add_argument(name, dest=f.name, action="store_true", help=meta["help"])
            continue
        kind = {"int": int, "float": float}.get(str(f.type), None)
        if "Path" in str(f.type):
            kind = Path
        parser.add_argument(name, dest=f.name, type=kind or str, default=default,
                            metavar=meta["metavar"], help=meta["help"] + shown,
                            action="append" if meta["repeat"] else "store")
    return parser


def parse_options(argv: Sequence[str], prog: str,
                  defaults: dict[str, Any] | None = None) -> ServerOptions:
    """Parse a command line (exits 2 with argparse's one-line message on bad usage)."""
    values = vars(build_parser(prog, defaults).parse_args(list(argv)))
    values["allow_from"] = values["allow_from"] or []
    values["trusted_proxy"] = values["trusted_proxy"] or []
    return ServerOptions(**values)


def main(argv: Sequence[str], prog: str, defaults: dict[str, Any] | None = None,
         webhooks: bool = True) -> int:
    """Parse, check, serve: what the command-line front ends run (``webhooks=False``:
    ``loon dashboard``, the dashboard without POST /deploy)."""
    from loon_supervisor.deploy.server import run_deploy_server

    return run_deploy_server(parse_options(argv, prog, defaults), webhooks=webhooks)
