"""The checks. Each looks at one thing the way Loon's users or its services reach it, mostly
from inside the container (``docker exec``), so they work in every network mode. A check
returns a detail (pass), a Verdict (warn/skip), or raises CheckFailed with its hint.

Secrets never appear in a detail or a hint: passwords go to the exec'd process through its
environment, and the env-file check names differing variables, never their values.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.paths import build_files_dir
from loon_supervisor.spec.client import CLIENT_ABSENT_FILE
from loon_supervisor.spec.envfile import SECRET_NAMES, environment, read_env_file, secret_key

from .verdict import SKIP, WARN, CheckFailed, Verdict

MIN_FREE_BYTES = 1 << 30  # 1 GiB: below it MariaDB and uploads start failing
CERT_WARN_DAYS = 14
DEBUG_PAGE_MARKERS = ("DEBUG = True", "Traceback (most recent call last)",
                      "technical_500", "You're seeing this error because")


@dataclass
class Context:
    engine: Engine
    cid: str
    info: ContainerInfo
    services: tuple[str, ...]
    config: LoonConfig
    env_path: Path
    container_env: dict[str, str] = field(default_factory=dict)

    @property
    def https(self) -> bool:
        return not self.config.generalSettings.useHttp

    @property
    def host(self) -> str:
        return self.config.generalSettings.baseUrl.split("/")[0]


Check = Callable[[Context], Awaitable[str | Verdict]]


async def exec_in(ctx: Context, cmd: list[str], env: dict[str, str] | None = None
                  ) -> tuple[int, str]:
    """Run a short command in the container; (exit code, stdout+stderr as text)."""
    code, out = await ctx.engine.run_capture(ctx.cid, cmd, env)
    return code, out.decode(errors="replace")


# Inside the container: python3 is in every Loon image (its base stage installs it).
_HTTP_PROBE = r"""
import json, ssl, sys, urllib.error, urllib.request
url, host = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
req = urllib.request.Request(url, headers={"Host": host})
try:
    with opener.open(req, timeout=10) as r: status, body = r.status, r.read(65536)
