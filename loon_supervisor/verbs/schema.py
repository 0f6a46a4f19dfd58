"""``loon schema``: the JSON Schema of config.json, for editor completion."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(output: Path | None = None) -> int:
    from loon_supervisor.config.model import LoonConfig

    text = json.dumps(LoonConfig.model_json_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    from loon_supervisor.atomic import write_text_atomic

    try:
        write_text_atomic(output, text)
    except OSError as exc:
        print(f"error: cannot write {output} ({exc.strerror or exc}); give -o a file path in "
              "an existing, writable directory", file=sys.stderr)
        return 2
    return 0
