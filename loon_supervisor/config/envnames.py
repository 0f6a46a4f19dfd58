"""Which ``LOON_*`` environment variables are configuration overrides (a module without
pydantic, so that the validation cache can ask cheaply)."""

from __future__ import annotations

from collections.abc import Mapping

ENV_PREFIX = "LOON_"
NOT_CONFIG = frozenset({"LOON_PROJECT_ROOT", "LOON_BUILD_IN_VENV", "LOON_CI_CACHE_DIR",
                        "LOON_DOCKERD_ROOT", "LOON_SERVICE", "LOON_SERVICES",
                        "LOON_WAIT_TIMEOUT"})
NOT_CONFIG_PREFIXES = ("LOON_FAULT_",)
"""LOON_* variables the tool, its scripts and tests use for other purposes."""


def is_override(name: str) -> bool:
    """True for a variable read as a configuration override (or warned about as one)."""
    upper = name.upper()
    return upper.startswith(ENV_PREFIX) and upper not in NOT_CONFIG and \
        not upper.startswith(NOT_CONFIG_PREFIXES)


def override_names(environ: Mapping[str, str]) -> list[str]:
    """The override variables present, sorted."""
    return sorted(k for k in environ if is_override(k))