except urllib.error.HTTPError as e: status, body = e.code, e.read(65536)
print(json.dumps({"status": status, "body": body.decode("utf-8", "replace")}))
"""


async def http_in(ctx: Context, url: str, host: str) -> tuple[int, str]:
    code, out = await exec_in(ctx, ["python3", "-c", _HTTP_PROBE, url, host])
    if code != 0:
        raise CheckFailed(f"no answer from {url}: {out.strip().splitlines()[-1:]}",
                          "is nginx running? see nginx.log")
    data = json.loads(out.strip().splitlines()[-1])
    return int(data["status"]), str(data["body"])


def _port(ctx: Context, https: bool) -> int:
    d = ctx.config.deploymentSettings
    return d.httpsPort if https else d.httpPort


async def engine_version(ctx: Context) -> str:
    v = await ctx.engine.version()
    return f"Docker {v.version} (API {v.api_version})"


async def mariadb_login(ctx: Context) -> str:
    m = ctx.config.mySqlSettings
    code, out = await exec_in(
        ctx, ["mariadb", "--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P3306",
              f"-u{m.databaseUser}", "--batch", "--skip-column-names",
              f"--database={m.databaseName}", "-e", "SELECT DATABASE()"],
        env={"MYSQL_PWD": m.databasePassword.get_secret_value()})
    if code != 0 or out.strip() != m.databaseName:
        raise CheckFailed(f"user {m.databaseUser} cannot use database {m.databaseName}: "
                          f"{out.strip()[:200]}",
                          "check mySqlSettings against the data in sourceVolumeLocation "
                          "(an existing data directory keeps its old users); see mysql.log")
    return f"{m.databaseUser} sees {m.databaseName}"


async def redis_ping(ctx: Context) -> str:
    # a swarm core's Redis takes a password (swarm/reach.py): given as redis-cli reads it
    password = ctx.container_env.get("REDIS_PASSWORD", "")
    code, out = await exec_in(ctx, ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"],
                              env={"REDISCLI_AUTH": password} if password else None)
    if code != 0 or out.strip() != "PONG":
        raise CheckFailed(f"redis-cli ping answered {out.strip()[:100]!r}",
                          "see redis.log; Celery needs Redis as its broker")
    return "PONG"


async def minio_health(ctx: Context) -> str | Verdict:
    if ctx.config.generalSettings.environment != "production":
        return Verdict("minio", "health and buckets", SKIP, "local environment has no MinIO")
    if (ext := ctx.config.external_store) is not None:
        return Verdict("minio", "health and buckets", SKIP,
                       f"not in the image: uploads go to the external store {ext.endpointUrl}, "
                       f"bucket {ext.media_bucket} (checked by uploads / presigned round trip)")
    if "minio" not in ctx.services:
        return Verdict("minio", "health and buckets", WARN,
                       "MinIO is not in this image (MINIO_ENABLED=false): uploads are "
                       "unavailable (Loon's presigned S3 uploads need an object store); files "
                       "the server writes itself are kept in minioSettings.sourceVolumeLocation",
                       "to use MinIO, make deploymentSettings.minioSourceUrl reachable, or "
                       "supply the binary as deploymentSettings.minioBinary with minioSha256, "
                       "and rebuild; minioSettings.required=true makes its absence fail the "
                       "build")
    status, _ = await http_in(ctx, "http://127.0.0.1:9000/minio/health/live", "127.0.0.1")
    if status != 200:
        raise CheckFailed(f"/minio/health/live answered HTTP {status}", "see minio.log")
    media = ctx.container_env.get("MINIO_STORAGE_MEDIA_BUCKET_NAME", "data")
    static = ctx.container_env.get("MINIO_STORAGE_STATIC_BUCKET_NAME", "static")
    code, out = await exec_in(ctx, ["sh", "-c", f"ls -d /var/lib/minio/{media} "
                                                f"/var/lib/minio/{static}"])
    if code != 0:
        raise CheckFailed(f"bucket(s) missing: {out.strip()[:200]}",
                          "Loon's server creates the buckets on its first start; see server.log")
    return f"live; buckets {media} and {static}"


async def nginx_root(ctx: Context) -> str:
    port = _port(ctx, ctx.https)
    scheme = "https" if ctx.https else "http"
    status, body = await http_in(ctx, f"{scheme}://127.0.0.1:{port}/", ctx.host)
    if status != 200:
        raise CheckFailed(f"/ answered HTTP {status}", "see nginx.log")
    what = "the client" if "<li>" not in body else "the status page (no client built)"
    return f"{scheme} :{port} / serves {what}"


# The reason client.sh recorded when the image was built without the client (or nothing).
_CLIENT_ABSENT = (f"if [ -s {CLIENT_ABSENT_FILE} ]; then cat {CLIENT_ABSENT_FILE}; "
                  "elif [ -f /opt/loon/client/index.html ] && grep -q "
                  "'built without the Loon client' /opt/loon/client/index.html; then echo "
                  "'this image was built without the Loon client'; fi")


async def client_built(ctx: Context) -> str | Verdict:
    """WARN (not FAIL) when the client is absent: the build left it out on purpose
    (``LOON_CLIENT_REQUIRED=false``, or a source without a client); a required client that
    cannot be built fails the build itself, naming the package."""
    code, out = await exec_in(ctx, ["sh", "-c", _CLIENT_ABSENT])
    if code != 0:
        raise CheckFailed(f"cannot look into /opt/loon: {out.strip()[:200]}",
                          "is the container healthy? see container.log")
    reason = out.strip()
    if not reason:
        return "built in (/opt/loon/client, from the client's lockfile)"
    hint = ("make the locked versions reachable (e.g. a registry mirror) and rebuild; "
            "LOON_CLIENT_REQUIRED=false in deploymentSettings.buildArgs let the build go on "
            "without it" if "lockfile" in reason or "client build failed" in reason else
            "set deploymentSettings.loonSourceLocation to a Loon checkout with apps/client")
    return Verdict("client", "built in", WARN,
                   f"no Loon client in this image (/ serves a status page): {reason}", hint)


async def nginx_certificate(ctx: Context) -> str | Verdict:
    n = ctx.config.nginxSettings
    if not ctx.https or n is None:
        return Verdict("nginx", "https certificate", SKIP, "useHttp is true")
    port = _port(ctx, True)
    code, out = await exec_in(ctx, ["python3", "-c",
                                    "import ssl,sys;print(ssl.get_server_certificate("
                                    "('127.0.0.1',int(sys.argv[1]))))", str(port)])
    if code != 0:
        raise CheckFailed(f"no TLS handshake on port {port}", "see nginx.log")
    served = ssl.PEM_cert_to_DER_cert(out.strip())
    cert_path = Path(n.sourceVolumeLocation) / n.certFileLocation
    try:
        configured = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckFailed(f"cannot read {cert_path}: {exc}",
                          "nginxSettings.certFileLocation must name a PEM file") from None
    if served != configured:
        raise CheckFailed(f"the served certificate is not {cert_path}",
                          "restart the deployment after replacing the certificate")
    days = _days_left(cert_path)
    if days is not None and days < 0:
        raise CheckFailed(f"{cert_path} expired {-days} days ago", "renew the certificate")
    left = f"{days} days to expiry" if days is not None else "expiry unknown"
    if days is not None and days < CERT_WARN_DAYS:
        return Verdict("nginx", "https certificate", WARN, f"{cert_path.name}: {left}",
                       "renew the certificate soon")
    return f"{cert_path.name} (sha256 {hashlib.sha256(served).hexdigest()[:16]}...), {left}"


def _days_left(cert: Path) -> int | None:
    """Days until the certificate's notAfter (cryptography parses it)."""
    from cryptography import x509
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return None
    return (parsed.not_valid_after_utc - datetime.now(UTC)).days


