"""What the Loon Dockerfiles receive besides their directory: the extra CA certificate, the
Loon checkout, the MinIO binary when it can be fetched, and LOON_SERVICES naming exactly
the services that end up inside (the image's org.loon.services label), and the client's
build-time variables (VITE_*: the client is built for the URL it is served at)."""

from __future__ import annotations

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


async def fetch_minio(url: str, cache: Path, say: Callable[[str], None]) -> Path | None:
    target = cache / "minio"
    if target.is_file() and target.stat().st_size > 0:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "minio.part"
    try:
        timeout = aiohttp.ClientTimeout(total=600, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as fh:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    fh.write(chunk)
        tmp.replace(target)
        target.chmod(0o755)
        return target
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
    elif d.minioSourceUrl:
        binary = await fetch_minio(d.minioSourceUrl, cache, say)
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
