"""Read config.json, apply environment overrides, and report every problem at once.

JSON values must have the type a field declares (strict, as the original schema was).
Environment variables ``LOON_<SECTION>__<FIELD>`` (case-insensitive, e.g.
``LOON_MYSQLSETTINGS__DATABASEPASSWORD``) override the file; they are text, so booleans and
numbers are parsed from them per field, and strings stay strings.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.config.rules import check_rules
from loon_supervisor.errors import ConfigError, Problem

ENV_PREFIX = "LOON_"


def _env_source(environ: dict[str, str]) -> dict[str, Any]:
    """pydantic-settings finds and explodes LOON_<SECTION>__<FIELD> variables. Imported only
    when such a variable exists: it is a third of ``build.py -e``'s start-up time."""
    from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

    class _EnvOverrides(BaseSettings, LoonConfig):
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                          case_sensitive=False, extra="forbid")

    source = EnvSettingsSource(_EnvOverrides)
    source.env_vars = {k.lower(): v for k, v in environ.items()}
    return source()


def read_json(path: Path) -> dict[str, Any]:
    """Parse the file, turning every I/O or syntax failure into one clear problem."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(name, "file not found", f"create it (see config.example.json) or pass "
                     f"--config-file; looked for {path.resolve()}")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, f"cannot be read ({exc})", "fix the file")]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [Problem(f"{name}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}",
                     f"fix the syntax at line {exc.lineno}, column {exc.colno}")]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, "the top level must be a JSON object", "wrap it in { }")])
    return data


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """LOON_* variables as a nested dict, with bools and ints parsed per field."""
    environ = dict(os.environ) if environ is None else environ
    sections = tuple(f"{ENV_PREFIX}{s}__".lower() for s in LoonConfig.model_fields)
    if not any(k.lower().startswith(sections) for k in environ):
        return {}
    raw = _env_source(environ)
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for section, values in raw.items():
        section_model = _section_model(section)
        if section_model is None or not isinstance(values, dict):
            out[section] = values
            continue
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            field = section_model.model_fields.get(key)
            if field is not None and field.annotation in (bool, int) and isinstance(value, str):
                try:
                    value = TypeAdapter(field.annotation).validate_strings(value)
                except ValidationError:
                    kind = "true or false" if field.annotation is bool else "a whole number"
                    problems.append(Problem(
                        f"{ENV_PREFIX}{section}__{key}".upper(),
                        f"cannot be read as {kind}", f"set it to {kind}"))
                    continue
            parsed[key] = value
        out[section] = parsed
    if problems:
        raise ConfigError(problems, "the environment")
    return out


def _section_model(name: str) -> type[BaseModel] | None:
    field = LoonConfig.model_fields.get(name)
    if field is None:
        return None
    ann = field.annotation
    for candidate in getattr(ann, "__args__", (ann,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def validate_data(data: dict[str, Any], base_dir: Path | None = None) -> LoonConfig:
    """Validate already-parsed data; raises ConfigError listing every problem."""
    problems: list[Problem] = []
    config: LoonConfig | None = None
    try:
        config = LoonConfig.model_validate(data, strict=True)
    except ValidationError as exc:
        problems.extend(_problems_from(exc))
    problems.extend(check_rules(data, base_dir))
    if problems:
        raise ConfigError(_dedupe(problems))
    assert config is not None
    return config


def load_config(path: Path, environ: dict[str, str] | None = None) -> LoonConfig:
    """The whole pipeline: file, environment, structure, rules. No side effects."""
    data = _merge(read_json(path), env_overrides(environ))
    try:
        return validate_data(data, path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(exc.problems, str(path)) from None


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


def _problems_from(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_input=False):
        loc = [str(x) for x in err["loc"] if not str(x).startswith("function-")]
        # Drop pydantic's union-branch markers such as "MinioSettings" in loc paths.
        loc = [x for x in loc if not (x[:1].isupper() and x.endswith("Settings"))]
        path = ".".join(loc) or "(top level)"
        kind = err["type"]
        msg = err["msg"]
        if kind == "extra_forbidden":
            problems.append(_unknown_key(loc))
            continue
        if kind == "missing":
            problems.append(Problem(path, "is required but missing", "add it (see README)"))
            continue
        if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type"):
            want = kind.removesuffix("_type").removeprefix("model_attributes")
            want = {"": "model", "str": "string"}.get(want, want)
            problems.append(Problem(path, f"has the wrong JSON type ({msg.lower()})",
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
            problems.append(Problem(path, "contains characters that are not allowed",
                                    "use letters, digits, '_', '.' and '-' only"))
            continue
        if kind in ("greater_than_equal", "less_than_equal"):
            problems.append(Problem(path, msg.lower(), "choose a value in range"))
            continue
        problems.append(Problem(path, msg, "correct the value"))
    return problems


def _unknown_key(loc: list[str]) -> Problem:
    path = ".".join(loc)
    *parents, key = loc
    model: type[BaseModel] | None = LoonConfig
    for part in parents:
        model = _section_model(part) if model is LoonConfig else None
    known = list(model.model_fields) if model else []
    guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not guess:
        lowered = {k.lower(): k for k in known}
        guess = [lowered[key.lower()]] if key.lower() in lowered else []
    fix = f"did you mean '{guess[0]}'?" if guess else (
        f"remove it; known keys here: {', '.join(known)}" if known else "remove it")
    return Problem(path, "unknown key", fix)