NAME_CHECK_ROUTE = "/api/verifyExperimentName/"
NAME_CHECK_PROBE = "loon-doctor-probe"  # a name no experiment has; the route only reads
SERVER_LOG = "/var/log/loon/server.log"
TRACEBACK_LINES = 14


def last_traceback(log: str, prefer: str | None = None) -> str | None:
    """The last error record in a server.log tail with its traceback (at most
    TRACEBACK_LINES lines: the record's first line, then the innermost frames and the
    exception), or None. With ``prefer`` (a path), the last record whose first line holds it,
    when there is one: the checks run at once, so another request's error may come last.

    A record starts at the deployment's own ``ERROR django.request``/``django.security`` line
    (loon_deployment_settings.py) or, failing that, at ``Traceback (most recent call
    last):``; it ends after the exception line, at the next line that is neither indented
    nor part of a chained traceback.
    """
    lines = log.splitlines()
    heads = [i for i, line in enumerate(lines) if " ERROR django.request" in line
             or " ERROR django.security" in line]
    if prefer is not None:
        heads = [i for i in heads if prefer in lines[i]] or heads
    if not heads:
        heads = [i for i, line in enumerate(lines)
                 if line.startswith("Traceback (most recent call last):")]
    if not heads:
        return None
    block, after_exception = [lines[heads[-1]]], False
    for line in lines[heads[-1] + 1:]:
        if not line.strip() or line.startswith((" ", "\t", "Traceback (most recent",
                                                "During handling", "The above exception")):
            block.append(line)
            after_exception = False
            continue
        if after_exception:
            break
        block.append(line)
        after_exception = True
    block = [line for line in block if line.strip(" ^~")]  # no 3.11 position markers
    if len(block) > TRACEBACK_LINES:
        head = block[:2] if block[1].startswith("Traceback") else block[:1]
        block = [*head, "  ...", *block[len(head) - TRACEBACK_LINES + 1:]]
    return "\n".join(block).rstrip()


async def _server_traceback(ctx: Context, route: str | None = None) -> str:
    code, out = await exec_in(ctx, ["tail", "-c", "262144", SERVER_LOG])
    found = last_traceback(out, route) if code == 0 else None
    return (f"; last error in server.log:\n{found}" if found else
            "; server.log holds no traceback")


