"""Registry credentials as the docker CLI keeps them: ``~/.docker/config.json`` (or
``$DOCKER_CONFIG/config.json``), its ``auths`` entries, and credential helpers
(``credHelpers`` per registry, ``credsStore`` for all). Nothing here is ever printed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

DOCKER_HUB = "https://index.docker.io/v1/"


def registry_of(reference: str) -> str:
    """The registry host of an image reference (Docker Hub's key for plain names)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _helper(helper: str, registry: str) -> dict[str, Any] | None:
    try:
        out = subprocess.run([f"docker-credential-{helper}", "get"], input=registry,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        data = json.loads(out.stdout)
    except ValueError:
        return None
    user, secret = data.get("Username"), data.get("Secret")
    if not secret:
        return None
    if user == "<token>":
        return {"identitytoken": secret, "serveraddress": registry}
    return {"username": user, "password": secret, "serveraddress": registry}


def credentials(reference: str) -> dict[str, Any] | None:
    """The X-Registry-Auth object for pulling ``reference``, or None (anonymous pull)."""
    registry = registry_of(reference)
    try:
        config = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helper = (config.get("credHelpers") or {}).get(registry) or config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _helper(helper, registry)
        if found is not None:
            return found
    auths = config.get("auths") or {}
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == DOCKER_HUB:
        keys += ["index.docker.io", "docker.io"]
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and (entry.get("auth") or entry.get("identitytoken")):
            if entry.get("identitytoken"):
                return {"identitytoken": entry["identitytoken"], "serveraddress": registry}
            import base64

            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return {"username": user, "password": password, "serveraddress": registry}
    return None
