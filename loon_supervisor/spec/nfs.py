"""An NFS-backed data volume (``minioSettings.volumeType: "nfs"``), as upstream's
docker-compose-nfs template has it: a Docker ``local`` volume with ``type=nfs`` options,
mounted by the engine (no NFS client is needed on this machine, nor a directory on it).

The volume is described in the container's own mount (``VolumeOptions.DriverConfig``), so
the engine creates it with the container. Its name carries a digest of the options: a
changed server, version or path makes a new volume instead of silently reusing the old one
(the engine ignores DriverConfig for a volume that already exists).
"""

from __future__ import annotations

import hashlib
from typing import Any

from loon_supervisor.config.model import MinioSettings


def nfs_options(m: MinioSettings) -> dict[str, str]:
    """The local driver's options: ``mount -t nfs -o addr=IP,vers=N,soft :PATH``."""
    assert m.ipAddress is not None and m.nfsVersion is not None
    return {"type": "nfs", "o": f"addr={m.ipAddress},vers={m.nfsVersion},soft",
            "device": f":{m.sourceVolumeLocation}"}


def nfs_volume_name(deployment: str, m: MinioSettings) -> str:
    options = nfs_options(m)
    digest = hashlib.sha256("\0".join(f"{k}={v}" for k, v in sorted(options.items()))
                            .encode()).hexdigest()[:10]
    return f"{deployment}-data-nfs-{digest}"


def nfs_mount(deployment: str, m: MinioSettings, target: str) -> dict[str, Any]:
    """One Engine API ``Mount`` (HostConfig.Mounts) of the NFS export at ``target``."""
    return {"Type": "volume", "Source": nfs_volume_name(deployment, m), "Target": target,
            "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": nfs_options(m)}}}
