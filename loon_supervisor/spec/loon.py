"""The Loon spec: from a validated config to what the engine is given, the build request
and the container spec. ``engine/`` knows nothing of the config; this is the one place that
translates it (mounts, environment, which image directory, which services)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine.build_context import included_files
from loon_supervisor.engine.containers import (
    CRASH_LOOP_LABEL,
    URL_LABEL,
    ContainerSpec,
    crash_loop_label,
)
from loon_supervisor.engine.images import RUN_SERVICES_LABEL, BuildRequest, ImageContract
from loon_supervisor.errors import BuildFailed, ImageContractError
from loon_supervisor.paths import build_files_dir, project_root
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.spec.build_inputs import gather
from loon_supervisor.spec.envfile import (
    LOCAL_DATA_TARGET,
    MEDIA_TARGET,
    MINIO_TARGET,
    MYSQL_TARGET,
    S3_CA_TARGET,
    read_env_file,
)
from loon_supervisor.spec.nfs import nfs_mount
from loon_supervisor.spec.prepare import Prepared

_SERVICES_ARG = re.compile(r"^\s*ARG\s+LOON_SERVICES=(\S+)", re.MULTILINE)


def image_context(cfg: LoonConfig) -> Path:
    """The image directory: deploymentSettings.imageDirectory, else docker/ (production)
    or docker-local/ (local) of the project."""
    d = cfg.deploymentSettings
    default_dir = "docker-local" if cfg.is_local else "docker"
    context = project_root() / d.imageDirectory if d.imageDirectory else \
        project_root() / default_dir  # an absolute imageDirectory stays as it is
    return context if context.is_absolute() else project_root() / context


def base_services(context: Path) -> list[str]:
    """The services every build of this image has: its Dockerfile's ``LOON_SERVICES``
    default, the one place the list is written down. An image without that argument (any
    other image honouring the label contract) gets none added."""
    try:
        m = _SERVICES_ARG.search((context / "Dockerfile").read_text(encoding="utf-8"))
    except OSError:
        return []
    return [s for s in m.group(1).strip("\"'").split(",") if s] if m else []


async def build_request(prepared: Prepared, say: Reporter) -> BuildRequest:
    """The image's directory plus the inputs the config adds (CA, Loon source, MinIO)."""
    cfg = prepared.config
    d = cfg.deploymentSettings
    context = image_context(cfg)
    try:
        shared: dict[str, Path | bytes | None] = dict(included_files(context))
    except ValueError as exc:
        raise BuildFailed("preparing the build context", str(exc)) from None
    base = prepared.config_path.resolve().parent
    inputs = await gather(cfg, base, build_files_dir() / "cache", base_services(context), say)
    return BuildRequest(context=context, tag=d.imageTag, network_mode=d.buildNetworkMode,
                        build_args=inputs.build_args,
                        extra_files={**shared, **inputs.extra_files})


def select_services(contract: ImageContract, only: tuple[str, ...] | None,
                    say: Reporter) -> ImageContract:
    """The contract for the services this container runs (run-time selection)."""
    if only is None:
        return contract
    if not contract.run_services_env:
        raise ImageContractError(
            f"image {contract.image} cannot run a subset of its services: it has no "
            f"'{RUN_SERVICES_LABEL}' label (see README, the image contract)")
    chosen = tuple(s for s in contract.services if s in only)
    missing = [s for s in only if s not in contract.services]
    if missing:
        say(f"not in image {contract.image}: {', '.join(missing)} (skipped)")
    if not chosen:
        raise ImageContractError(f"image {contract.image} holds none of {', '.join(only)}")
    return replace(contract, services=chosen)


def container_spec(prepared: Prepared, contract: ImageContract, remote: bool
                   ) -> ContainerSpec:
    """Mounts, environment and ports of the container. ``remote``: the engine is on
    another machine, so files of this one are copied in instead of bind-mounted."""
    cfg = prepared.config
    d = cfg.deploymentSettings
    binds = [f"{cfg.mySqlSettings.sourceVolumeLocation}:{MYSQL_TARGET}"]
    mounts: list[dict[str, Any]] = []
    copies: dict[str, Path] = {}
    if (ext := cfg.external_store) is not None:
        # Uploads live in the external store; only its CA bundle comes from this machine.
        if ext.caBundle:
            ca = Path(ext.caBundle)
            ca = ca if ca.is_absolute() else prepared.config_path.resolve().parent / ca
            if remote:
                copies[S3_CA_TARGET] = ca
            else:
                binds.append(f"{ca}:{S3_CA_TARGET}:ro")
    elif cfg.minio:
        # Without MinIO the same host directory keeps the uploads (spec/minio.py).
        target = MINIO_TARGET if prepared.env.get("MINIO_ENABLED") == "true" else MEDIA_TARGET
        if cfg.minio.volumeType == "nfs":
            mounts.append(nfs_mount(d.containerName, cfg.minio, target))
        else:
            binds.append(f"{cfg.minio.sourceVolumeLocation}:{target}")
    if cfg.nginxSettings and not cfg.generalSettings.useHttp:
        n = cfg.nginxSettings
        if remote:  # the certificates live on this machine: send them
            copies[n.targetVolumeLocation] = Path(n.sourceVolumeLocation)
        else:
            binds.append(f"{n.sourceVolumeLocation}:{n.targetVolumeLocation}:ro")
    if cfg.local_data:
        binds.append(f"{cfg.local_data.sourceVolumeLocation}:{LOCAL_DATA_TARGET}:ro")
    env = read_env_file(prepared.env_path)
    if contract.run_services_env:
        env[contract.run_services_env] = ",".join(contract.services)
    return ContainerSpec(
        name=d.containerName, image=contract.image, env=env,
        log_dir=contract.log_dir, binds=binds, mounts=mounts, network_mode=d.networkMode,
        ports=d.publishedPorts, stop_timeout=d.stopTimeout, copies=copies,
        labels={URL_LABEL: cfg.url,
                CRASH_LOOP_LABEL: crash_loop_label(d.crashLoopRestarts, d.crashLoopWindow)},
    )
