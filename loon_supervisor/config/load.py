"""Read config.json, apply environment overrides, and report every problem at once.

JSON values must have the type a field declares (strict, as the original schema was).
Environment variables ``LOON_<SECTION>__<FIELD>`` (case-insensitive, e.g.
``LOON_MYSQLSETTINGS__DATABASEPASSWORD``) and ``LOON_<SECTION>`` (a JSON object) override
the file (:mod:`loon_supervisor.config.overrides`); the file is read exactly once
(:mod:`loon_supervisor.config.jsonread`).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from loon_supervisor.config.jsonread import ConfigSource, parse_source, read_source
from loon_supervisor.config.model import LoonConfig
from loon_supervisor.config.overrides import ENV_PREFIX, attribute, read_overrides
from loon_supervisor.config.overrides import section_model as _section_model
from loon_supervisor.config.rules import check_rules
from loon_supervisor.errors import ConfigError, Problem

__all__ = ["ENV_PREFIX", "Loaded", "load", "load_config", "read_json", "validate_data"]


@dataclass
class Loaded:
    """A valid configuration plus what to tell the operator about it."""

    config: LoonConfig
    source: ConfigSource
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_json(path: Path) -> dict[str, Any]:
    """Parse the file, turning every I/O or syntax failure into one clear problem."""
    return parse_source(read_source(path))


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """LOON_* variables as a nested dict, with bools and ints parsed per field."""
    return read_overrides(dict(os.environ) if environ is None else environ).data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def validate_data(data: dict[str, Any], base_dir: Path | None = None,
                  notes: list[str] | None = None) -> LoonConfig:
    """Validate already-parsed data; raises ConfigError listing every problem."""
    problems: list[Problem] = []
    config: LoonConfig | None = None
    try:
        config = LoonConfig.model_validate(data, strict=True)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, data))
    except RecursionError:
        problems.append(Problem("(top level)", "nests too deeply", "check the file is "
                                "the right one"))
    problems.extend(check_rules(data, base_dir, notes))
    if problems:
        raise ConfigError(_dedupe(problems))
    assert config is not None
    return config


def load(source: ConfigSource, environ: dict[str, str] | None = None) -> Loaded:
    """The whole pipeline on bytes already read: parse, override, validate. No side effects."""
    environ = dict(os.environ) if environ is None else environ
    data = parse_source(source)
    overrides = read_overrides(environ)
    notes: list[str] = []
    try:
        config = validate_data(_merge(data, overrides.data), source.path.resolve().parent,
                               notes)
    except ConfigError as exc:
        where = str(source.path) + (" with the LOON_* environment" if overrides.origin else "")
        raise ConfigError(attribute(exc.problems, overrides.origin), where) from None
    return Loaded(config, source, notes, overrides.warnings)


def load_config(path: Path, environ: dict[str, str] | None = None) -> LoonConfig:
    """Read the file once and validate it with the environment; no side effects."""
    return load(read_source(path), environ).config


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


_TYPE_NAMES = {"bool": "true or false (no quotes)", "string": "a string in double quotes",
               "int": "a whole number", "dict": "a JSON object", "model": "a JSON object"}


def _json_type(data: Any, loc: tuple[Any, ...]) -> str:
    value = data
    for part in loc:
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return "something else"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), "something else")


def _problems_from(exc: ValidationError, data: dict[str, Any] | None = None) -> list[Problem]:
    problems = []
    for err in exc.errors(include_input=False):
        # Drop pydantic's validator and union-branch markers ("function-after[...]",
        # "MinioSettings") from loc paths: never the first element, which is always an
        # operator's top-level key (a stray "Settings" or "function-" key is reported).
        loc = [str(x) for x in err["loc"]]
        loc = loc[:1] + [x for x in loc[1:] if not x.startswith("function-")
                         and not (x[:1].isupper() and x.endswith("Settings"))]
        path = ".".join(loc) or "(top level)"
        kind = err["type"]
        msg = err["msg"].replace("Input should be", "must be").replace("input should be", "must be")
        if kind == "extra_forbidden":
            problems.append(_unknown_key(loc))
            continue
        if kind == "missing":
            problems.append(Problem(path, "is required but missing", "add it (see README)"))
            continue
        if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type"):
            want = kind.removesuffix("_type").removeprefix("model_attributes")
            want = {"": "model", "str": "string"}.get(want, want)
            got = _json_type(data, tuple(err["loc"])) if data is not None else "another type"
            problems.append(Problem(path, f"has the wrong JSON type ({got})",
                                    f"write it as {_TYPE_NAMES.get(want, want)}"))
            continue
        if kind == "literal_error":
            problems.append(Problem(path, msg.lower(), "use one of the listed values"))
            continue
        if kind == "value_error":
            what, _, fix = msg.removeprefix("Value error, ").partition("|")
            problems.append(Problem(path, what, fix or "correct the value"))
            continue
        if kind in ("string_too_short", "too_short"):
            n = err.get("ctx", {}).get("min_length", 1)
            problems.append(Problem(path, f"must be at least {n} characters long" if n > 1
                                    else "must not be empty", "use a longer value"))
            continue
        if kind == "string_pattern_mismatch":
            problems.append(Problem(path, "is not a valid container name (Docker's rule)",
                                    "use at least two characters: a letter or digit, then "
                                    "letters, digits, '_', '.' or '-'"))
            continue
        if kind in ("string_too_long", "too_long"):
            n = err.get("ctx", {}).get("max_length", 0)
            problems.append(Problem(path, f"is longer than {n} characters",
                                    "use a shorter value"))
            continue
        if kind in ("greater_than_equal", "less_than_equal"):
            problems.append(Problem(path, msg.lower(), "choose a value in range"))
            continue
        problems.append(Problem(path, msg.lower(),
                                "correct the value"))
    return problems


def _unknown_key(loc: list[str]) -> Problem:
    path = ".".join(loc)
    *parents, key = loc
    model: type[BaseModel] | None = LoonConfig
    for part in parents:
        model = _section_model(part) if model is LoonConfig else None
    known = [f.alias or n for n, f in model.model_fields.items()] if model else []
    guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not guess:
        lowered = {k.lower(): k for k in known}
        guess = [lowered[key.lower()]] if key.lower() in lowered else []
    fix = f"did you mean '{guess[0]}'?" if guess else (
        f"remove it; known keys here: {', '.join(known)}" if known else "remove it")
    return Problem(path, "unknown key", fix)
