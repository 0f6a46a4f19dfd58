#!/usr/bin/env python3
"""The deploy server, as the seed started it: from inside .build-files/,

    python3 -m venv venv && venv/bin/pip install -r requirements.txt    # once
    venv/bin/python deploy-server.py [--env-file .env.secrets] [--port 5421] ...

Same server as ``loon deploy-server``; see docs/deploy-server.md. ``--env-file`` defaults to
``.env.secrets`` next to this script; relative paths given on the command line are taken
from the current directory.
"""

from __future__ import annotations

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
        _import_server()
        from loon_supervisor.deploy.options import main as server_main
    except ImportError as exc:
        print(f"deploy-server.py: cannot import {exc.name or 'a dependency'}; install the "
              f"requirements first: {INSTALL}", file=sys.stderr)
        return 2
    # The project is the folder this script's .build-files/ is in, wherever it is run from
    # (a service manager's working directory is often /).
    os.environ.setdefault("LOON_PROJECT_ROOT", str(ROOT))
    # The options are defined once, in loon_supervisor/deploy/options.py.
    return server_main(sys.argv[1:] if argv is None else argv, prog="deploy-server.py",
                       defaults={"env_file": HERE / ".env.secrets"})


if __name__ == "__main__":
    sys.exit(main())
