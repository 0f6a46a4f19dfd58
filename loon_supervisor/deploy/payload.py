"""Reading a request body as JSON without letting its shape hurt the server.

``json.loads`` recurses once per nesting level, so ``[[[[...]]]]`` 64 KiB deep raises
RecursionError (a 500 after authentication). The depth is counted on the raw bytes first.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class BadPayload(ValueError):
    """The body is not JSON the server accepts; the text says why (no quote of the body)."""


def nesting_depth(body: bytes) -> int:
    """The deepest ``[``/``{`` nesting outside strings (a linear scan; no parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_object(body: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``); BadPayload otherwise."""
    if not body.strip():
        return {}
    if nesting_depth(body) > max_depth:
        raise BadPayload(f"the body is nested deeper than {max_depth} levels")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadPayload("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadPayload("the body must be a JSON object")
    return data
