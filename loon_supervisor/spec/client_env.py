"""The variables Loon's client reads at build time (``import.meta.env.VITE_*``), from one
place: the image build's arguments, the env file, and ``--prepare-dev``'s ``apps/client/.env``
all take them from here, so the client is built for the URL it is served at.

Loon's client (``apps/client/src/stores/misc/configStore.ts``) prefixes VITE_SERVER_URL with
``http://`` or ``https://`` after VITE_USE_HTTP, turns its ``/data`` into ``/api`` for the
API, and ``datasetSelectionUntrrackedStore.ts`` compares VITE_EXPERIMENT_VISIBILITY_CONTROL
with ``'true'``; upstream's build.py sets VITE_SERVER_URL to ``<baseUrl>/data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loon_supervisor.config.model import LoonConfig

CLIENT_VARIABLES = ("VITE_SERVER_URL", "VITE_USE_HTTP", "VITE_ENVIRONMENT",
                    "VITE_EXPERIMENT_VISIBILITY_CONTROL")


def client_environment(config: LoonConfig) -> dict[str, str]:
    g = config.generalSettings
    return {
        "VITE_SERVER_URL": f"{g.baseUrl}/data",
        "VITE_USE_HTTP": "true" if g.useHttp else "false",
        "VITE_ENVIRONMENT": g.environment,
        "VITE_EXPERIMENT_VISIBILITY_CONTROL": "true" if g.experimentVisibilityControl
        else "false",
    }


DEV_ENV_HINT = ("run `yarn run dev` in {client} for Loon's client dev server (the server: "
                "`loon dev`)")


def write_client_dev_env(config: LoonConfig, config_path: Path) -> tuple[Path, str]:
    """``--prepare-dev``: ``apps/client/.env`` of the Loon checkout with the client's
    variables, as upstream's build.py writes it (no secret in it); the file and the hint.

    :raises ConfigError: no checkout configured, or it has no ``apps/client``.
    """
    from loon_supervisor.atomic import write_text_atomic
    from loon_supervisor.errors import ConfigError, Problem

    src = config.deploymentSettings.loonSourceLocation
    if not src:
        raise ConfigError([Problem("--prepare-dev", "needs deploymentSettings."
                                   "loonSourceLocation (the Loon checkout whose client gets "
                                   "apps/client/.env)", "set it to your Loon clone, or drop "
                                   "--prepare-dev")])
    root = Path(src) if Path(src).is_absolute() else config_path.resolve().parent / src
    client = root / "apps" / "client"
    if not client.is_dir():
        raise ConfigError([Problem("--prepare-dev", f"{client} is not a directory",
                                   "point deploymentSettings.loonSourceLocation at a Loon "
                                   "clone (it has apps/client)")])
    text = "".join(f"{k}={v}\n" for k, v in client_environment(config).items())
    path = client / ".env"
    write_text_atomic(path, text)
    return path, DEV_ENV_HINT.format(client=client)
