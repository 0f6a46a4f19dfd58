"""Which ``LOON_*`` environment variables are configuration overrides (a module without
pydantic, so that the validation cache can ask cheaply)."""

from __future__ import annotations

from collections.abc import Mapping

ENV_PREFIX = "LOON_"
NOT_CONFIG = frozenset({
    # the tool and its scripts
    "LOON_PROJECT_ROOT", "LOON_BUILD_IN_VENV", "LOON_CI_CACHE_DIR", "LOON_DOCKERD_ROOT",
    "LOON_WAIT_TIMEOUT", "LOON_LOCK_FD", "LOON_USE_DID",
    # tuning knobs read at import (docs/log-faults.md)
    "LOON_COALESCE_MS", "LOON_HOSTDIR_COALESCE_MS", "LOON_ENGINE_GRACE",
    # the images' own variables (build arguments and the container's environment)
    "LOON_SERVICE", "LOON_SERVICES", "LOON_RUN_SERVICES", "LOON_MEDIA_DIR", "LOON_STATIC_DIR",
    "LOON_CLIENT_REQUIRED", "LOON_CLIENT_NODE_VERSION", "LOON_SERVER_DIR",
    "LOON_DJANGO_PROJECT", "LOON_FOLLOWER",
    # the env file's external S3 store (minioSettings.endpointUrl), read inside the image
    "LOON_S3_EXTERNAL", "LOON_S3_ENDPOINT_URL", "LOON_S3_TLS_VERIFY", "LOON_S3_CA_BUNDLE",
    # the deploy server's clients
    "LOON_DEPLOY_URL", "LOON_DEPLOY_TOKEN",
})
NOT_CONFIG_PREFIXES = ("LOON_FAULT_", "LOON_TEST_")
"""LOON_* variables the tool, its scripts, its images and tests use for other purposes: set
in the environment they draw no "matches no setting" warning (tests/docs checks that every
name a doc mentions is here or a setting)."""


def is_override(name: str) -> bool:
    """True for a variable read as a configuration override (or warned about as one)."""
    upper = name.upper()
    return upper.startswith(ENV_PREFIX) and upper not in NOT_CONFIG and \
        not upper.startswith(NOT_CONFIG_PREFIXES)


def override_names(environ: Mapping[str, str]) -> list[str]:
    """The override variables present, sorted."""
    return sorted(k for k in environ if is_override(k))
