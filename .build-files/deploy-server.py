#!/usr/bin/env python3
"""The deploy server, as the seed started it: from inside .build-files/,

    python3 -m venv venv && venv/bin/pip install -r requirements.txt    # once
    venv/bin/python deploy-server.py [--env-file .env.secrets] [--port 5421] ...

Same server as ``loon deploy-server``; see docs/deploy-server.md. ``--env-file`` defaults to
``.env.secrets`` next to this script; relative paths given on the command line are taken
from the current directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTALL = ("cd .build-files && python3 -m venv venv && venv/bin/pip install -r requirements.txt"
           "  (then run venv/bin/python deploy-server.py)")


def _import_server():  # type: ignore[no-untyped-def]
    try:
        from loon_supervisor.deploy import run_deploy_server
    except ImportError as first:
        if first.name != "loon_supervisor":
            raise
        # Not installed in this interpreter: use the checkout next to this script. Children
        # (the detached log follower runs ``python -m loon_supervisor``) need it too.
        sys.path.insert(0, str(ROOT))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        from loon_supervisor.deploy import run_deploy_server
    return run_deploy_server


def main(argv: list[str] | None = None) -> int:
    try:
        run_deploy_server = _import_server()
        from loon_supervisor.deploy import DEFAULT_HOST, DEFAULT_PORT
    except ImportError as exc:
        print(f"deploy-server.py: cannot import {exc.name or 'a dependency'}; install the "
              f"requirements first: {INSTALL}", file=sys.stderr)
        return 2

    parser = argparse.ArgumentParser(
        description="Re-deploy Loon on POST /deploy (token in the Authorization header).")
    parser.add_argument("--env-file", type=Path, default=HERE / ".env.secrets",
                        help="secrets file holding DEPLOYMENT_AUTH_TOKEN (default: %(default)s)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument("--config-file", type=Path, default=None,
                        help="config.json to deploy (default: config.json of the project)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate (chain)")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key")
    parser.add_argument("--git-branch", default=None,
                        help="git pull --ff-only this branch before each deploy")
    parser.add_argument("--webhook-secret-env", default=None, metavar="NAME",
                        help="secrets-file variable with the X-Hub-Signature-256 secret "
                        "(default: DEPLOYMENT_WEBHOOK_SECRET when set)")
    parser.add_argument("--logs-dir", type=Path, default=None,
                        help="where each deploy's log directory goes (default: logs/deploys)")
    args = parser.parse_args(argv)
    return run_deploy_server(
        env_file=args.env_file, host=args.host, port=args.port, config_file=args.config_file,
        tls_cert=args.tls_cert, tls_key=args.tls_key, git_branch=args.git_branch,
        webhook_secret_env=args.webhook_secret_env, logs_root=args.logs_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
