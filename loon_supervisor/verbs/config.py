"""``loon config``: the effective configuration, overrides applied, secrets masked."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loon_supervisor.errors import LoonError
from loon_supervisor.errors import report as _fail


@dataclass(frozen=True)
class ConfigOptions:
    """``loon config``: the config whose effective form is printed."""

    config_file: Path


def run(opts: ConfigOptions) -> int:
    """Print the effective configuration (overrides applied, secrets masked); writes nothing."""
    config_file = opts.config_file
    import json

    from loon_supervisor.config.jsonread import read_source
    from loon_supervisor.config.load import load

    try:
        loaded = load(read_source(config_file))
    except LoonError as exc:
        return _fail(exc)
    for w in loaded.warnings:
        print(w, file=sys.stderr)
    data = loaded.config.model_dump(mode="json", by_alias=True, exclude_none=False)
    if data.get("$schema") is None:
        data.pop("$schema", None)
    print(json.dumps(mask(data), indent=2))
    return 0


MASK = "**********"
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@]*)@")


def mask(value: Any, key: str = "") -> Any:
    """Beyond the SecretStr fields: buildArgs values (tokens are passed that way) and the
    user information of any URL (``https://user:token@host``)."""
    if isinstance(value, dict):
        return {k: (MASK if key == "buildArgs" else mask(v, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if isinstance(value, str):
        return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", value)
    return value
