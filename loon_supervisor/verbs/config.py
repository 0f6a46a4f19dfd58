"""``loon config``: the effective configuration, overrides applied, secrets masked."""

from __future__ import annotations

import sys
from pathlib import Path

from loon_supervisor.errors import LoonError
from loon_supervisor.errors import report as _fail


def main(config_file: Path) -> int:
    """Print the effective configuration (overrides applied, secrets masked); writes nothing."""
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
    print(json.dumps(data, indent=2))
    return 0
