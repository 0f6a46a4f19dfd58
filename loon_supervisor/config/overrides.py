"""``LOON_<SECTION>__<FIELD>`` and ``LOON_<SECTION>`` environment overrides.

Hand-written rather than pydantic-settings' source: that source raises its own
``SettingsError`` on bad JSON, applies a whole-section variable only when a field variable
exists too, turns ``null`` into the string ``"null"``, and silently ignores names that match
no field. Here every variable is parsed per the field's type, every failure names the
variable, and unknown ``LOON_*`` names come back as warnings with a did-you-mean.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from loon_supervisor.config.envnames import ENV_PREFIX as ENV_PREFIX
from loon_supervisor.config.envnames import NOT_CONFIG as NOT_CONFIG
from loon_supervisor.config.envnames import NOT_CONFIG_PREFIXES as NOT_CONFIG_PREFIXES
from loon_supervisor.config.envnames import override_names
from loon_supervisor.config.model import LoonConfig
from loon_supervisor.errors import ConfigError, Problem


@dataclass
class Overrides:
    """Parsed overrides, which variable set which JSON path, and warnings to print."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def section_model(name: str) -> type[BaseModel] | None:
    """The model of a top-level section, or None for non-section fields such as $schema."""
    f = LoonConfig.model_fields.get(name)
    if f is None:
        return None
    for candidate in typing.get_args(f.annotation) or (f.annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


SECTIONS = {n.lower(): n for n in LoonConfig.model_fields if section_model(n)}


_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
MAX_DIGITS = 18
"""No field's range needs more digits; more would only reach Python's conversion limit."""


def _nullable(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)


def _base(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if isinstance(annotation, types.UnionType) and args else annotation


def parse_value(var: str, annotation: Any, text: str) -> Any:
    """One variable's text as the field's JSON value; raises ConfigError naming it."""
    if _nullable(annotation) and text.strip().lower() == "null":
        return None
    base = _base(annotation)
    origin = typing.get_origin(base)
    if base is bool:
        if text.strip().lower() in ("true", "false"):
            return text.strip().lower() == "true"
        raise ConfigError([Problem(var, f"'{text[:20]}' is not a boolean",
                                   "set it to true or false")])
    if base is int:
        stripped = text.strip()
        if _INT.fullmatch(stripped):
            if len(stripped.lstrip("+-")) > MAX_DIGITS:
                raise ConfigError([Problem(var, f"has more than {MAX_DIGITS} digits",
                                           "set it to a value in the field's range")])
            return int(stripped)  # the model checks the range, as for the file's value
        raise ConfigError([Problem(var, f"'{text[:20]}' is not a whole number",
                                   "set it to digits only (ASCII 0-9), e.g. 30")])
    if base is float:
        stripped = text.strip()
        if _FLOAT.fullmatch(stripped) and len(stripped) <= 4 * MAX_DIGITS:
            return float(stripped)
        raise ConfigError([Problem(var, f"'{text[:20]}' is not a number",
                                   "set it to a decimal number such as 60 or 1.5")])
    if origin is dict or (isinstance(base, type) and issubclass(base, BaseModel)):
        return _json_object(var, text)
    return text


def _json_object(var: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ConfigError([Problem(var, "is not a JSON object",
                                   "set it to an object such as '{\"key\": \"value\"}'")])
    return value


def _guess(word: str, choices: list[str]) -> str:
    found = difflib.get_close_matches(word.upper(), [c.upper() for c in choices], n=1,
                                      cutoff=0.6)
    return f"; did you mean {found[0]}?" if found else ""


def read_overrides(environ: dict[str, str]) -> Overrides:
    """Every LOON_* config variable parsed; ConfigError lists all bad ones at once."""
    out = Overrides()
    problems: list[Problem] = []
    names = override_names(environ)
    known_vars = [f"{ENV_PREFIX}{s}" for s in SECTIONS] + [
        f"{ENV_PREFIX}{s}__{f}" for s, real in SECTIONS.items()
        for f in section_model(real).model_fields]  # type: ignore[union-attr]
    # Whole-section variables first, so that field variables override them.
    names.sort(key=lambda k: "__" in k)
    for var in names:
        rest = var[len(ENV_PREFIX):].lower()
        section_key, sep, field_key = rest.partition("__")
        section = SECTIONS.get(section_key)
        model = section_model(section) if section else None
        if section is None or model is None or (sep and field_key.lower() not in
                             {f.lower() for f in model.model_fields}):
            out.warnings.append(f"warning: environment variable {var} matches no setting and "
                                f"is ignored{_guess(var, known_vars)}")
            continue
        if any("\ud800" <= c <= "\udfff" for c in environ[var]):
            problems.append(Problem(var, "is not valid UTF-8 text", "set it to UTF-8 text"))
            continue
        try:
            if not sep:
                value = _json_object(var, environ[var])
                out.data[section] = {**value, **out.data.get(section, {})} \
                    if isinstance(out.data.get(section), dict) else value
                for key in value:
                    out.origin[f"{section}.{key}"] = var
                out.origin[section] = var
                continue
            name = next(f for f in model.model_fields if f.lower() == field_key.lower())
            earlier = out.origin.get(f"{section}.{name}", "")
            if "__" in earlier and environ[earlier] != environ[var]:
                raise ConfigError([Problem(var, f"sets the same field as {earlier} with "
                                           "another value", "unset one of them")])
            value = parse_value(var, model.model_fields[name].annotation, environ[var])
            out.data.setdefault(section, {})
            if not isinstance(out.data[section], dict):
                out.data[section] = {}
            out.data[section][name] = value
            out.origin[f"{section}.{name}"] = var
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems, "the environment")
    return out


def attribute(problems: list[Problem], origin: dict[str, str]) -> list[Problem]:
    """Name the variable behind each problem that an override caused."""
    out = []
    for p in problems:
        parts = p.path.split(".")
        keys = [".".join(parts[:i]) for i in range(len(parts), 1, -1)]
        var = next((origin[k] for k in keys if k in origin), origin.get(p.path))
        out.append(Problem(f"{p.path} (set by {var})", p.message, p.fix) if var else p)
    return out
