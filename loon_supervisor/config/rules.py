"""Rules that span sections or touch the file system.

They run on the raw JSON data (tolerating wrong types, which the model reports) so that an
operator sees these problems in the same report as type errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loon_supervisor.errors import Problem


def _section(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    return value if isinstance(value, dict) else None


def raw_volume_dirs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON path, directory) of the mounted host directories, from raw data; only the
    well-formed absolute paths (the model reports the others)."""
    env = (_section(data, "generalSettings") or {}).get("environment")
    names = ["mySqlSettings"] + (["minioSettings"] if env == "production" else []) + (
        ["localDataSettings"] if env == "local" else [])
    out = []
    for name in names:
        if name == "minioSettings" and (_section(data, name) or {}).get("volumeType") == "nfs":
            continue  # a path on the NFS server, not a directory of the engine's machine
        value = (_section(data, name) or {}).get("sourceVolumeLocation")
        if isinstance(value, str) and value.startswith("/") and "\0" not in value and not any(
                part in (".", "..") for part in value.split("/")):
            out.append((f"{name}.sourceVolumeLocation", value))
    return out


def _external_store_rules(minio: dict[str, Any], deploy: dict[str, Any],
                          base_dir: Path | None) -> list[Problem]:
    """An external S3 store: its CA bundle is a PEM file here, and no MinIO binary is asked
    for (the image is built without MinIO then)."""
    problems: list[Problem] = []
    if not isinstance(minio.get("endpointUrl"), str):
        return problems
    ca = minio.get("caBundle")
    if isinstance(ca, str):
        path = _resolve(ca, base_dir)
        if not _is_file(path):
            problems.append(Problem("minioSettings.caBundle", f"{ca} does not exist or is not "
                                    "a file", "give the path of the PEM file with the CA that "
                                    "signed the store's certificate, or null"))
        else:
            try:
                pem = path.read_bytes()[:1 << 20]
            except OSError as exc:
                pem = b""
                problems.append(Problem("minioSettings.caBundle", f"{ca} cannot be read "
                                        f"({exc.strerror})", "make it readable by this user"))
            if pem and b"-----BEGIN CERTIFICATE-----" not in pem:
                problems.append(Problem("minioSettings.caBundle", f"{ca} holds no PEM "
                                        "certificate", "give a PEM file (-----BEGIN "
                                        "CERTIFICATE-----), e.g. the lab CA's ca.crt"))
    if isinstance(deploy.get("minioBinary"), str):
        problems.append(Problem("deploymentSettings.minioBinary", "is set while "
                                "minioSettings.endpointUrl points at an external store, so no "
                                "MinIO is built in", "remove minioBinary (and minioSha256), or "
                                "remove minioSettings.endpointUrl to run MinIO in the image"))
    return problems