async def django_api(ctx: Context) -> str | Verdict:
    """Loon's experiment-name check (GET, reads the experiment index and the database): a
    real route of the upload flow, so a Loon that cannot serve it fails here with the
    traceback its server logged."""
    if "server" not in ctx.services:
        return Verdict("server", "name check route", WARN, "no server in this image",
                       "set deploymentSettings.loonSourceLocation to a Loon checkout")
    port = _port(ctx, ctx.https)
    scheme = "https" if ctx.https else "http"
    route = NAME_CHECK_ROUTE + NAME_CHECK_PROBE
    status, body = await http_in(ctx, f"{scheme}://127.0.0.1:{port}{route}", ctx.host)
    if any(m in body for m in DEBUG_PAGE_MARKERS):
        raise CheckFailed(f"{route} answered HTTP {status} with Django's DEBUG page",
                          "set deploymentSettings.djangoDebug to false (DEBUG=false) and "
                          "run up again")
    if status in (502, 503, 504):
        raise CheckFailed(f"{route} answered HTTP {status} (nginx: no server behind it)",
                          "see server.log; is the server RUNNING (loon status)?")
    if status >= 500:
        raise CheckFailed(f"{route} answered HTTP {status}"
                          f"{await _server_traceback(ctx, route)}",
                          "the traceback says whether Loon's code or the deployment is at "
                          "fault; see server.log")
    if status == 400:
        raise CheckFailed(f"{route} with Host {ctx.host} answered HTTP 400",
                          "ALLOWED_HOST in the env file must be generalSettings.baseUrl's host")
    if status == 404:
        return Verdict("server", "name check route", WARN,
                       f"{route} answered HTTP 404: this Loon has no experiment-name route, "
                       "so no real route was exercised (Django answered, without 5xx)",
                       "expected only with a Loon older or newer than the one documented "
                       "in docs/real-loon.md")
    try:
        answer = json.loads(body).get("status")
    except (ValueError, AttributeError):
        answer = None
    said = f", status {answer}" if isinstance(answer, str) else ""
    return f"HTTP {status}{said} for Host {ctx.host}, no DEBUG page"


# Celery's built-in task celery.accumulate (on every worker, whatever the task modules) echoes
# its argument: sent through the broker, its result read back from the result backend.
_CELERY_ROUND_TRIP = r"""
import os, sys, time, uuid
from celery.app.utils import find_app
app = find_app(os.environ["LOON_DJANGO_PROJECT"])
nonce, started = uuid.uuid4().hex, time.monotonic()
result = app.send_task("celery.accumulate", args=(nonce,), kwargs={"index": 0})
try:
    got = result.get(timeout=float(sys.argv[1]))
except Exception as exc:
    print(f"no result: {type(exc).__name__}: {exc}".splitlines()[0][:300])
    sys.exit(1)
finally:
    result.forget()
if got != nonce:
    print(f"wrong result {got!r}"[:300])
    sys.exit(1)
print(f"ok {time.monotonic() - started:.2f}")
"""
CELERY_ROUND_TRIP_TIMEOUT = 15


async def celery_ping(ctx: Context) -> str | Verdict:
    """A task through Redis to a worker and its result back (``inspect ping`` alone is
    answered by a worker that cannot run anything)."""
    if "celery" not in ctx.services:
        return Verdict("celery", "task round trip", WARN, "no celery in this image",
                       "set deploymentSettings.loonSourceLocation to a Loon checkout")
    script = (". /opt/loon/server/loon-server.env; cd /tmp; "
              'export PYTHONPATH="$LOON_SERVER_DIR" LOON_DJANGO_PROJECT; '
              'exec /opt/loon/server/venv/bin/python -c "$1" "$2"')
    code, out = await exec_in(ctx, ["bash", "-c", script, "round-trip", _CELERY_ROUND_TRIP,
                                    str(CELERY_ROUND_TRIP_TIMEOUT)])
    last = (out.strip().splitlines() or [""])[-1]
    if code != 0 or not last.startswith("ok "):
        raise CheckFailed(f"no task came back from a worker: {last[:300]}",
                          "see celery.log; the worker needs Redis (the broker and result "
                          "backend) and the database")
    return f"celery.accumulate sent through Redis, its result back in {last[3:]} s"


