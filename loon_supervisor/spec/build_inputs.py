"""What the Loon Dockerfiles receive besides their directory: the extra CA certificate, the
Loon checkout, the MinIO binary when it can be fetched, and LOON_SERVICES naming exactly
the services that end up inside (the image's org.loon.services label), and the client's
build-time variables (VITE_*: the client is built for the URL it is served at)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.errors import BuildFailed
from loon_supervisor.spec.client_env import client_environment


@dataclass
class BuildInputs:
    extra_files: dict[str, Path | bytes | None]
    build_args: dict[str, str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def supplied_minio(path: Path, sha256: str | None) -> Path:
    """The operator's own MinIO binary (``deploymentSettings.minioBinary``), checked against
    ``minioSha256`` before it goes into an image.

    :raises BuildFailed: when it cannot be read or its checksum differs.
    """
    if sha256 is None:
        raise BuildFailed("checking MinIO", "deploymentSettings.minioBinary needs "
                          "deploymentSettings.minioSha256 (MinIO publishes it as "
                          "minio.sha256sum beside the download)")
    try:
        found = sha256_of(path)
    except OSError as exc:
        raise BuildFailed("checking MinIO", f"deploymentSettings.minioBinary {path} cannot "
                          f"be read ({exc.strerror}); give the path of the MinIO server "
                          "binary") from None
    if found != sha256:
        raise BuildFailed("checking MinIO", f"deploymentSettings.minioBinary {path} has "
                          f"SHA-256 {found}, not minioSha256 {sha256}: it is not the binary "
                          "you meant (or minioSha256 is wrong); nothing was built")
    return path


async def fetch_minio(url: str, cache: Path, say: Callable[[str], None],
                      sha256: str | None = None) -> Path | None:
    """The download (or its cached copy); with ``sha256``, a cached copy that does not match
    is fetched again and a download that does not match fails the build."""
    target = cache / "minio"
    if target.is_file() and target.stat().st_size > 0:
        if sha256 is None or sha256_of(target) == sha256:
            return target
        say(f"the cached MinIO binary {target} does not match minioSha256: fetching it again")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "minio.part"
    try:
        timeout = aiohttp.ClientTimeout(total=600, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as fh:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    fh.write(chunk)
        if sha256 is not None and (found := sha256_of(tmp)) != sha256:
            tmp.unlink(missing_ok=True)
            raise BuildFailed("fetching MinIO", f"the MinIO binary from {url} has SHA-256 "
                              f"{found}, not minioSha256 {sha256}; nothing was built: check "
                              "the URL and minioSha256")
        tmp.replace(target)
        target.chmod(0o755)
        return target
    except BuildFailed:
        raise
    except Exception as exc:  # any failure means: build without MinIO, and say so
        tmp.unlink(missing_ok=True)
        say(f"MinIO could not be fetched from {url} ({type(exc).__name__}: {exc}); "
            "building the image WITHOUT MinIO (MINIO_ENABLED=false: see docs/real-loon.md; "
            "set minioSettings.required to true to fail instead)")
        return None


async def gather(config: LoonConfig, base_dir: Path, cache: Path, base: list[str],
                 say: Callable[[str], None]) -> BuildInputs:
    """``base``: the services every build of this Dockerfile has (its ``LOON_SERVICES``
    default, see :func:`loon_supervisor.spec.loon.base_services`)."""
    d = config.deploymentSettings
    local = config.is_local
    files: dict[str, Path | bytes | None] = {"loon-build": None}
    if d.extraCaCertificate:
        ca = Path(d.extraCaCertificate)
        files["loon-build/extra-ca.crt"] = (ca if ca.is_absolute() else base_dir / ca).read_bytes()
    else:
        files["loon-build/extra-ca.crt"] = b""
    services = list(base)
    if local:
        pass  # the local image has no MinIO: uploads are the read-only local data mount
    elif (ext := config.external_store) is not None:
        say(f"MinIO: not built in (minioSettings.endpointUrl: uploads go to the external "
            f"store {ext.endpointUrl})")
    elif d.minioBinary:
        given = Path(d.minioBinary)
        files["loon-build/minio"] = supplied_minio(
            given if given.is_absolute() else base_dir / given, d.minioSha256)
        services.append("minio")
        say(f"MinIO: the supplied binary {d.minioBinary} (SHA-256 matches minioSha256)")
    elif d.minioSourceUrl:
        binary = await fetch_minio(d.minioSourceUrl, cache, say, d.minioSha256)
        if binary is not None:
            files["loon-build/minio"] = binary
            services.append("minio")
        elif config.minioSettings is not None and config.minioSettings.required:
            raise BuildFailed("fetching MinIO", f"MinIO could not be fetched from "
                              f"{d.minioSourceUrl} and minioSettings.required is true; make the "
                              "URL reachable or set minioSettings.required to false")
    elif config.minioSettings is not None and config.minioSettings.required:
        raise BuildFailed("fetching MinIO", "deploymentSettings.minioSourceUrl is null but "
                          "minioSettings.required is true; set one of them")
    else:
        say("deploymentSettings.minioSourceUrl is null: building without MinIO")
    if d.loonSourceLocation:
        src = Path(d.loonSourceLocation)
        files["loon-build/loon-src"] = src if src.is_absolute() else base_dir / src
        services += ["server", "celery"]
    else:
        files["loon-build/loon-src"] = None
    # The client's build-time variables (spec/client_env.py); buildArgs may still override.
    args = {"LOON_SERVICES": ",".join(services), **client_environment(config), **d.buildArgs}
    return BuildInputs(extra_files=files, build_args=args)
