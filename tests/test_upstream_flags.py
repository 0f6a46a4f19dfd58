"""Upstream's newer build.py flags (-o, -s, --prepare-dev, -i,
--experiment-visibility-control), the client's build-time variables, an honest env file from
-e, and NFS-backed data volumes (issue 25)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from rich.console import Console

from loon_supervisor.config import load_config
from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine.containers import _config
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.errors import ConfigError
from loon_supervisor.sinks.build_progress import BuildProgress
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.spec.build_inputs import gather
from loon_supervisor.spec.envfile import read_env_file
from loon_supervisor.spec.loon import container_spec
from loon_supervisor.spec.nfs import nfs_volume_name
from loon_supervisor.spec.prepare import prepare
from tests.conftest import ROOT, base_config, write_config

sys.path.insert(0, str(ROOT))
import build  # noqa: E402

C = build.ROOT / "config.json"
UP = {"config_file": C, "env_file": ".env", "verbose": False, "detached": False,
      "replace": False}
CLIENT_VARS = ("VITE_SERVER_URL", "VITE_USE_HTTP", "VITE_ENVIRONMENT",
               "VITE_EXPERIMENT_VISIBILITY_CONTROL")


def run_build(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("LOON_") and not k.endswith(("SETTINGS_DATABASEPASSWORD",))}
    environ["LOON_PROJECT_ROOT"] = str(tmp / "p")
    environ.update(env)
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=tmp,
                          env=environ, capture_output=True, text=True, timeout=60)


def env_file(tmp: Path) -> dict[str, str]:
    return read_env_file(tmp / "p" / ".build-files" / ".env")


# ---------------------------------------------------------------- flags -> verbs

@pytest.mark.parametrize("argv,expected", [
    (["-s"], ("up", {**UP, "progress": False})),
    (["-vds"], ("up", {**UP, "verbose": True, "detached": True, "progress": False})),
    (["--disable-spinner"], ("up", {**UP, "progress": False})),
    (["--prepare-dev"], ("up", {**UP, "prepare_dev": True})),
    (["-e", "--prepare-dev"], ("validate", {"config_file": C, "env_file": ".env",
                                            "prepare_dev": True})),
    (["-eoi"], ("validate", {"config_file": C, "env_file": ".env"})),
    (["-i", "--experiment-visibility-control"], ("up", UP)),  # through the environment
])
def test_new_flags_map_onto_the_verbs(argv: list[str], expected: tuple[str, dict]) -> None:
    assert build.plan(build.parser().parse_args(argv)) == expected


def test_verbs_take_the_new_arguments() -> None:
    import importlib
    import inspect

    for verb, kwargs in [("up", {**UP, "progress": False, "prepare_dev": True}),
                         ("validate", {"config_file": C, "env_file": ".env",
                                       "prepare_dev": True})]:
        inspect.signature(importlib.import_module(
            f"loon_supervisor.verbs.{verb}").run).bind(build.options(verb, kwargs))


@pytest.mark.parametrize("argv,named", [
    (["-D", "-o"], "-o"), (["-D", "-s"], "-s"), (["-D", "--prepare-dev"], "--prepare-dev"),
    (["-D", "--experiment-visibility-control"], "--experiment-visibility-control"),
    (["-es"], "-s"),
])
def test_flags_that_cannot_combine_are_usage_errors(tmp_path: Path, argv: list[str],
                                                    named: str) -> None:
    r = run_build(argv, tmp_path)
    assert r.returncode == 2 and f"combined with {named}:" in r.stderr, r.stderr


def test_help_lists_the_new_flags(tmp_path: Path) -> None:
    out = run_build(["--help"], tmp_path).stdout
    for needle in ("-o, --overwrite", "-s, --disable-spinner", "--prepare-dev",
                   "-i, --use-did", "--experiment-visibility-control"):
        assert needle in out


# ---------------------------------------------------------------- -o / --overwrite

def test_overwrite_reads_upstreams_names_and_writes_no_config_copy(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    upstream = {"MYSQLSETTINGS_DATABASEPASSWORD": "from-env-9f3",
                "GENERALSETTINGS_BASEURL": "loon.example.org",
                "DEPLOYMENTSETTINGS_STOPTIMEOUT": "45"}
    r = run_build(["-e", "-o", "--config-file", str(config)], tmp_path, **upstream)
    assert r.returncode == 0, r.stderr
    env = env_file(tmp_path)
    assert env["DATABASE_PASSWORD"] == "from-env-9f3"
    assert env["ALLOWED_HOST"] == "loon.example.org"
    assert "-o: MYSQLSETTINGS_DATABASEPASSWORD overrides mySqlSettings.databasePassword" \
        in r.stdout
    assert "from-env-9f3" not in r.stdout + r.stderr  # names, never values
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "p"]  # no .temp
    # without -o upstream's names are ignored, as upstream ignores them
    r = run_build(["-e", "--config-file", str(config)], tmp_path, **upstream)
    assert r.returncode == 0 and env_file(tmp_path)["DATABASE_PASSWORD"] == "user_pass"


def test_overwrite_values_are_typed_and_checked_like_loon_overrides(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    r = run_build(["-eo", "--config-file", str(config)], tmp_path,
                  GENERALSETTINGS_USEHTTP="maybe")
    assert r.returncode == 2 and "LOON_GENERALSETTINGS__USEHTTP" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_build(["-eo", "--config-file", str(config)], tmp_path,
                  MYSQLSETTINGS_DATABASEPASSWORD="a", LOON_MYSQLSETTINGS__DATABASEPASSWORD="b")
    assert r.returncode == 2 and "MYSQLSETTINGS_DATABASEPASSWORD: sets " \
        "mySqlSettings.databasePassword like LOON_MYSQLSETTINGS__DATABASEPASSWORD" in r.stderr
    r = run_build(["-eo", "--config-file", str(config)], tmp_path)
    assert r.returncode == 0 and "-o: no variables to overwrite" in r.stdout


# ---------------------------------------------------------------- the client's variables

def test_env_file_and_build_args_carry_the_clients_variables(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    r = run_build(["-e", "--config-file", str(config)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert {k: env_file(tmp_path)[k] for k in CLIENT_VARS} == {
        "VITE_SERVER_URL": "localhost/data", "VITE_USE_HTTP": "true",
        "VITE_ENVIRONMENT": "production", "VITE_EXPERIMENT_VISIBILITY_CONTROL": "false"}
    r = run_build(["-e", "--experiment-visibility-control", "--config-file", str(config)],
                  tmp_path)
    assert r.returncode == 0, r.stderr
    assert env_file(tmp_path)["VITE_EXPERIMENT_VISIBILITY_CONTROL"] == "true"


@pytest.mark.anyio
async def test_the_image_build_gets_every_client_variable(tmp_path: Path) -> None:
    data = base_config(tmp_path, minioSourceUrl=None)
    data["generalSettings"].update(useHttp=False, baseUrl="loon.example.org:8443",
                                   experimentVisibilityControl=True)
    data["nginxSettings"] = {"sourceVolumeLocation": "/etc/ssl", "certFileLocation": "a.crt",
                             "keyFileLocation": "a.key"}
    cfg = LoonConfig.model_validate(data)  # the model only: no certificate files needed
    inputs = await gather(cfg, tmp_path, tmp_path / "cache", ["mysql"], lambda _: None)
    assert {k: inputs.build_args[k] for k in CLIENT_VARS} == {
        "VITE_SERVER_URL": "loon.example.org:8443/data", "VITE_USE_HTTP": "false",
        "VITE_ENVIRONMENT": "production", "VITE_EXPERIMENT_VISIBILITY_CONTROL": "true"}
    for dockerfile in ("docker/Dockerfile", "docker-local/Dockerfile"):
        text = (ROOT / dockerfile).read_text()
        for name in CLIENT_VARS:
            assert f"ARG {name}=" in text, (dockerfile, name)
    client_sh = (ROOT / "docker-common/build/client.sh").read_text()
    assert "export " + " ".join(("VITE_ENVIRONMENT", "VITE_SERVER_URL", "VITE_USE_HTTP",
                                 "VITE_EXPERIMENT_VISIBILITY_CONTROL")) in client_sh


# ---------------------------------------------------------------- --prepare-dev

def test_prepare_dev_writes_the_clients_env_file(tmp_path: Path) -> None:
    checkout = tmp_path / "loon"
    (checkout / "apps" / "client").mkdir(parents=True)
    data = base_config(tmp_path, loonSourceLocation="loon")
    data["generalSettings"]["baseUrl"] = "localhost:8080"
    config = write_config(tmp_path / "config.json", data)
    r = run_build(["-e", "--prepare-dev", "--experiment-visibility-control", "--config-file",
                   str(config)], tmp_path)
    assert r.returncode == 0, r.stderr
    written = checkout / "apps" / "client" / ".env"
    assert written.read_text() == ("VITE_SERVER_URL=localhost:8080/data\nVITE_USE_HTTP=true\n"
                                   "VITE_ENVIRONMENT=production\n"
                                   "VITE_EXPERIMENT_VISIBILITY_CONTROL=true\n")
    assert f"wrote {written}" in r.stdout and "yarn run dev" in r.stdout


def test_prepare_dev_without_a_checkout_says_what_to_set(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    r = run_build(["-e", "--prepare-dev", "--config-file", str(config)], tmp_path)
    assert r.returncode == 2 and "loonSourceLocation" in r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------- -e tells the truth

def test_validate_says_minio_disabled_when_it_is_known_absent(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", base_config(tmp_path, minioSourceUrl=None))
    r = run_build(["-e", "--config-file", str(config)], tmp_path)
    assert r.returncode == 0, r.stderr
    env = env_file(tmp_path)
    assert env["MINIO_ENABLED"] == "false"
    assert env["MINIO_STORAGE_ACCESS_KEY"] == env["MINIO_STORAGE_SECRET_KEY"] == ""
    assert "minioadmin" not in (tmp_path / "p" / ".build-files" / ".env").read_text()
    assert "MINIO_ENABLED=false" in r.stdout
    # a MinIO URL: not known absent before the build (up corrects it if the fetch fails)
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    assert run_build(["-e", "--config-file", str(config)], tmp_path).returncode == 0
    assert env_file(tmp_path)["MINIO_ENABLED"] == "true"


# ---------------------------------------------------------------- -s / --disable-spinner

def test_disabled_spinner_prints_steps_as_lines_and_draws_no_bar(tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    events = EventLog(tmp_path / "out.log")
    try:
        with BuildProgress(Reporter(events, console), "loon:1", None, plain=True) as shown:
            shown.step("Step 1/2 : FROM scratch")
            shown.step("Step 2/2 : RUN true")
            shown.done()
    finally:
        events.close()
    drawn = screen.getvalue()
    assert "build progress: step 1/2" in drawn and "build progress: done" in drawn
    assert "building loon:1" not in drawn and "\r" not in drawn  # no bar was drawn


@pytest.mark.engine
def test_disable_spinner_in_a_real_build(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": "echo up; sleep 3600"})
    r = d.run("-ds")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "build progress: step 1/" in r.stdout and "build progress: done in" in r.stdout


# ---------------------------------------------------------------- -i / --use-did

def test_use_did_makes_the_engines_paths_the_hosts() -> None:
    plain = resolve_endpoint({"HOME": "/nonexistent"})
    did = resolve_endpoint({"HOME": "/nonexistent", "LOON_USE_DID": "1"})
    assert not plain.remote and not did.socket_remote and did.remote
    assert "from a container" in did.describe()


def test_use_did_checks_no_volume_path_on_this_file_system(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("here a file, on the host a directory\n")
    data = base_config(tmp_path)
    data["mySqlSettings"]["sourceVolumeLocation"] = str(tmp_path / "a-file")
    config = write_config(tmp_path / "config.json", data)
    r = run_build(["-e", "--config-file", str(config)], tmp_path)
    assert r.returncode == 2 and "mySqlSettings.sourceVolumeLocation" in r.stderr
    r = run_build(["-e", "-i", "--config-file", str(config)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "is a directory on the engine's machine" in r.stdout


@pytest.mark.engine
def test_use_did_deploys_with_the_engine_making_the_directories(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": "echo alpha-up; sleep 3600"})
    r = d.run("-d", "-i")
    assert r.returncode == 0, r.stdout + r.stderr
    out = (d.session() / "out.log").read_text()
    assert "from a container: host paths (-i)" in out
    # Here the engine does see this machine's directory: the fast path is kept after its check
    assert "log source chosen: hostdir" in out
    assert (d.root / "data" / "mysql-data").is_dir()  # made by the engine (remote_paths)


# ---------------------------------------------------------------- NFS-backed data

def nfs_config(tmp_path: Path, **minio: Any) -> Path:
    data = base_config(tmp_path, containerName="loon-nfs-test", minioSourceUrl=None)
    data["minioSettings"].update({"volumeType": "nfs", "nfsVersion": 4,
                                  "ipAddress": "127.0.0.1", "sourceVolumeLocation": "/export/loon",
                                  "userGroupPermissions": "1000:1000", **minio})
    return write_config(tmp_path / "config.json", data)


@pytest.mark.parametrize("change,message", [
    ({"nfsVersion": None}, "volumeType nfs needs nfsVersion"),
    ({"nfsVersion": 5}, "'5' is not an NFS version"),
    ({"ipAddress": "nfs server"}, "is not an IP address"),
    ({"userGroupPermissions": "minio"}, "is not uid:gid"),
    ({"volumeType": "bind"}, "apply to volumeType nfs only"),
])
def test_nfs_settings_are_validated(tmp_path: Path, change: dict[str, Any],
                                    message: str) -> None:
    data = json.loads(nfs_config(tmp_path).read_text())
    data["minioSettings"].update(change)
    data["minioSettings"] = {k: v for k, v in data["minioSettings"].items() if v is not None}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "config.json", data))
    assert message in str(err.value)


def test_nfs_with_swarm_is_refused(tmp_path: Path) -> None:
    data = json.loads(nfs_config(tmp_path).read_text())
    data["deploymentSettings"]["orchestrator"] = "swarm"
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "config.json", data))
    assert 'minioSettings.volumeType: "nfs" is not supported' in str(err.value)


def nfs_spec(tmp_path: Path, project: Path) -> dict[str, Any]:
    prepared = prepare(nfs_config(tmp_path))
    contract = ImageContract(image="debian:bookworm-slim", log_backups=0, services=("minio",),
                             log_dir="/var/log/loon", status_command=None, run_services_env=None)
    spec = container_spec(prepared, contract, remote=False)
    spec.name = f"loon-nfs-{uuid.uuid4().hex[:8]}"
    return _config(spec)


def test_nfs_volume_is_a_local_volume_with_nfs_options(tmp_path: Path, project: Path) -> None:
    cfg = nfs_spec(tmp_path, project)
    host = cfg["HostConfig"]
    assert not any(b.endswith((":/var/lib/minio", ":/var/lib/loon/media")) for b in host["Binds"])
    [mount] = host["Mounts"]
    assert mount["Type"] == "volume" and mount["Target"] == "/var/lib/loon/media"  # no MinIO
    assert mount["VolumeOptions"]["DriverConfig"] == {"Name": "local", "Options": {
        "type": "nfs", "o": "addr=127.0.0.1,vers=4,soft", "device": ":/export/loon"}}
    assert "MINIO_RUN_AS=" in "".join(cfg["Env"])
    # nothing of this machine's file system is involved: no directory was made
    assert not (tmp_path / "export").exists()
    # another server, version or path is another volume (the engine would reuse a name)
    cfg_m = load_config(nfs_config(tmp_path)).minioSettings
    other = load_config(nfs_config(tmp_path, nfsVersion="4.1")).minioSettings
    assert cfg_m is not None and other is not None
    assert nfs_volume_name("d", cfg_m) != nfs_volume_name("d", other)


@pytest.mark.engine
@pytest.mark.anyio
async def test_the_engine_creates_the_nfs_volume_as_specified(tmp_path: Path, project: Path,
                                                              engine: None) -> None:
    """No NFS server runs here: the engine is checked to receive and keep the volume spec
    (created with the container; the mount itself happens only when it starts)."""
    cfg = nfs_spec(tmp_path, project)
    volume = cfg["HostConfig"]["Mounts"][0]["Source"]
    name = f"loon-nfs-{uuid.uuid4().hex[:8]}"
    cfg["Cmd"] = ["/bin/true"]  # never started: no NFS server to mount from
    async with aiodocker.Docker() as docker:
        container = await docker.containers.create(cfg, name=name)
        try:
            info = await docker.volumes.get(volume)
            data = await info.show()
            assert data["Driver"] == "local"
            assert data["Options"] == {"type": "nfs", "o": "addr=127.0.0.1,vers=4,soft",
                                       "device": ":/export/loon"}
        finally:
            await container.delete(force=True)
            await (await docker.volumes.get(volume)).delete()


@pytest.mark.engine
def test_use_did_from_a_container_with_the_hosts_socket(deploy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """build.py -i really inside a container: the project is at another path there than on
    the host, the volume directory is a host path the container cannot see, and the image
    directory is the container's. The deployment runs, the engine makes the host directory,
    and the service logs come through exec after the fast path's check."""
    d = deploy({"alpha": "echo alpha-up; sleep 3600"})
    inside = tmp_path / "in"  # tmp_path as the runner sees it (absent on the host)
    data = json.loads(d.config.read_text())
    host_mysql = tmp_path / "host-only" / "mysql"
    data["mySqlSettings"]["sourceVolumeLocation"] = str(host_mysql)
    data["deploymentSettings"]["imageDirectory"] = str(inside / "image")
    (tmp_path / "config-did.json").write_text(json.dumps(data))
    runner = f"loon-did-runner-{uuid.uuid4().hex[:8]}"
    real_python = Path(sys.executable).resolve()
    mounts = {"/usr": "/usr", sys.base_prefix: sys.base_prefix, sys.prefix: sys.prefix,
              str(ROOT): str(ROOT), str(real_python.parent.parent): str(real_python.parent.parent)}
    args = ["docker", "run", "-d", "--name", runner, "--network", "none",
            "-v", "/var/run/docker.sock:/var/run/docker.sock",
            "-v", f"{tmp_path}:{inside}",
            *[a for src, dst in mounts.items() for a in ("-v", f"{src}:{dst}:ro")],
            "-e", f"LOON_PROJECT_ROOT={inside / 'project'}", "-e", "HOME=/root",
            "debian:bookworm-slim", "sleep", "infinity"]
    started = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    build_py = ["docker", "exec", runner, sys.executable, str(ROOT / "build.py"),
                "--config-file", str(inside / "config-did.json")]
    try:
        r = subprocess.run([*build_py, "-i", "-d"], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        out = (d.session() / "out.log").read_text()
        assert "from a container: host paths (-i)" in out
        assert "log source: falling back to exec" in out
        assert host_mysql.is_dir()  # made on the host by the engine, not by build.py
        from tests.engine_helpers import wait_until
        wait_until(lambda: b"alpha-up" in (d.session() / "alpha.log").read_bytes()
                   if (d.session() / "alpha.log").exists() else False)
        r = subprocess.run([*build_py, "-D"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", runner], capture_output=True)


@pytest.mark.engine
def test_prepare_dev_with_a_deploy_writes_the_clients_env_file(deploy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": "echo up; sleep 3600"})
    client = tmp_path / "loon" / "apps" / "client"
    client.mkdir(parents=True)
    data = json.loads(d.config.read_text())
    data["deploymentSettings"]["loonSourceLocation"] = str(tmp_path / "loon")
    d.config.write_text(json.dumps(data))
    r = d.run("-d", "--prepare-dev")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (client / ".env").read_text().startswith("VITE_SERVER_URL=localhost/data\n")
    assert "yarn run dev" in r.stdout
    assert f"wrote {client / '.env'}" in (d.session() / "out.log").read_text()
