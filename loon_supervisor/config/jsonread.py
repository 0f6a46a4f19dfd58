"""Read config.json exactly once and turn every way it can be malformed into one problem.

The bytes are read once (a pipe such as ``--config-file <(cat c.json)`` can be read only
once) and parsed with the standard library, plus what it lacks: duplicate keys are errors
(``object_pairs_hook``), nesting is bounded, and the usual non-JSON habits (a byte-order
mark, comments, trailing commas, single quotes) get a hint instead of the parser's message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loon_supervisor.bounded import UnboundedInput, read_bounded
from loon_supervisor.errors import ConfigError, Problem

MAX_BYTES = 1024 * 1024
"""A real config.json is a few KiB; a larger one is the wrong file (or /dev/zero)."""
MAX_DEPTH = 64
"""config.json needs 3 levels; anything deeper than this is certainly not a config."""


@dataclass(frozen=True)
class ConfigSource:
    """The file's name and the bytes read from it (once)."""

    path: Path
    data: bytes


def read_source(path: Path) -> ConfigSource:
    """Read the file's bytes once, or raise ConfigError naming the file and the fix."""
    name = str(path)
    try:
        return ConfigSource(path, read_bounded(path, MAX_BYTES))
    except UnboundedInput as exc:
        raise ConfigError([Problem(name, str(exc).partition("; ")[0],
                                   str(exc).partition("; ")[2])]) from None
    except FileNotFoundError:
        raise ConfigError([Problem(name, "file not found", "create it (see config.example.json) "
                                   "or pass --config-file with an existing file; looked for "
                                   f"{path.resolve()}")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(name, "is a directory", "pass --config-file with a JSON "
                                   "file")]) from None
    except OSError as exc:
        raise ConfigError([Problem(name, f"cannot be read ({exc.strerror or exc})",
                                   "fix its permissions or pass another --config-file")]) from None


class _Object(dict):  # type: ignore[type-arg]
    """A JSON object that had repeated keys (kept only until they are reported)."""

    duplicates: list[str]
    replaced: list[tuple[str, Any]]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dups: list[str] = []
    replaced: list[tuple[str, Any]] = []
    for key, value in pairs:
        if key in out:
            if key not in dups:
                dups.append(key)
            replaced.append((key, out[key]))  # its own problems are reported too
        out[key] = value
    if dups:
        obj = _Object(out)
        obj.duplicates = dups
        obj.replaced = replaced
        return obj
    return out


class _HugeNumber:
    """An integer literal with more digits than any field can use (Python refuses to
    convert beyond 4300): kept as its length so the problem can name its JSON path."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


MAX_DIGITS = 100


def _parse_int(literal: str) -> int | _HugeNumber:
    return _HugeNumber(len(literal)) if len(literal) > MAX_DIGITS else int(literal)


def _huge_numbers(value: Any) -> list[Problem]:
    problems: list[Problem] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _HugeNumber):
            problems.append(Problem(path.rstrip(".") or "(top level)",
                                    f"is a number with {item.digits} digits",
                                    "use a value in the field's range"))
        elif isinstance(item, dict):
            stack.extend((v, f"{path}{k}.") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}{i}.") for i, v in enumerate(item))
    return sorted(problems, key=lambda p: p.path)


def _surrogates(value: Any) -> list[Problem]:
    """Strings holding an escaped lone surrogate such as "\\ud800": valid JSON, but no
    character; no file, env file or engine call can carry it."""
    problems: list[Problem] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                problems.append(Problem(path.rstrip(".") or "(top level)",
                                        "holds an unpaired surrogate escape (\\ud800-\\udfff),"
                                        " which is no character", "write the character itself "
                                        "or a valid surrogate pair"))
        elif isinstance(item, dict):
            for k, v in item.items():
                safe = k.encode("utf-8", "backslashreplace").decode("utf-8")
                if safe != k:
                    stack.append((k, f"{path}{safe} (the key)."))
                stack.append((v, f"{path}{safe}."))
        elif isinstance(item, list):
            stack.extend((v, f"{path}{i}.") for i, v in enumerate(item))
    return sorted(problems, key=lambda p: p.path)


def _hint(text: str, exc: json.JSONDecodeError) -> str:
    rest = text[exc.pos:exc.pos + 2]
    before = text[:exc.pos].rstrip()
    if rest.startswith(("//", "/*")) or rest.startswith("#"):
        return "JSON has no comments; remove them"
    if rest[:1] in "}]" and before.endswith(","):
        return "JSON allows no trailing comma; remove the comma before it"
    if rest[:1] == "'":
        return "JSON strings and keys need double quotes, not single quotes"
    if exc.msg.startswith("Extra data"):
        return "the file must hold exactly one JSON object; remove what follows it"
    return f"fix the syntax at line {exc.lineno}, column {exc.colno}"


def _depth_problem(value: Any, name: str) -> Problem | None:
    """Iterative, so that checking depth cannot itself overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return Problem(name, f"nests deeper than {MAX_DEPTH} levels",
                           "config.json needs three levels; check the file is the right one")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) \
            else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return None


def _duplicates(value: Any) -> list[Problem]:
    problems: list[Problem] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _Object):
            for key in item.duplicates:
                problems.append(Problem(f"{path}{key}", "appears more than once in the same "
                                        "object (only the last would count)",
                                        "keep one of them"))
            stack.extend((v, f"{path}{k}.") for k, v in item.replaced)
        if isinstance(item, dict):
            stack.extend((v, f"{path}{k}.") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}{i}.") for i, v in enumerate(item))
    unique = {(p.path, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: p.path)


def parse_source(source: ConfigSource) -> dict[str, Any]:
    """The top-level object, or ConfigError with one problem (a syntax error stops early)."""
    name = str(source.path)
    raw = source.data
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError([Problem(name, "starts with a byte-order mark (BOM)",
                                   "save it as UTF-8 without BOM")])
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise ConfigError([Problem(name, "looks like UTF-16 (it holds NUL bytes)",
                                   "save it as UTF-8")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(name, f"is not UTF-8 text (byte {exc.start})",
                                   "save it as UTF-8")]) from None
    if not text.strip():
        raise ConfigError([Problem(name, "is empty", "copy config.example.json and edit it")])
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem(f"{name}:{exc.lineno}:{exc.colno}",
                                   f"invalid JSON ({exc.msg.lower()})", _hint(text, exc))]) from None
    except RecursionError:
        raise ConfigError([Problem(name, f"nests deeper than {MAX_DEPTH} levels",
                                   "config.json needs three levels; check the file is the "
                                   "right one")]) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError([Problem(name, f"holds a value JSON tools cannot read ({exc})",
                                   "shorten that number")]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, "the top level must be a JSON object",
                                   "wrap the settings in { }")])
    deep = _depth_problem(data, name)
    if deep:
        raise ConfigError([deep])
    unprintable = _surrogates(data)  # first: other problems' paths may hold these keys
    if unprintable:
        raise ConfigError(unprintable)
    dups = _duplicates(data) + _huge_numbers(data)
    if dups:
        raise ConfigError(dups)
    return data