# Loon's upload path, as its client takes it: django-s3-file-field's initialize, a PUT of the
# part to the presigned URL (straight to the object store), complete (the store assembles the
# object), finalize (the server sees it), the object read back through nginx's /data/ (where
# the client reads experiment files); then the probe object is deleted through Django's
# default storage. Runs in the server's venv with the deployment's settings; prints one JSON
# line {"ok": bool, "step": ..., "detail": ...}.
_S3_ROUND_TRIP = r"""
import json, os, ssl, sys, urllib.error, urllib.request, uuid
base, host, field = sys.argv[1:4]
nginx_tls = ssl.create_default_context()
nginx_tls.check_hostname = False
nginx_tls.verify_mode = ssl.CERT_NONE
store_tls = ssl.create_default_context(cafile=os.environ.get("LOON_S3_CA_BUNDLE") or None)
if os.environ.get("LOON_S3_TLS_VERIFY", "true") == "false":
    store_tls.check_hostname = False
    store_tls.verify_mode = ssl.CERT_NONE
step = "start"
def done(ok, detail):
    print(json.dumps({"ok": ok, "step": step, "detail": str(detail)[:400]}))
    sys.exit(0)
def call(url, body, ctype, method="POST", to_server=True):
    headers = {"Content-Type": ctype}
    if to_server:
        headers["Host"] = host
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    ctx = nginx_tls if to_server else store_tls
    try:
        with urllib.request.urlopen(req, timeout=20, context=ctx) as r:
            return r.status, dict(r.headers), r.read(65536)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(65536)
def api(name, payload):
    status, _, body = call(f"{base}/api/s3-upload/{name}/", json.dumps(payload).encode(),
                           "application/json")
    if status != 200:
        text = " ".join(body[:200].decode("utf-8", "replace").split())
        done(False, f"{name} answered HTTP {status}"
                    + (f" ({text})" if text and not text.startswith("<") else ""))
    return json.loads(body)
data = f"loon doctor probe {uuid.uuid4()}".encode()
try:
    step = "upload-initialize"
    init = api("upload-initialize", {"field_id": field, "file_name": "loon-doctor-probe.txt",
                                     "file_size": len(data), "content_type": "text/plain"})
    step = "PUT to the presigned URL"
    part = init["parts"][0]
    status, headers, body = call(part["upload_url"], data, "application/octet-stream", "PUT",
                                 to_server=False)
    etag = {k.lower(): v for k, v in headers.items()}.get("etag")
    if status != 200 or not etag:
        done(False, f"the store answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
    step = "upload-complete"
    comp = api("upload-complete", {"upload_signature": init["upload_signature"],
                                   "upload_id": init["upload_id"],
                                   "parts": [{"part_number": 1, "size": len(data), "etag": etag}]})
    step = "completing at the store"
    status, _, body = call(comp["complete_url"], comp["body"].encode(), "application/xml",
                           to_server=False)
    if status != 200 or b"<Error>" in body:
        done(False, f"the store answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
    step = "finalize"
    api("finalize", {"upload_signature": init["upload_signature"]})
    step = "reading it back through nginx's /data/"
    status, _, body = call(f"{base}/data/{init['object_key']}", None, "text/plain", "GET")
    if status != 200 or body != data:
        done(False, f"/data/{init['object_key']} answered HTTP {status} (Loon's client reads "
                    "experiment files there: the bucket must let anyone read its objects)")
    step = "removing the probe object"
    import django
    django.setup()
    from django.core.files.storage import default_storage
    default_storage.delete(init["object_key"])
except Exception as exc:
    done(False, f"{type(exc).__name__}: {exc}")
done(True, f"{len(data)} bytes as {init['object_key']}")
"""
LOON_UPLOAD_FIELD = "api.LoonUpload.blob"  # Loon's S3FileField (api/models.py upstream)


