"""The shape of config.json.

Field names keep the seed's camelCase so existing config files work unchanged. Secrets are
:class:`pydantic.SecretStr` so that no repr, log or error message ever shows them.
Per-field format checks live here (pydantic collects them all in one pass); rules that span
sections live in :mod:`loon_supervisor.config.rules`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from loon_supervisor.config.formats import check_image_reference, split_base_url


def _absolute_dir(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path|start it with / (the full host path)")
    if len(value) > 1 and value.endswith("/"):
        raise ValueError("must not end with a slash|remove the trailing /")
    if any(part in (".", "..") for part in value.split("/")) or "//" in value:
        raise ValueError("must not contain '.', '..' or '//' components|write the plain "
                         "absolute path")
    if "\0" in value:
        raise ValueError("must not contain a NUL character|write the plain absolute path")
    return value


def _relative_file(value: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ValueError("must be a file path relative to nginxSettings.sourceVolumeLocation|write it like certs/localhost.crt")
    return value


def _base_url(value: str) -> str:
    split_base_url(value)
    return value


def _nfs_version(value: str) -> str:
    if value not in ("3", "4", "4.0", "4.1", "4.2"):
        raise ValueError(f"'{value[:10]}' is not an NFS version|use 3, 4, 4.0, 4.1 or 4.2")
    return value


def _ip_address(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IP address|write the NFS server's IPv4 or IPv6 "
                         "address, e.g. 10.0.0.5") from None
    return value


def _endpoint_url(value: str) -> str:
    """An S3 endpoint: http(s)://host[:port], nothing else (buckets are path-style)."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://|write it like "
                         "https://s3.lab.example.org or http://10.0.0.5:9000")
    netloc = rest[:-1] if rest.endswith("/") else rest
    if "/" in netloc:
        raise ValueError("must not contain a path (the bucket goes in mediaBucket)|write only "
                         "the scheme, host and optional :port")
    try:
        split_base_url(netloc)
    except ValueError as exc:
        what, _, fix = str(exc).partition("|")
        raise ValueError(f"has a bad host: {what}|{fix}") from None
    return f"{scheme}://{netloc}"


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", re.ASCII)


def _bucket(value: str) -> str:
    if not _BUCKET.match(value) or ".." in value:
        raise ValueError(f"'{value[:70]}' is not an S3 bucket name|use 3 to 63 lowercase "
                         "letters, digits, dots and hyphens, starting and ending with a "
                         "letter or digit, e.g. loon-data")
    return value


def _region(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value, re.ASCII):
        raise ValueError(f"'{value[:70]}' is not a region name|write it like us-east-1 (your "
                         "store's documentation names it; MinIO and Ceph accept us-east-1)")
    return value


def _user_group(value: str) -> str:
    uid, sep, gid = value.partition(":")
    if not (sep and uid.isascii() and uid.isdigit() and gid.isascii() and gid.isdigit()):
        raise ValueError("is not uid:gid|write two numbers, e.g. 1000:1000")
    return value


