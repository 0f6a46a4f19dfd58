"""``loon config-reference``: the configuration reference (Markdown) the README embeds."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConfigReferenceOptions:
    """``loon config-reference``: print it, or update the block in ``write``."""

    write: Path | None = None


def run(opts: ConfigReferenceOptions) -> int:
    write = opts.write
    from loon_supervisor.config.reference import reference_markdown, update_readme

    if write is None:
        print(reference_markdown())
        return 0
    try:
        changed = update_readme(write)
    except OSError as exc:
        print(f"error: cannot update {write} ({exc.strerror or exc}); give --write an "
              "existing, writable README", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {write} {exc}; add the begin/end marker lines where the reference "
              "belongs (see README.md)", file=sys.stderr)
        return 2
    print(f"{write}: {'updated' if changed else 'already current'}")
    return 0