async def s3_round_trip(ctx: Context) -> str | Verdict:
    """A presigned upload through Loon's server to the object store (its upload path): a
    store that does not answer, refuses the keys or lacks the bucket fails here."""
    name = ("uploads", "presigned round trip")
    if ctx.config.generalSettings.environment != "production":
        return Verdict(*name, SKIP, "local environment: uploads are the local data mount")
    if "server" not in ctx.services:
        return Verdict(*name, SKIP, "no server in this image")
    ext = ctx.config.external_store
    if ext is None and "minio" not in ctx.services:
        return Verdict(*name, SKIP, "no object store (MinIO is not in this image): uploads "
                       "are unavailable (see minio)")
    store = (f"the external store {ext.endpointUrl} (bucket {ext.media_bucket})" if ext
             else "MinIO in the image")
    port = _port(ctx, ctx.https)
    scheme = "https" if ctx.https else "http"
    script = (". /opt/loon/server/loon-server.env; cd \"$LOON_SERVER_DIR\"; "
              'export PYTHONPATH="/opt/loon/python:$LOON_SERVER_DIR" LOON_DJANGO_PROJECT '
              "DJANGO_SETTINGS_MODULE=loon_deployment_settings; "
              'exec /opt/loon/server/venv/bin/python -c "$1" "$2" "$3" "$4"')
    code, out = await exec_in(ctx, ["bash", "-c", script, "s3-round-trip", _S3_ROUND_TRIP,
                                    f"{scheme}://127.0.0.1:{port}", ctx.host,
                                    LOON_UPLOAD_FIELD])
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"ok": False, "step": "start", "detail": out.strip()[-300:]}
    if code != 0 or not result.get("ok"):
        found = None
        if str(result.get("step")) in ("upload-initialize", "upload-complete", "finalize"):
            c, log = await exec_in(ctx, ["tail", "-c", "262144", SERVER_LOG])
            tb = last_traceback(log, "/api/s3-upload/") if c == 0 else None
            found = tb.splitlines()[-1] if tb else None
        more = f"; server.log's last error: {found}" if found else ""
        raise CheckFailed(
            f"a presigned upload through Loon's server to {store} failed at "
            f"{result.get('step')}: {result.get('detail')}{more}",
            "the store must answer at minioSettings.endpointUrl from the container, hold the "
            "bucket, accept the keys for writing and let anyone read objects "
            "(docs/real-loon.md); see server.log")
    return (f"{result.get('detail')} through /api/s3-upload/ to {store}, read back at "
            "/data/, then deleted")


async def duckdb_query(ctx: Context) -> str:
    probe = ("import json,urllib.request;r=urllib.request.urlopen(urllib.request.Request("
             "'http://127.0.0.1:3000/',json.dumps({'type':'json','sql':'SELECT 42 AS x'})"
             ".encode(),{'Content-Type':'application/json'}),timeout=10);print(r.read().decode())")
    code, out = await exec_in(ctx, ["python3", "-c", probe])
    if code != 0 or json.loads(out.strip().splitlines()[-1] or "null") != [{"x": 42}]:
        raise CheckFailed(f"SELECT 42 answered {out.strip()[-200:]!r}", "see duckdb.log")
    return "SELECT 42 -> 42"


def _mounted_at(ctx: Context, directory: str) -> str | None:
    """Where the running container mounts the host directory ``directory``."""
    for m in ctx.info.mounts:
        if m.type == "bind" and m.source.rstrip("/") == directory:
            return m.destination
    return None


async def free_on_engine(ctx: Context, directory: str) -> int:
    """Free bytes of a volume directory on the engine's machine: ``df`` on its mount point
    inside the running container (the file system is the host's, seen through the bind).

    :raises CheckFailed: when the container does not mount it or ``df`` cannot tell.
    """
    target = _mounted_at(ctx, directory)
    if target is None:
        raise CheckFailed(f"the container does not mount {directory}",
                          "restart the deployment so that it mounts the configured directory")
    code, out = await exec_in(ctx, ["df", "-Pk", target])
    fields = out.strip().splitlines()[-1].split() if out.strip() else []
    if code != 0 or len(fields) < 4 or not fields[3].isdigit():
        raise CheckFailed(f"df in the container could not measure {target}: "
                          f"{out.strip()[-200:]!r}", "the image needs a df command (coreutils "
                          "or busybox) for this check with a remote engine")
    return int(fields[3]) * 1024


