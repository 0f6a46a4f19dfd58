"""``loon schema``: the JSON Schema of config.json, for editor completion.

``-o`` replaces only a file that is missing or already such a schema (or any file with
``--force``): ``-o config.json`` used to overwrite the operator's config and its secrets.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path


def _is_our_schema(path: Path) -> bool:
    """True when ``path`` holds a schema this command wrote (any version of it)."""
    from loon_supervisor.bounded import MiB, UnboundedInput, read_bounded

    try:
        data = json.loads(read_bounded(path, MiB))
    except (OSError, ValueError, RecursionError, UnboundedInput):
        return False
    return isinstance(data, dict) and data.get("title") == "LoonConfig" and \
        isinstance(data.get("properties"), dict)


@dataclass(frozen=True)
class SchemaOptions:
    """``loon schema``: stdout, or ``output`` (replaced only when ours unless ``force``)."""

    output: Path | None = None
    force: bool = False


def run(opts: SchemaOptions) -> int:
    output, force = opts.output, opts.force
    from loon_supervisor.config.model import LoonConfig

    text = json.dumps(LoonConfig.model_json_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    if output.is_dir():
        print(f"error: {output} is a directory; give -o a file path, e.g. "
              "config.schema.json", file=sys.stderr)
        return 2
    if (output.exists() or output.is_symlink()) and not force and not _is_our_schema(output):
        print(f"error: {output} exists and is not a config schema this command wrote; "
              "choose another -o path (e.g. config.schema.json), or add --force to replace "
              "it", file=sys.stderr)
        return 2
    from loon_supervisor.atomic import write_text_atomic

    try:
        write_text_atomic(output, text)
    except OSError as exc:
        print(f"error: cannot write {output} ({exc.strerror or exc}); give -o a file path in "
              "an existing, writable directory", file=sys.stderr)
        return 2
    return 0