def check_rules(data: dict[str, Any], base_dir: Path | None = None,
                notes: list[str] | None = None, remote: bool | None = None) -> list[Problem]:
    """Problems spanning sections or the file system; ``notes`` collects remarks such as a
    certificate's days to expiry.

    :param remote: the engine is remote (default: as the environment says): volume
        directories are then on its machine and nothing about them is looked up here (TLS
        files and the other paths are this machine's: they are sent from here).
    """
    from loon_supervisor.config.volumes import check_volume_paths

    if remote is None:
        from loon_supervisor.engine.endpoint import resolve_endpoint

        remote = resolve_endpoint().remote
    notes = [] if notes is None else notes
    problems: list[Problem] = check_volume_paths(raw_volume_dirs(data), local=not remote)
    general = _section(data, "generalSettings") or {}
    use_http = general.get("useHttp")
    env = general.get("environment")

    nginx = _section(data, "nginxSettings")
    if use_http is False and data.get("nginxSettings") is None:
        problems.append(Problem("nginxSettings", "is required because useHttp is false",
                                "add nginxSettings with the certificate and key, or set "
                                "generalSettings.useHttp to true"))
    if use_http is False and nginx:
        src = nginx.get("sourceVolumeLocation")
        if isinstance(src, str) and src.startswith("/"):
            found = {}
            for key in ("certFileLocation", "keyFileLocation"):
                rel = nginx.get(key)
                if isinstance(rel, str) and rel and not rel.startswith("/"):
                    full = Path(src) / rel
                    if not _is_file(full):
                        problems.append(Problem(f"nginxSettings.{key}",
                                                f"{full} does not exist or is not a file",
                                                "put the file there or correct the path"))
                    else:
                        found[key] = full
            if len(found) == 2:
                from loon_supervisor.config.certificates import check_tls_pair

                more, said = check_tls_pair(found["certFileLocation"], found["keyFileLocation"])
                problems.extend(more)
                notes.extend(said)

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
        if isinstance(src, str) and src.startswith("/") and not remote \
                and not _is_dir(Path(src)):
            problems.append(Problem("localDataSettings.sourceVolumeLocation",
                                    f"{src} is not an existing directory",
                                    "point it at the directory holding your experiment data"))

    deploy = _section(data, "deploymentSettings") or {}
    ca = deploy.get("extraCaCertificate")
    if isinstance(ca, str) and not _is_file(_resolve(ca, base_dir)):
        problems.append(Problem("deploymentSettings.extraCaCertificate",
                                f"{ca} does not exist or is not a file",
                                "give the path of a PEM certificate, or null"))
    elif isinstance(ca, str):
        from loon_supervisor.config.certificates import check_ca

        more, said = check_ca(_resolve(ca, base_dir))
        problems.extend(more)
        notes.extend(said)
    problems.extend(_later_failures(data, deploy))
    minio = _section(data, "minioSettings") or {}
    if minio.get("volumeType") == "nfs" and deploy.get("orchestrator") == "swarm":
        problems.append(Problem("minioSettings.volumeType", '"nfs" is not supported with '
                                'deploymentSettings.orchestrator "swarm"',
                                "mount the export on the node and use volumeType bind, or "
                                'use orchestrator "container"'))
    problems.extend(_external_store_rules(minio, deploy, base_dir))
    binary = deploy.get("minioBinary")
    if isinstance(binary, str) and not _is_file(_resolve(binary, base_dir)):
        problems.append(Problem("deploymentSettings.minioBinary",
                                f"{binary} does not exist or is not a file",
                                "give the path of the MinIO server binary, or null"))
    elif isinstance(binary, str) and not deploy.get("minioSha256"):
        problems.append(Problem("deploymentSettings.minioBinary", "is set without "
                                "deploymentSettings.minioSha256", "add the binary's SHA-256 "
                                "(MinIO publishes it as minio.sha256sum beside the download)"))
    src = deploy.get("loonSourceLocation")
    if src == "":
        problems.append(Problem("deploymentSettings.loonSourceLocation", "is empty",
                                "give the path of a Loon checkout, or null"))
    elif isinstance(src, str) and not _is_dir(_resolve(src, base_dir)):
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
            port, _, proto = key.partition("/")
            if not (_PORT.fullmatch(port) and 0 < int(port) < 65536
                    and proto in ("", "tcp", "udp", "sctp")
                    and isinstance(value, int) and 0 < value < 65536):
                problems.append(Problem(f"deploymentSettings.publishedPorts.{key}",
                                        "is not a container port 1-65535 (optionally /tcp, "
                                        "/udp or /sctp) mapped to a host port 1-65535",
                                        'write it as "80": 8080 (Docker\'s rule)'))
    return problems


_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
MAX_DB_USER = 80
"""MariaDB's limit on user names."""


def _later_failures(data: dict[str, Any], deploy: dict[str, Any]) -> list[Problem]:
    """Values the model accepts that Docker, MariaDB or the build would refuse later."""
    from loon_supervisor.paths import project_root

    problems: list[Problem] = []
    user = (_section(data, "mySqlSettings") or {}).get("databaseUser")
    if isinstance(user, str) and len(user) > MAX_DB_USER:
        problems.append(Problem("mySqlSettings.databaseUser", f"is {len(user)} characters "
                                f"long; MariaDB allows at most {MAX_DB_USER}",
                                "use a shorter user name"))
    image_dir = deploy.get("imageDirectory")
    if isinstance(image_dir, str) and not _is_dir(project_root() / image_dir):
        problems.append(Problem("deploymentSettings.imageDirectory",
                                f"{image_dir} is not a directory",
                                "give an image directory (like docker/), or null"))
    args = deploy.get("buildArgs")
    if isinstance(args, dict):
        for key, value in args.items():
            if isinstance(value, str) and any(c in value for c in "\n\r\0"):
                problems.append(Problem(f"deploymentSettings.buildArgs.{key}",
                                        "holds a line break or NUL, which a build argument "
                                        "cannot carry", "put it on one line"))
    return problems


def _is_dir(path: Path) -> bool:
    """``is_dir`` that answers False where Python 3.11's raises (a name too long for the
    file system, a parent this user may not enter)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def ensure_volume_dirs(dirs: list[tuple[str, str]]) -> tuple[list[str], list[Problem]]:
    """Create missing host directories (``up`` only); returns (messages, problems)."""
    from loon_supervisor.config.volumes import check_volume_dirs

    return check_volume_dirs(dirs, create=True)