async def free_space(ctx: Context) -> str:
    """Free space where the data is: on this machine with a local engine, on the engine's
    machine (through the running container) with a remote one."""
    from loon_supervisor.engine.endpoint import resolve_endpoint

    engine = resolve_endpoint()
    low, seen = [], []
    for where, directory in ctx.config.volume_dirs():
        try:
            free = (await free_on_engine(ctx, directory) if engine.remote
                    else shutil.disk_usage(directory).free)
        except (OSError, CheckFailed) as exc:
            low.append(f"{where}: {exc}")
            continue
        seen.append(f"{Path(directory).name} {free / 2**30:.1f} GiB")
        if free < MIN_FREE_BYTES:
            low.append(f"{where} ({directory}) has {free / 2**20:.0f} MiB free")
    if low:
        raise CheckFailed("; ".join(low), "free space on that file system (MariaDB and "
                          "uploads need at least 1 GiB)")
    place = f" on the engine's machine ({engine.describe()})" if engine.remote else ""
    return ", ".join(seen) + " free" + place


async def host_logs(ctx: Context) -> str | Verdict:
    """The host logs' disk usage against deploymentSettings.logMaxMegabytes (WARN from
    80 %: sessions being written are never pruned, so only an operator can bound them)."""
    from loon_supervisor.paths import logs_dir
    from loon_supervisor.sinks import retention

    d = ctx.config.deploymentSettings
    limits = retention.Limits(d.logSessionsKept, d.logMaxMegabytes << 20)
    use = await anyio.to_thread.run_sync(retention.measure, logs_dir(), build_files_dir(),
                                         limits)
    if (warning := use.warning()) is not None:
        return Verdict("host logs", "disk usage", WARN, use.summary(), warning)
    return use.summary()


async def env_matches_config(ctx: Context) -> str:
    cfg = ctx.config
    key = secret_key(build_files_dir(), cfg.deploymentSettings.containerName)
    expected = environment(cfg, key, minio_in_image="minio" in ctx.services)
    try:
        on_disk = read_env_file(ctx.env_path)
    except OSError as exc:
        raise CheckFailed(f"cannot read {ctx.env_path}: {exc}",
                          "run python3 build.py -e to write it") from None
    differ = sorted(n for n in expected if on_disk.get(n) != expected[n])
    stale = sorted(n for n in expected if n in ctx.container_env
                   and ctx.container_env[n] != expected[n] and n not in differ)
    if differ:
        raise CheckFailed(f"{ctx.env_path.name} differs from config.json in: {', '.join(differ)}",
                          "run python3 build.py -e (or up) to rewrite it from config.json")
    if stale:
        shown = [n if n not in SECRET_NAMES else f"{n} (secret)" for n in stale]
        raise CheckFailed(f"the running container has old values of: {', '.join(shown)}",
                          "restart the deployment (python3 build.py -D, then up)")
    return f"{len(expected)} variables match, in the file and in the container"


CHECKS: list[tuple[str, str, Check]] = [
    ("engine", "version", engine_version),
    ("mysql", "login sees database", mariadb_login),
    ("redis", "PING", redis_ping),
    ("minio", "health and buckets", minio_health),
    ("uploads", "presigned round trip", s3_round_trip),
    ("nginx", "answers /", nginx_root),
    ("nginx", "https certificate", nginx_certificate),
    ("client", "built in", client_built),
    ("server", "name check route", django_api),
    ("celery", "task round trip", celery_ping),
    ("duckdb", "query", duckdb_query),
    ("volumes", "free space", free_space),
    ("env file", "matches config", env_matches_config),
    ("host logs", "disk usage", host_logs),
]
