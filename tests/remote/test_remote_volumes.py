"""Volume directories with a remote engine: nothing about them is looked up on this machine,
and `loon doctor` measures their free space where they are (through the engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.config.rules import check_rules
from loon_supervisor.config.volumes import check_volume_paths
from loon_supervisor.doctor.checks import Context, free_on_engine, free_space
from loon_supervisor.doctor.runner import run_check
from loon_supervisor.engine.records import ContainerInfo
from tests.conftest import ROOT, base_config
from tests.images import busybox_path
from tests.remote.support import TlsEngine

REMOTE = "tcp://127.0.0.1:9"  # never contacted: validation does not talk to the engine


def _local_config(tmp_path: Path) -> dict[str, object]:
    data = base_config(tmp_path / "data")
    data["generalSettings"]["environment"] = "local"  # type: ignore[index]
    data["localDataSettings"] = {"sourceVolumeLocation": "/srv/experiments/on-the-server"}
    return data


def test_rules_look_up_nothing_on_this_machine_for_a_remote_engine(tmp_path: Path) -> None:
    data = _local_config(tmp_path)
    local = check_rules(data, tmp_path, remote=False)
    assert [p.path for p in local] == ["localDataSettings.sourceVolumeLocation"]
    assert check_rules(data, tmp_path, remote=True) == []


def test_volume_names_only_for_a_remote_engine(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A local symlink (to /etc here) says nothing about the engine's machine, nor does
    this machine's checkout; the names' own rules still hold."""
    link = tmp_path / "mysql"
    link.symlink_to("/etc")
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(tmp_path / "srv" / "clone"))
    dirs = [("mySqlSettings.sourceVolumeLocation", str(link)),
            ("minioSettings.sourceVolumeLocation", str(tmp_path / "srv"))]
    assert len(check_volume_paths(dirs, local=True)) >= 2  # /etc, and the checkout inside
    assert check_volume_paths(dirs, local=False) == []
    assert [p.path for p in check_volume_paths(
        [("mySqlSettings.sourceVolumeLocation", "/etc/mysql"),
         ("minioSettings.sourceVolumeLocation", "/srv/a"),
         ("localDataSettings.sourceVolumeLocation", "/srv/a/b")], local=False)] == [
        "mySqlSettings.sourceVolumeLocation", "localDataSettings.sourceVolumeLocation"]


def test_validate_with_a_remote_engine_accepts_a_data_dir_missing_here(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_local_config(tmp_path)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env.update(DOCKER_HOST=REMOTE, LOON_PROJECT_ROOT=str(tmp_path))
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "-e", "-c", str(config)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/srv/experiments/on-the-server (localDataSettings.sourceVolumeLocation) is a " \
           "directory on the engine's machine" in r.stdout
    env["DOCKER_HOST"] = "unix:///var/run/docker.sock"
    here = subprocess.run([sys.executable, str(ROOT / "build.py"), "-e", "-c", str(config)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert here.returncode == 2 and "is not an existing directory" in here.stdout + here.stderr


class _Df:
    """An engine whose exec answers like `df -Pk` (or fails)."""

    def __init__(self, code: int, out: bytes) -> None:
        self.code, self.out, self.cmds = code, out, []  # type: ignore[var-annotated]

    async def run_capture(self, cid: str, cmd: list[str], env: object = None
                          ) -> tuple[int, bytes]:
        self.cmds.append(cmd)
        return self.code, self.out


def _ctx(engine: object, tmp_path: Path, mounts: list[dict[str, str]]) -> Context:
    config = LoonConfig.model_validate(base_config(tmp_path / "data"))
    info = ContainerInfo.from_docker({"Mounts": mounts})
    return Context(engine, "cid", info, (), config,  # type: ignore[arg-type]
                   tmp_path / ".env")


@pytest.mark.anyio
async def test_doctor_measures_through_the_engine_when_it_is_remote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", REMOTE)
    mounts = [{"Type": "bind", "Source": str(tmp_path / "data" / d), "Destination": f"/v/{d}"}
              for d in ("mysql-data", "minio-data")]
    df = (b"Filesystem 1024-blocks Used Available Capacity Mounted on\n"
          b"/dev/vdb 104857600 1048576 52428800 2% /v\n")
    engine = _Df(0, df)
    v = await run_check(_ctx(engine, tmp_path, mounts), "volumes", "free space", free_space)
    assert v.result == "pass", v
    assert v.detail == ("mysql-data 50.0 GiB, minio-data 50.0 GiB free on the engine's "
                        f"machine ({REMOTE} (DOCKER_HOST, remote))")
    assert engine.cmds == [["df", "-Pk", "/v/mysql-data"], ["df", "-Pk", "/v/minio-data"]]
    low = _Df(0, df.replace(b"52428800", b"1024"))
    v = await run_check(_ctx(low, tmp_path, mounts), "volumes", "free space", free_space)
    assert v.result == "fail" and "has 1 MiB free" in v.detail
    v = await run_check(_ctx(_Df(0, df), tmp_path, mounts[:1]), "volumes", "free space",
                        free_space)
    assert v.result == "fail" and "does not mount" in v.detail
    v = await run_check(_ctx(_Df(127, b"sh: df: not found"), tmp_path, mounts), "volumes",
                        "free space", free_space)
    assert v.result == "fail" and "df in the container could not measure" in v.detail


@pytest.fixture
def tls_engine() -> Iterator[TlsEngine]:
    engine = TlsEngine(Path(f"/tmp/ltls-{uuid.uuid4().hex[:6]}"))
    try:
        engine.start()
        yield engine
    finally:
        engine.destroy()


@pytest.mark.engine
@pytest.mark.usefixtures("engine")
def test_free_space_through_a_real_remote_engine(tls_engine: TlsEngine, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A container on the TLS engine binds a directory; df through the engine's exec
    measures the same file system as statvfs here (the engine is on loopback)."""
    ctx_dir = tmp_path / "img"
    ctx_dir.mkdir()
    shutil.copy(busybox_path(), ctx_dir / "busybox")
    (ctx_dir / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", '
        '"/bin"]\nCMD ["sleep", "100000"]\n')
    tag = f"loon-test-df:{uuid.uuid4().hex[:6]}"
    assert tls_engine.docker("build", "-q", "-t", tag, str(ctx_dir)).returncode == 0
    data = tmp_path / "data" / "mysql-data"
    data.mkdir(parents=True)
    run = tls_engine.docker("run", "-d", "--network", "none", "-v", f"{data}:/var/lib/mysql",
                            tag)
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    for k, v in tls_engine.env().items():
        monkeypatch.setenv(k, v)

    async def measure() -> tuple[int, dict[str, object]]:
        from loon_supervisor.engine.client import open_engine

        async with open_engine() as engine:
            info = await engine.inspect(cid) or {}
            ctx = _ctx(engine, tmp_path, [])
            ctx.cid, ctx.info = cid, info
            return await free_on_engine(ctx, str(data)), info

    free, _ = anyio.run(measure, backend="asyncio")
    here = shutil.disk_usage(data).free
    assert abs(free - here) < max(here // 20, 64 << 20), (free, here)
