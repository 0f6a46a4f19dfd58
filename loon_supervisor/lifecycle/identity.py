"""Who a deployment is: its name, image tag, state file and current session, from one place.

Every verb (up, down, status, attach, logs) resolves the deployment here, so environment
overrides such as ``LOON_DEPLOYMENTSETTINGS__CONTAINERNAME=prod-loon`` apply to all of them
alike. The name is read leniently (the raw file plus overrides, no validation): ``down``
must work with a broken config.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loon_supervisor.errors import LoonError
from loon_supervisor.paths import default_config

if TYPE_CHECKING:
    from loon_supervisor.lifecycle.state import DeploymentState

DEFAULT_NAME = "loon"
DEFAULT_IMAGE = "loon:latest"
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"
"""Docker's rule for container names (at least two characters)."""
MAX_NAME = 128
"""Longer names would make ``.build-files/state.<name>.json.<pid>.tmp`` exceed a file
name's 255 bytes; no deployment needs more."""


class BadDeploymentName(LoonError):
    """A deployment name Docker would refuse or that would leave ``.build-files/``."""

    exit_code = 2


def check_name(name: str, source: str) -> str:
    """``name`` when it follows Docker's rule for container names; else one sentence naming
    where it came from (``source``).

    :raises BadDeploymentName: before any path is built from the name.
    """
    if len(name) > MAX_NAME:
        raise BadDeploymentName(f"the deployment name from {source} is {len(name)} characters "
                                f"long; use at most {MAX_NAME}")
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadDeploymentName(f"the deployment name {name[:60]!r} from {source} is not a "
                                "valid container name; use at least two characters: a letter "
                                "or digit, then letters, digits, '_', '.' or '-'")
    return name


@dataclass(frozen=True)
class Identity:
    """One deployment as every verb sees it."""

    name: str
    image: str
    config_file: Path

    @property
    def state_path(self) -> Path:
        """``.build-files/state.<name>.json`` of the project (see :mod:`.state`)."""
        from loon_supervisor.lifecycle.state import state_path

        return state_path(self.name)

    def state(self) -> DeploymentState | None:
        """The state the last run (foreground or background logger) left, if any."""
        from loon_supervisor.lifecycle.state import load

        return load(self.name)

    def session(self) -> Path | None:
        """The session directory the deployment's current run writes, if one is known."""
        state = self.state()
        return state.session if state is not None else None


def _lenient_settings(config_file: Path) -> dict[str, Any]:
    """deploymentSettings from the file merged with LOON_* overrides; {} where unreadable."""
    from loon_supervisor.bounded import UnboundedInput, read_bounded
    from loon_supervisor.config.jsonread import MAX_BYTES
    from loon_supervisor.config.load import env_overrides

    try:
        data = json.loads(read_bounded(config_file, MAX_BYTES).decode("utf-8"))
        settings = data.get("deploymentSettings") if isinstance(data, dict) else None
    except UnboundedInput as exc:  # a device or an endless pipe is no config, not a broken one
        raise UnboundedInput(f"{config_file} {exc}") from None
    except (OSError, ValueError, RecursionError):
        settings = None
    merged = dict(settings) if isinstance(settings, dict) else {}
    try:
        over = env_overrides().get("deploymentSettings")
    except LoonError:
        over = None
    if isinstance(over, dict):
        merged.update(over)
    return merged


def _text(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def resolve(config_file: Path | None = None, name: str | None = None) -> Identity:
    """The deployment for this config (default: the project's config.json) and environment.

    :param name: an explicit ``--name`` wins over config and overrides.
    """
    config_file = config_file if config_file is not None else default_config()
    settings = _lenient_settings(config_file)
    if name is not None:
        check_name(name, "--name")
    else:
        name = _text(settings.get("containerName"), DEFAULT_NAME)
        check_name(name, _name_source())
    return Identity(name=name, image=_text(settings.get("imageTag"), DEFAULT_IMAGE),
                    config_file=config_file)


def _name_source() -> str:
    """Where the configured name came from: an override variable, else the config file."""
    import os

    for var in os.environ:
        if var.upper() == "LOON_DEPLOYMENTSETTINGS__CONTAINERNAME":
            return var
        if var.upper() == "LOON_DEPLOYMENTSETTINGS" and "containerName" in os.environ[var]:
            return var
    return "deploymentSettings.containerName"
