"""Rules that span sections or touch the file system.

They run on the raw JSON data (tolerating wrong types, which the model reports) so that an
operator sees these problems in the same report as type errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loon_supervisor.errors import Problem


def _section(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    return value if isinstance(value, dict) else None


def engine_host_is_local() -> bool:
    """Hook: do the config's volume paths live on this machine? Not when the engine is remote
    (DOCKER_HOST / a Docker context): then they are checked and made on the engine's machine
    (loon_supervisor/engine/remote_paths.py), never here."""
    from loon_supervisor.engine.endpoint import resolve_endpoint
    from loon_supervisor.errors import LoonError

    try:
        return not resolve_endpoint().is_remote
    except LoonError:
        return False  # a broken context fails when the engine opens; make nothing here


def check_rules(data: dict[str, Any], base_dir: Path | None = None,
                engine_local: bool | None = None) -> list[Problem]:
    problems: list[Problem] = []
    if engine_local is None:
        engine_local = engine_host_is_local()
    general = _section(data, "generalSettings") or {}
    use_http = general.get("useHttp")
    env = general.get("environment")

    nginx = _section(data, "nginxSettings")
    if use_http is False and data.get("nginxSettings") is None:
        problems.append(Problem("nginxSettings", "is required because useHttp is false",
                                "add nginxSettings with the certificate and key, or set "
                                "generalSettings.useHttp to true"))
    if use_http is False and nginx and engine_local:
        src = nginx.get("sourceVolumeLocation")
        if isinstance(src, str) and src.startswith("/"):
            for key in ("certFileLocation", "keyFileLocation"):
                rel = nginx.get(key)
                if isinstance(rel, str) and rel and not rel.startswith("/"):
                    full = Path(src) / rel
                    if not full.is_file():
                        problems.append(Problem(f"nginxSettings.{key}",
                                                f"{full} does not exist or is not a file",
                                                "put the file there or correct the path"))

    if env == "production" and data.get("minioSettings") is None:
        problems.append(Problem("minioSettings", "is required for environment 'production'",
                                "add minioSettings, or set generalSettings.environment to "
                                "'local'"))
    if env == "local" and data.get("localDataSettings") is None:
        problems.append(Problem("localDataSettings", "is required for environment 'local'",
                                "add localDataSettings.sourceVolumeLocation"))
    if env == "local":
        local = _section(data, "localDataSettings") or {}
        src = local.get("sourceVolumeLocation")
        if (engine_local and isinstance(src, str) and src.startswith("/")
                and not Path(src).is_dir()):
            problems.append(Problem("localDataSettings.sourceVolumeLocation",
                                    f"{src} is not an existing directory",
                                    "point it at the directory holding your experiment data"))

    deploy = _section(data, "deploymentSettings") or {}
    ca = deploy.get("extraCaCertificate")
    if isinstance(ca, str) and not _resolve(ca, base_dir).is_file():
        problems.append(Problem("deploymentSettings.extraCaCertificate",
                                f"{ca} does not exist or is not a file",
                                "give the path of a PEM certificate, or null"))
    src = deploy.get("loonSourceLocation")
    if isinstance(src, str) and not _resolve(src, base_dir).is_dir():
        problems.append(Problem("deploymentSettings.loonSourceLocation",
                                f"{src} is not a directory",
                                "give the path of a Loon checkout, or null"))
    for mode_key in ("networkMode", "buildNetworkMode"):
        mode = deploy.get(mode_key)
        if isinstance(mode, str) and mode not in ("default", "host", "none", "bridge"):
            problems.append(Problem(f"deploymentSettings.{mode_key}", f"'{mode}' is not supported",
                                    "use default, host or none"))
    ports = deploy.get("publishedPorts")
    if isinstance(ports, dict):
        for key, value in ports.items():
            if not key.split("/")[0].isdigit() or not (isinstance(value, int)
                                                       and 0 < value < 65536):
                problems.append(Problem(f"deploymentSettings.publishedPorts.{key}",
                                        "is not a container port mapped to a host port 1-65535",
                                        'write it as "80": 8080'))
    return problems


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def ensure_volume_dirs(dirs: list[tuple[str, str]], engine_local: bool | None = None
                       ) -> tuple[list[str], list[Problem]]:
    """Create missing host directories; returns (messages, problems).

    Nothing is made here when the engine is remote: the supervisor makes them over there."""
    said: list[str] = []
    problems: list[Problem] = []
    if not (engine_host_is_local() if engine_local is None else engine_local):
        return said, problems
    for json_path, directory in dirs:
        p = Path(directory)
        if p.is_dir():
            if not os.access(p, os.W_OK | os.X_OK):
                problems.append(Problem(json_path, f"{directory} is not writable by this user",
                                        "fix its permissions or choose another directory"))
            continue
        if p.exists():
            problems.append(Problem(json_path, f"{directory} exists but is not a directory",
                                    "remove it or choose another path"))
            continue
        try:
            p.mkdir(parents=True, exist_ok=True)
            said.append(f"created {directory} ({json_path})")
        except OSError as exc:
            problems.append(Problem(json_path, f"{directory} cannot be created "
                                    f"({exc.strerror or exc})",
                                    "create it yourself or choose another directory"))
    return said, problems