AbsoluteDir = Annotated[str, AfterValidator(_absolute_dir)]
RelativeFile = Annotated[str, AfterValidator(_relative_file)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class GeneralSettings(Section):
    useHttp: bool = Field(description="true serves plain HTTP; false needs nginxSettings (TLS).")
    environment: Literal["production", "local"] = Field(
        description="production: full Loon (docker/); local: Local Loon (docker-local/)."
    )
    baseUrl: Annotated[str, AfterValidator(_base_url)] = Field(
        description="Host the application is reached at (host, host:port, [IPv6] or "
        "[IPv6]:port), without scheme or slashes."
    )
    experimentVisibilityControl: bool = Field(
        default=False,
        description="Loon's client lists only the experiments marked visible-by-default in "
        "aa_index.json unless the URL has show-all-experiments (the client build's "
        "VITE_EXPERIMENT_VISIBILITY_CONTROL; build.py --experiment-visibility-control sets it).",
    )


class MySqlSettings(Section):
    databaseName: str = Field(min_length=1, description="Database created on first start.")
    databaseUser: str = Field(min_length=1, description="Standard (application) user.")
    databasePassword: SecretStr = Field(min_length=1, description="Password of databaseUser.")
    databaseRootPassword: SecretStr = Field(min_length=1, description="Password of root.")
    sourceVolumeLocation: AbsoluteDir = Field(description="Host directory for MySQL data.")


class MinioSettings(Section):
    """Loon's object store: MinIO in the image (the default), or an external S3-compatible
    store when ``endpointUrl`` is set (docs/real-loon.md, "An external S3-compatible store")."""

    minioStorageAccessKey: SecretStr = Field(
        min_length=4, description="MinIO administrator user (more than 3 characters); with "
        "endpointUrl: the access key Loon uses at the external store."
    )
    minioStorageSecretKey: SecretStr = Field(
        min_length=8, description="MinIO administrator password (more than 7 characters); "
        "with endpointUrl: the secret key Loon uses at the external store."
    )
    sourceVolumeLocation: AbsoluteDir | None = Field(
        default=None, description="Host directory for MinIO data (required unless "
        "endpointUrl is set; with endpointUrl nothing of this machine holds uploads).")
    required: bool = Field(
        default=False,
        description="Fail the build when MinIO cannot be built in, instead of running without it "
                    "(MINIO_ENABLED=false, uploads then stay on the server's file system).",
    )
    endpointUrl: Annotated[str, AfterValidator(_endpoint_url)] | None = Field(
        default=None,
        description="An external S3-compatible store (a lab's own MinIO, Ceph, a cloud "
        "bucket) Loon keeps its uploads in, as http(s)://host[:port]; MinIO is then not built "
        "into the image. null: MinIO in the image.",
    )
    tlsVerify: bool = Field(
        default=True, description="With an https endpointUrl: check the store's certificate "
        "(false accepts any certificate: test stores only).")
    caBundle: str | None = Field(
        default=None, description="With an https endpointUrl: a PEM file of the CA(s) that "
        "signed the store's certificate (a lab's own CA), mounted read-only into the "
        "container; a relative path is taken from the config file's directory; null: the "
        "public CAs.")
    region: Annotated[str, AfterValidator(_region)] | None = Field(
        default=None, description="With endpointUrl: the store's region (e.g. us-east-1), "
        "used to sign requests; null asks the store.")
    mediaBucket: Annotated[str, AfterValidator(_bucket)] | None = Field(
        default=None, description="With endpointUrl: the existing bucket Loon's uploads and "
        "experiment files go to (default data); static files stay in the image, served by "
        "nginx.")
    volumeType: Literal["bind", "nfs"] = Field(
        default="bind",
        description="bind: sourceVolumeLocation is a host directory; nfs: it is the path "
        "exported by the NFS server at ipAddress, mounted by the engine as a Docker local "
        "volume (type=nfs), never a directory of this machine.",
    )
    nfsVersion: Annotated[str, AfterValidator(_nfs_version)] | None = Field(
        default=None, description="With volumeType nfs: the NFS version (3, 4, 4.0, 4.1 or "
        "4.2; a number is accepted too).")
    ipAddress: Annotated[str, AfterValidator(_ip_address)] | None = Field(
        default=None, description="With volumeType nfs: the NFS server's IP address.")
    userGroupPermissions: Annotated[str, AfterValidator(_user_group)] | None = Field(
        default=None, description="With volumeType nfs: uid:gid MinIO runs as inside the "
        "container, so that files on the export get an owner the server accepts.")

    @property
    def external(self) -> bool:
        """Uploads go to an external S3-compatible store, not to MinIO in the image."""
        return self.endpointUrl is not None

    @property
    def media_bucket(self) -> str:
        return self.mediaBucket or "data"

    @model_validator(mode="after")
    def _external_complete(self) -> MinioSettings:
        if self.endpointUrl is None:
            given = [n for n in ("caBundle", "region", "mediaBucket")
                     if getattr(self, n) is not None] + (["tlsVerify"] if not self.tlsVerify
                                                         else [])
            if given:
                raise ValueError(f"{', '.join(given)} apply to an external store only|set "
                                 "endpointUrl to the store's http(s):// address, or remove "
                                 f"{', '.join(given)}")
            if self.sourceVolumeLocation is None:
                raise ValueError("sourceVolumeLocation is required (MinIO's data directory)|"
                                 "add sourceVolumeLocation, or set endpointUrl to keep the "
                                 "uploads in an external S3-compatible store")
            return self
        if self.endpointUrl.startswith("http://") and (self.caBundle is not None
                                                       or not self.tlsVerify):
            raise ValueError("caBundle and tlsVerify apply to an https endpointUrl only|"
                             "use https:// in endpointUrl, or remove them")
        if self.caBundle is not None and not self.tlsVerify:
            raise ValueError("caBundle is set but tlsVerify is false|remove one of them "
                             "(a CA bundle is only used when the certificate is checked)")
        if self.required:
            raise ValueError("required is about MinIO in the image, which an external store "
                             "replaces|remove required, or remove endpointUrl")
        if self.volumeType == "nfs" or self.sourceVolumeLocation is not None:
            raise ValueError("sourceVolumeLocation and volumeType nfs are for MinIO in the "
                             "image, not an external store|remove them, or remove endpointUrl")
        return self

    @field_validator("nfsVersion", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        """Upstream's schema has it as an integer (4); 4.1 is a number too."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else value

    @model_validator(mode="after")
    def _nfs_complete(self) -> MinioSettings:
        if self.volumeType == "nfs" and (self.nfsVersion is None or self.ipAddress is None):
            missing = " and ".join(n for n in ("nfsVersion", "ipAddress")
                                   if getattr(self, n) is None)
            raise ValueError(f"volumeType nfs needs {missing}|add {missing} (the NFS server's "
                             "version and IP address), or set volumeType to bind")
        if self.volumeType == "bind" and any(
                v is not None for v in (self.nfsVersion, self.ipAddress,
                                        self.userGroupPermissions)):
            raise ValueError("nfsVersion, ipAddress and userGroupPermissions apply to "
                             "volumeType nfs only|set volumeType to nfs, or remove them")
        return self


class NginxSettings(Section):
    sourceVolumeLocation: AbsoluteDir = Field(description="Host directory holding the TLS files.")
    targetVolumeLocation: AbsoluteDir = Field(
        default="/etc/nginx/ssl", description="Where that directory is mounted (read-only)."
    )
    certFileLocation: RelativeFile = Field(description="Certificate, relative to the source.")
    keyFileLocation: RelativeFile = Field(description="Private key, relative to the source.")


class LocalDataSettings(Section):
    sourceVolumeLocation: AbsoluteDir = Field(
        description="Host directory with experiment data, served read-only (local environment)."
    )


class DeploymentSettings(Section):
    """Knobs the seed did not have, each with a default that suits a normal machine."""

    containerName: str = Field(
        default="loon",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$", max_length=128,
        description="Container name (Docker's rule: at least two characters); also names "
        "this deployment for -D.",
    )
    imageTag: Annotated[str, AfterValidator(check_image_reference)] = Field(
        default="loon:latest", description="Tag of the built image (a valid image reference).")
    imageDirectory: str | None = Field(
        default=None,
        description="Build context instead of docker/ (production) or docker-local/ (local); "
        "relative paths are taken from the project root.",
    )
    buildNetworkMode: str = Field(
        default="default", description="Network of build steps: default, host or none."
    )
    networkMode: str = Field(
        default="default", description="Network of the container: default (bridge), host or none."
    )
    publishedPorts: dict[str, int] = Field(
        default_factory=lambda: {"80": 80, "443": 443},
        description='Container port -> host port, e.g. {"80": 8080}; ignored with host network.',
    )
    stopTimeout: int = Field(
        default=30, ge=0, le=600,
        description="Seconds services get to stop before being killed (MariaDB needs time).",
    )
    crashLoopRestarts: int = Field(
        default=3, ge=1, le=100,
        description="A service restarted this many times within crashLoopWindow seconds is "
        "reported as crash-looping (docs/real-loon.md).",
    )
    crashLoopWindow: float = Field(
        default=300, gt=0, le=86400, description="Seconds over which restarts are counted.",
    )
    httpPort: int = Field(default=80, ge=1, le=65535,
                          description="Port nginx listens on inside the container (HTTP).")
    httpsPort: int = Field(default=443, ge=1, le=65535,
                           description="Port nginx listens on inside the container (HTTPS).")
    extraCaCertificate: str | None = Field(
        default=None,
        description="PEM file added to the build's trust store (TLS-intercepting proxies); "
        "a relative path is taken from the config file's directory.",
    )
    buildArgs: dict[str, str] = Field(default_factory=dict, description="Extra build arguments.")
    loonSourceLocation: str | None = Field(
        default=None,
        description="Loon source checkout; when set, server, celery and the client are built "
        "in; a relative path is taken from the config file's directory.",
    )
    orchestrator: Literal["container", "swarm"] = Field(
        default="container", description="container: one container (docker); swarm: a core "
        "service and celeryReplicas Celery services on a Docker Swarm (docs/scaling.md).")
    celeryReplicas: int = Field(default=1, ge=0, le=200,
                                description="Celery worker replicas with orchestrator swarm.")
    imageRegistry: str | None = Field(
        default=None, description="Registry the image is pushed to before a swarm deploy; "
        "required when the swarm has more than one node.")
    swarmNodeEngines: dict[str, str] = Field(
        default_factory=dict, description="Swarm nodes other than the manager `loon` talks "
        "to, by node ID, address (`docker node inspect -f '{{.Status.Addr}}'`) or hostname, each with "
        "the engine URL (unix://, tcp://, ssh://user@host) through which their tasks' log "
        "files are followed; a node not listed runs tasks nobody follows (docs/scaling.md).")
    swarmCoreAddress: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$",
        description="With orchestrator swarm: the address Celery workers on other nodes reach "
        "MariaDB, Redis and MinIO at, and the core binds them to besides loopback; by default "
        "the advertise address of the node labelled loon.volumes=true (docs/scaling.md).")
    djangoDebug: bool = Field(
        default=False,
        description="Run Django with DEBUG=true (tracebacks in error pages): local debugging only.",
    )
    minioSourceUrl: str | None = Field(
        default="https://dl.min.io/server/minio/release/linux-amd64/minio",
        description="Where the build fetches the MinIO server binary (the default is "
        "linux-amd64 only); fetched once into .build-files/cache/minio, which later builds "
        "reuse even when the URL changes (delete it to fetch again); null builds without MinIO.",
    )
    minioBinary: str | None = Field(
        default=None,
        description="A MinIO server binary supplied as a local file (hosts that cannot reach "
        "minioSourceUrl), used instead of downloading; needs minioSha256; a relative path is "
        "taken from the config file's directory.",
    )
    minioSha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the MinIO binary (64 lowercase hex digits, as MinIO's "
        "minio.sha256sum next to the download gives): minioBinary, a download and the "
        "cached copy must match it, or the build fails.",
    )
    keepVersions: int = Field(
        default=3, ge=1, le=100,
        description="Versions (image tags) kept for rollback; older ones and their build's "
        "dangling images are pruned after each deploy (docs/upgrades.md).")
    image: str | None = Field(
        default=None,
        description="Deploy this prebuilt image (a registry reference, e.g. "
        "ghcr.io/lab/loon:v1.42) instead of building; pulled with the engine's credentials "
        "(docs/upgrades.md).")
    webhookRepository: str | None = Field(
        default=None,
        description="Repository the deploy webhook may name a version of (its 'image' "
        "field); default: the repository of image; neither set: the webhook cannot name one.")
    keepBackups: int = Field(
        default=5, ge=1, le=1000,
        description="Backups kept in backups/ (loon backup, and the one a redeploy takes "
        "before its swap); older ones are removed (docs/upgrades.md).")
    backupBeforeDeploy: bool = Field(
        default=True, description="A redeploy backs up the database and the data right "
        "before it replaces the running version (docs/upgrades.md).")
    healthTimeout: float = Field(
        default=180, gt=0, le=3600,
        description="Seconds a new version has to pass its health gate (MariaDB, Redis, "
        "nginx, the server, Celery) before it is rolled back (docs/upgrades.md).")
    logSource: Literal["auto", "exec", "hostdir"] = Field(
        default="auto",
        description="How service logs are read: exec (a tail in the container, any engine), "
        "hostdir (the log dir bind-mounted from .build-files/service-logs/, read with inotify; "
        "local engine only) or auto (hostdir when the engine is local); docs/log-faults.md.",
    )
    logSessionsKept: int = Field(
        default=20, ge=1, le=10000,
        description="Session directories kept under logs/; when a session starts, older ones "
        "are gzipped and the oldest pruned (never one being written); README 'Host logs'.",
    )
    logMaxMegabytes: int = Field(
        default=1024, ge=16, le=10_000_000,
        description="MiB that logs/ and the fast path's staging copy may use; oldest sessions "
        "are pruned down to it when a session starts; the staging copy alone keeps to a "
        "quarter of it (rotated files already copied go); loon status and doctor warn from "
        "80 %.",
    )


    @field_validator("image", "webhookRepository")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return None if value is None else check_image_reference(value)


class LoonConfig(Section):
    schema_: str | None = Field(default=None, alias="$schema",
                                description="Path of the JSON Schema, for editors.")
    generalSettings: GeneralSettings
    mySqlSettings: MySqlSettings
    minioSettings: MinioSettings | None = None
    nginxSettings: NginxSettings | None = None
    localDataSettings: LocalDataSettings | None = None
    deploymentSettings: DeploymentSettings = Field(default_factory=DeploymentSettings)

    @property
    def allowed_host(self) -> str:
        """Django's ALLOWED_HOSTS entry: the host without its port (IPv6 keeps brackets)."""
        return split_base_url(self.generalSettings.baseUrl)[0]

    @property
    def url(self) -> str:
        scheme = "http" if self.generalSettings.useHttp else "https"
        return f"{scheme}://{self.generalSettings.baseUrl}"

    @property
    def minio(self) -> MinioSettings | None:
        """minioSettings where they apply: the one place that says MinIO is production's
        (the local image reads uploads from the local data mount instead)."""
        return self.minioSettings if self.generalSettings.environment == "production" else None

    @property
    def external_store(self) -> MinioSettings | None:
        """minioSettings when they point Loon at an external S3-compatible store."""
        return self.minio if self.minio is not None and self.minio.external else None

    @property
    def local_data(self) -> LocalDataSettings | None:
        """localDataSettings where they apply: the local environment only."""
        return self.localDataSettings if self.generalSettings.environment == "local" else None

    @property
    def is_local(self) -> bool:
        return self.generalSettings.environment == "local"

    def volume_dirs(self) -> list[tuple[str, str]]:
        """(JSON path, directory) of every host directory the container mounts."""
        out = [("mySqlSettings.sourceVolumeLocation", self.mySqlSettings.sourceVolumeLocation)]
        m = self.minio
        if m and m.volumeType == "bind" and m.sourceVolumeLocation is not None:
            # nfs: a path on the NFS server; an external store: nothing of this machine
            out.append(("minioSettings.sourceVolumeLocation", m.sourceVolumeLocation))
        if self.local_data:
            out.append(
                ("localDataSettings.sourceVolumeLocation", self.local_data.sourceVolumeLocation)
            )
        return out
