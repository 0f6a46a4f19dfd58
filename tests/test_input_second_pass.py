"""Issue 29: the second bad-input pass. Every case failed on main 5e29567; each ends in one
sentence on stderr and the documented exit code, never a traceback, never a file written
outside the project's .build-files/. Engine-free (engine verbs point at a missing socket)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import base_config, examples, write_config
from tests.forked_loon import FORKED, needs_real_process

NO_ENGINE = "unix:///nonexistent/docker.sock"


MEMORY_CAP = 1 << 30


def _cap_memory() -> None:
    """1 GiB of address space: a read without bound ends in MemoryError, not a swapped host."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def loon(*args: str, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real front end in a subprocess, with no LOON_* from the caller and no engine."""
    base = {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("LOON_", "DOCKER_"))}
    base.update(LOON_PROJECT_ROOT=str(cwd / "project"), DOCKER_HOST=NO_ENGINE)
    base.update(env or {})
    if needs_real_process(base):
        done = subprocess.run([sys.executable, "-m", "loon_supervisor", *args], cwd=cwd,
                              env=base, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_cap_memory)
    else:  # the same front end in its own process, forked from one that has imported it
        done = FORKED.run(list(args), cwd=cwd, env=base, timeout=timeout,
                          memory_cap=MEMORY_CAP)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def config(tmp_path: Path, project: Path) -> Path:
    return write_config(project / "config.json", base_config(tmp_path / "data"))


# --- 2. deployment names ----------------------------------------------------------------

ESCAPES = ["../../../escaped/pwn", "a/b", "..", "a", "-x", "x" * 300, "a b"]


@pytest.mark.parametrize("verb", ["down", "status", "attach", "ps", "logs"])
@pytest.mark.parametrize("name", ESCAPES)
def test_name_flag_checked_before_any_path(tmp_path: Path, config: Path, verb: str,
                                           name: str) -> None:
    before = files_under(tmp_path)
    done = loon(verb, "--name", name, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--name" in done.stderr and "container name" in done.stderr or \
        "characters long" in done.stderr
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("name", ["../../../escaped/pwn", "a/b", "a"])
def test_name_from_config_or_override_checked(tmp_path: Path, project: Path, name: str
                                              ) -> None:
    write_config(project / "config.json",
                 base_config(tmp_path / "data", containerName=name))
    before = files_under(tmp_path)
    done = loon("down", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "deploymentSettings.containerName" in done.stderr
    assert loon("validate", cwd=tmp_path).returncode == 2
    write_config(project / "config.json", base_config(tmp_path / "data"))
    done = loon("status", cwd=tmp_path,
                env={"LOON_DEPLOYMENTSETTINGS__CONTAINERNAME": name})
    assert done.returncode == 2, done.stderr
    assert "LOON_DEPLOYMENTSETTINGS__CONTAINERNAME" in done.stderr
    assert files_under(tmp_path) == before


def test_long_container_name_refused_at_validation(tmp_path: Path, project: Path) -> None:
    write_config(project / "config.json",
                 base_config(tmp_path / "data", containerName="x" * 300))
    done = loon("validate", cwd=tmp_path)
    assert done.returncode == 2
    assert "deploymentSettings.containerName: is longer than 128 characters" in done.stderr


def test_build_file_refuses_escapes(project: Path) -> None:
    from loon_supervisor.paths import EscapesBuildFiles, build_file

    assert build_file("state.x.json") == project / ".build-files" / "state.x.json"
    for bad in ("..", "../x", "a/b", "", "a\0b"):
        with pytest.raises(EscapesBuildFiles):
            build_file(bad)
    # every name-derived path under .build-files/ goes through it
    from loon_supervisor.config.validation_cache import _stamp
    from loon_supervisor.lifecycle.restart_marker import marker_path
    from loon_supervisor.spec.envfile import _secret_key_path
    from loon_supervisor.streams.sources.choice import host_log_dir

    build = project / ".build-files"
    for make in (lambda: _secret_key_path(build, "../x"), lambda: _stamp(build, "a/b"),
                 lambda: host_log_dir(build, ".."), lambda: marker_path("../../x")):
        with pytest.raises(EscapesBuildFiles):
            make()


# --- 5. endless inputs -------------------------------------------------------------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize("verb", ["validate", "config", "down", "status", "ps", "attach",
                                  "logs"])
def test_config_from_a_device_refused(tmp_path: Path, project: Path, device: str,
                                      verb: str) -> None:
    done = loon(verb, "-c", device, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{device}" in done.stderr and "is a device, not a file" in done.stderr


def test_config_too_large_refused(tmp_path: Path, project: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * (2 * 1024 * 1024) + b"}")
    done = loon("validate", "-c", str(big), cwd=tmp_path)
    assert done.returncode == 2
    assert "is 2.0 MiB, more than the 1.0 MiB" in done.stderr


def test_fifo_without_writer_times_out(tmp_path: Path, project: Path) -> None:
    """A FIFO nobody opens for writing blocked until Ctrl+C; now 10 s of silence end it
    (1 s here: tests/hooks/sitecustomize.py shortens the product's ``bounded.PIPE_IDLE``)."""
    from loon_supervisor import bounded

    assert bounded.PIPE_IDLE == 10.0
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    hooks = str(Path(__file__).resolve().parent / "hooks")
    done = loon("validate", "-c", str(fifo), cwd=tmp_path, timeout=40,
                env={"PYTHONPATH": hooks, "LOON_TEST_PIPE_IDLE": "1"})
    assert done.returncode == 2
    assert "sent no data for 1 s" in done.stderr


def test_pipe_with_a_writer_still_read(tmp_path: Path, project: Path) -> None:
    import json

    (tmp_path / "c.json").write_text(json.dumps(base_config(tmp_path / "data")))
    done = subprocess.run(["bash", "-c", f"{sys.executable} -m loon_supervisor validate -c "
                           f"<(sleep 0.5; cat {tmp_path / 'c.json'})"], cwd=tmp_path,
                          env={**os.environ, "LOON_PROJECT_ROOT": str(project)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_huge_certificate_refused(tmp_path: Path, project: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from loon_supervisor.verbs import validate
    from tests.certs import make_pair

    tls = tmp_path / "tls"
    make_pair(tls / "server.crt", tls / "server.key")
    (tls / "big.crt").write_bytes(b"x" * (5 * 1024 * 1024))
    data = base_config(tmp_path / "data")
    data["generalSettings"]["useHttp"] = False
    data["nginxSettings"] = {"sourceVolumeLocation": str(tls), "targetVolumeLocation": "/ssl",
                             "certFileLocation": "big.crt", "keyFileLocation": "server.key"}
    assert validate.run(validate.ValidateOptions(write_config(project / "config.json", data))) == 2
    assert "big.crt is 5.0 MiB, more than the 4.0 MiB" in capsys.readouterr().err


# --- 1. the validation cache -------------------------------------------------------------

def _tls_config(tmp_path: Path, project: Path) -> Path:
    from tests.certs import make_pair

    tls = tmp_path / "tls"
    make_pair(tls / "good.crt", tls / "good.key")
    make_pair(tls / "copy.crt", tls / "copy.key")
    data = base_config(tmp_path / "data")
    data["generalSettings"]["useHttp"] = False
    data["nginxSettings"] = {"sourceVolumeLocation": str(tls), "targetVolumeLocation": "/ssl",
                             "certFileLocation": "good.crt", "keyFileLocation": "good.key"}
    return write_config(project / "config.json", data)


def test_cache_rechecks_the_overridden_certificate(tmp_path: Path, project: Path) -> None:
    from tests.certs import make_pair

    _tls_config(tmp_path, project)
    env = {"LOON_NGINXSETTINGS__CERTFILELOCATION": "copy.crt",
           "LOON_NGINXSETTINGS__KEYFILELOCATION": "copy.key"}
    assert loon("validate", cwd=tmp_path, env=env).returncode == 0
    make_pair(tmp_path / "tls" / "copy.crt", tmp_path / "tls" / "copy.key", days=-1)
    done = loon("validate", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stdout
    assert "copy.crt" in done.stderr and "expired" in done.stderr


def test_cache_never_hides_the_misspelt_variable_warning(tmp_path: Path, config: Path) -> None:
    env = {"LOON_MYSQLSETTINGS__DATABASEPASWORD": "x"}
    for _ in range(2):
        done = loon("validate", cwd=tmp_path, env=env)
        assert done.returncode == 0
        assert "LOON_MYSQLSETTINGS__DATABASEPASWORD matches no setting" in \
            done.stdout + done.stderr


def test_cache_follows_the_engine_endpoint(tmp_path: Path, config: Path) -> None:
    local = loon("validate", cwd=tmp_path, env={"DOCKER_HOST": "unix:///run/docker.sock"})
    assert local.returncode == 0 and "up creates it" in local.stdout
    remote = loon("validate", cwd=tmp_path, env={"DOCKER_HOST": "ssh://nobody@127.0.0.1"})
    assert remote.returncode == 0
    assert "on the engine's machine" in remote.stdout and "up creates it" not in remote.stdout


# --- 3. writes that would destroy --------------------------------------------------------

@pytest.mark.parametrize("victim", ["config.json", "build.py", "README.md"])
def test_schema_output_never_overwrites_another_file(tmp_path: Path, config: Path,
                                                     victim: str) -> None:
    target = config.parent / victim
    if not target.exists():
        target.write_text("operator's own file\n")
    before = target.read_bytes()
    done = loon("schema", "-o", str(target), cwd=tmp_path)
    assert done.returncode == 2
    assert "is not a config schema" in done.stderr and "--force" in done.stderr
    assert target.read_bytes() == before
    assert loon("schema", "-o", str(target), "--force", cwd=tmp_path).returncode == 0
    assert b'"LoonConfig"' in target.read_bytes()


def test_schema_output_replaces_its_own_schema(tmp_path: Path, project: Path) -> None:
    target = project / "config.schema.json"
    target.write_text('{"title": "LoonConfig", "properties": {}}')
    assert loon("schema", "-o", str(target), cwd=tmp_path).returncode == 0
    assert "generalSettings" in target.read_text()
    fresh = project / "new.schema.json"
    assert loon("schema", "-o", str(fresh), cwd=tmp_path).returncode == 0


# --- 6. overrides parsed as the field's type ---------------------------------------------

@pytest.mark.parametrize("var,value,expect", [
    ("STOPTIMEOUT", "--5", "'--5' is not a whole number"),
    ("STOPTIMEOUT", "²", "'²' is not a whole number"),
    ("STOPTIMEOUT", "٣٠", "is not a whole number"),
    ("STOPTIMEOUT", "9999999999", "less than or equal to 600"),
    ("STOPTIMEOUT", "9" * 5000, "has more than 18 digits"),
    ("STOPTIMEOUT", "-1", "greater than or equal to 0"),
    ("CRASHLOOPWINDOW", "abc", "'abc' is not a number"),
    ("CRASHLOOPWINDOW", "nan", "'nan' is not a number"),
    ("CRASHLOOPWINDOW", "1e999", "less than or equal to 86400"),
    ("CRASHLOOPWINDOW", "0", "greater than 0"),
])
def test_bad_numeric_override(tmp_path: Path, config: Path, var: str, value: str,
                              expect: str) -> None:
    for verb in ("validate", "status"):
        done = loon(verb, cwd=tmp_path, env={f"LOON_DEPLOYMENTSETTINGS__{var}": value})
        if verb == "status":  # reads the name leniently: a bad number is not its business
            assert done.returncode in (1, 2, 3)
            continue
        assert done.returncode == 2, done.stderr
        assert expect in done.stderr and f"LOON_DEPLOYMENTSETTINGS__{var}" in done.stderr


@pytest.mark.parametrize("var,value,shown", [
    ("CRASHLOOPWINDOW", "60", "60"), ("CRASHLOOPWINDOW", "1.5", "1.5"),
    ("STOPTIMEOUT", "+45", "45"), ("STOPTIMEOUT", " 7 ", "7"),
])
def test_good_numeric_override(tmp_path: Path, config: Path, var: str, value: str,
                               shown: str) -> None:
    done = loon("config", cwd=tmp_path, env={f"LOON_DEPLOYMENTSETTINGS__{var}": value})
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout


def test_huge_number_in_the_file_names_its_field(tmp_path: Path, project: Path) -> None:
    text = json.dumps(base_config(tmp_path / "data", stopTimeout=1)).replace(
        '"stopTimeout": 1', '"stopTimeout": ' + "9" * 5000)
    (project / "config.json").write_text(text)
    done = loon("validate", cwd=tmp_path)
    assert done.returncode == 2
    assert "deploymentSettings.stopTimeout: is a number with 5000 digits" in done.stderr
    assert "set_int_max_str_digits" not in done.stderr


# --- 4. non-root operators ---------------------------------------------------------------

@dataclass(frozen=True)
class Operator:
    """An unprivileged user made for these tests (the issue: not a stock account)."""

    name: str
    uid: int
    gid: int

    def drop(self) -> None:
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)


@pytest.fixture(scope="module")
def operator() -> Iterator[Operator]:
    import pwd
    import uuid

    if os.geteuid() != 0:
        pytest.skip("needs root to create and become another user")
    name = f"loon-op-{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                    "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        yield Operator(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def _interpreter_for(user: Operator) -> str:
    """A Python of this version that the unprivileged user may execute (the test venv's
    interpreter often lives under /root)."""
    import shutil

    for candidate in filter(None, (os.path.realpath(sys.executable), shutil.which(
            f"python{sys.version_info[0]}.{sys.version_info[1]}",
            path="/usr/local/bin:/usr/bin:/bin"))):
        try:
            said = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                  capture_output=True, text=True,
                                  preexec_fn=user.drop).stdout.strip()
        except OSError:  # not executable by that user
            continue
        if said == str(tuple(sys.version_info[:2])):
            return candidate
    raise AssertionError(f"no python{sys.version_info[:2]} executable by {user.name}; "
                         "install one (apt-get install python3)")


def as_user(user: Operator, *args: str, project: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    import sysconfig

    from tests.conftest import ROOT

    base = {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("LOON_", "DOCKER_"))}
    base.update(HOME="/tmp", DOCKER_HOST=NO_ENGINE, LOON_PROJECT_ROOT=str(project),
                PYTHONPATH=f"{ROOT}:{sysconfig.get_path('purelib')}")
    base.update(env or {})
    done = subprocess.run([_interpreter_for(user), "-m", "loon_supervisor", *args],
                          cwd=project, env=base, capture_output=True, text=True, timeout=60,
                          preexec_fn=user.drop)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


@pytest.fixture
def shared_project(tmp_path: Path, operator: Operator) -> Iterator[Path]:
    """A root-owned project that the operator can read but not write (outside pytest's 0700
    temporary root)."""
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="loon-i29-"))
    top.chmod(0o755)
    project = top / "project"
    project.mkdir()
    (top / "data").mkdir()
    shutil.chown(top / "data", operator.uid)  # the volumes are fine: only the clone is not
    write_config(project / "config.json", base_config(top / "data"))
    (project / "config.json").chmod(0o644)
    yield project
    shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
@pytest.mark.parametrize("verb", ["down", "attach", "validate", "up", "dev"])
def test_non_root_on_a_root_owned_clone(shared_project: Path, operator: Operator,
                                        verb: str) -> None:
    before = files_under(shared_project.parent)
    done = as_user(operator, verb, project=shared_project)
    assert done.returncode == 2, done.stderr
    assert f"{shared_project}/.build-files: permission denied for user {operator.name}" \
        in done.stderr
    assert files_under(shared_project.parent) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_non_root_volume_under_root(shared_project: Path, operator: Operator) -> None:
    import shutil

    data = base_config(shared_project.parent / "data")
    data["mySqlSettings"]["sourceVolumeLocation"] = "/root/loon-i29-mysql"
    write_config(shared_project / "config.json", data)
    shutil.chown(shared_project, operator.uid)
    done = as_user(operator, "validate", project=shared_project)
    assert done.returncode == 2
    assert "/root/loon-i29-mysql cannot be reached by this user (/root denies access)" in \
        done.stderr


def test_logs_latest_a_directory(tmp_path: Path) -> None:
    from loon_supervisor.sinks.session import LatestIsNotALink, new_session_dir

    (tmp_path / "logs" / "latest").mkdir(parents=True)
    with pytest.raises(LatestIsNotALink, match="is a directory, not the link"):
        new_session_dir(tmp_path / "logs")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["latest"]


def test_os_errors_become_one_sentence() -> None:
    from loon_supervisor.errors import from_os_error, operator_error

    denied = operator_error(PermissionError(13, "Permission denied", "/x/.build-files"))
    assert denied.exit_code == 2 and "/x/.build-files: permission denied for user" in str(denied)
    full = operator_error(BaseExceptionGroup("g", [OSError(28, "No space left", "/x/l")]))
    assert full.exit_code == 1 and "no space left" in str(full)
    assert "is a directory where a file belongs" in str(
        from_os_error(IsADirectoryError(21, "Is a directory", "/x/logs/latest")))


# --- 8. no state change before the engine answers ----------------------------------------

@pytest.mark.parametrize("verb", ["up", "dev"])
def test_unreachable_engine_changes_nothing(tmp_path: Path, project: Path, verb: str) -> None:
    data = base_config(tmp_path / "data", networkMode="host")
    write_config(project / "config.json", data)
    (project / "logs").mkdir()
    (project / "logs" / "logs_old").mkdir()
    (project / "logs" / "latest").symlink_to("logs_old")
    for _ in range(2):
        done = loon(verb, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Docker engine" in done.stderr
    assert not (tmp_path / "data").exists()
    assert sorted(p.name for p in (project / "logs").iterdir()) == ["latest", "logs_old"]
    assert os.readlink(project / "logs" / "latest") == "logs_old"


# --- 7. other tracebacks and wrong answers -----------------------------------------------

def test_lone_surrogate_refused(tmp_path: Path, project: Path) -> None:
    text = json.dumps(base_config(tmp_path / "data")).replace('"user_pass"', '"\\ud800"')
    (project / "config.json").write_text(text)
    for verb in ("validate", "up", "config"):
        done = loon(verb, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "mySqlSettings.databasePassword: holds an unpaired surrogate" in done.stderr


def test_override_not_utf8_refused(tmp_path: Path, config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("LOON_", "DOCKER_"))}
    env.update(LOON_PROJECT_ROOT=str(config.parent), DOCKER_HOST=NO_ENGINE)
    envb = {k.encode(): v.encode() for k, v in env.items()}
    envb[b"LOON_MYSQLSETTINGS__DATABASEPASSWORD"] = b"\xff\xfe"
    done = subprocess.run([sys.executable, "-m", "loon_supervisor", "validate"], env=envb,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "LOON_MYSQLSETTINGS__DATABASEPASSWORD: is not valid UTF-8" in done.stderr


@pytest.mark.parametrize("value,expect", [
    ("localhost:²", "has port '²'"), ("localhost:٨٠", "has port '٨٠'"),
    ("loon_app.example", "no '_'"), ("[fe80::1%eth0]", "IPv6 zone"),
])
def test_base_url_django_refuses(tmp_path: Path, project: Path, value: str,
                                 expect: str) -> None:
    data = base_config(tmp_path / "data")
    data["generalSettings"]["baseUrl"] = value
    write_config(project / "config.json", data)
    done = loon("validate", cwd=tmp_path)
    assert done.returncode == 2 and expect in done.stderr


def test_utf16_without_bom(tmp_path: Path, project: Path) -> None:
    (project / "config.json").write_bytes(json.dumps(base_config(tmp_path)).encode("utf-16-le"))
    done = loon("validate", cwd=tmp_path)
    assert done.returncode == 2 and "looks like UTF-16" in done.stderr


def test_short_help_and_empty_context(tmp_path: Path, project: Path) -> None:
    done = loon("-h", cwd=tmp_path)
    assert done.returncode == 0 and "Usage" in done.stdout
    assert loon("validate", "-h", cwd=tmp_path).returncode == 0
    done = loon("--context", "", "ps", cwd=tmp_path)
    assert done.returncode == 2 and "--context needs a context name" in done.stderr


def test_env_file_dev_env_is_loon_devs(config: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    from loon_supervisor.verbs import validate

    assert validate.run(validate.ValidateOptions(config, "dev.env")) == 2
    assert "is a file this tool keeps for itself" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["-ed"], ["-ev"], ["-e", "--replace"]])
def test_build_py_refuses_ignored_flags(tmp_path: Path, flags: list[str]) -> None:
    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "build.py"), *flags],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "-e/--validate-build cannot be combined with" in done.stderr


def test_build_py_ctrl_c_without_traceback(tmp_path: Path) -> None:
    """SIGINT while build.py waits (here: reading a config from a pipe nobody writes)."""
    import signal
    import time

    from tests.conftest import ROOT

    fifo = tmp_path / "c.json"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "-e", "-c", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LOON_PROJECT_ROOT": str(tmp_path)})
    time.sleep(1.5)  # not an assertion on time: only lets it reach the read
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert proc.returncode == 130


# --- 11. loon logs costs what it shows ---------------------------------------------------

def _big_session(project: Path, tail: bytes, hole: int) -> Path:
    """A session file of ``hole`` bytes of history (a sparse run of lines' worth of NULs
    after a first line) ending in ``tail``: large to read, cheap to make."""
    session = project / "logs" / "logs_2026-01-01_00-00-00"
    session.mkdir(parents=True)
    (session / "out.log").write_text("2026-01-01 00:00:00 started\n")
    with open(session / "mysql.log", "wb") as fh:
        fh.write(b"first line\n")
        fh.seek(hole)
        fh.write(tail)
    return session


def test_logs_tail_reads_from_the_end(tmp_path: Path, project: Path) -> None:
    """-n 3 on a 1.5 GB file under a 1 GiB address-space cap: reading it whole (the old
    way) cannot even allocate it; seeking back from the end needs one block."""
    _big_session(project, b"a\nb\nc\nd\n", 1536 * 1024 * 1024)
    done = loon("logs", "mysql", "-n", "3", "--no-log-prefix", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "b\nc\nd\n"


def test_logs_all_streams_in_blocks(tmp_path: Path, project: Path) -> None:
    """-n all of a 1.2 GB file (one long run of NULs, then lines) under the same 1 GiB cap:
    more than the cap, so only a block-wise copy gets through."""
    _big_session(project, b"\nlast\n", 1152 * 1024 * 1024)
    done = subprocess.run(
        f"{sys.executable} -m loon_supervisor logs mysql -n all --no-log-prefix | tail -c 6",
        shell=True, cwd=tmp_path, capture_output=True, timeout=300, preexec_fn=_cap_memory,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LOON_")},
             "LOON_PROJECT_ROOT": str(project)})
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    assert done.stdout == b"\nlast\n"


def test_logs_history_matches_splitting_the_whole_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Block-wise tail and copy give exactly the lines the whole-file split gave, for every
    n, with blocks far smaller than the lines (so every boundary case is crossed)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from loon_supervisor.verbs import logs

    monkeypatch.setattr(logs, "BLOCK", 5)

    @settings(max_examples=examples(300), deadline=None, derandomize=True)
    @given(data=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\n\n", b"xyz"]), max_size=30)
           .map(b"".join), n=st.one_of(st.none(), st.integers(0, 12)), follow=st.booleans())
    def check(data: bytes, n: int | None, follow: bool) -> None:
        path = tmp_path / "f.log"
        path.write_bytes(data)
        got: list[bytes] = []
        offset, held = logs._show_history(path, follow, n, got.append)
        cut = data.rfind(b"\n") + 1 if follow else len(data)
        lines = data[:cut].split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        want = lines if n is None else lines[max(0, len(lines) - n):] if n else []
        assert b"".join(got).splitlines() == want
        assert offset == len(data) and held == data[cut:]

    check()


def test_prefix_stream_equals_prefixing_the_whole_file() -> None:
    """`-n all` prefixes the file block by block as read (blocks cut anywhere, even inside a
    line, a UTF-8 character or a \\r\\n): the bytes written are exactly those of prefixing
    the whole file at once, for every line break str.splitlines knows and for bad bytes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from loon_supervisor.sinks.terminal import PrefixStream, prefixed_bytes

    pieces = st.sampled_from([b"a", b"bc", b"xyz", b"\x00", b"\n", b"\r", b"\r\n", b"\x0b",
                              b"\x0c", b"\x1c", b"\x1e", b"\xc2\x85", b"\xe2\x80\xa8",
                              b"\xe2\x80\xa9", b"\xc3\xa9", b"\xff", b"\xe2", b"\x80"])

    @settings(max_examples=examples(1500), deadline=None, derandomize=True)
    @given(data=st.lists(pieces, max_size=30).map(b"".join),
           cuts=st.lists(st.integers(0, 120), max_size=8),
           prefix=st.sampled_from([b"", b"web | ", b"\x1b[36mdb  | \x1b[0m"]))
    def check(data: bytes, cuts: list[int], prefix: bytes) -> None:
        out: list[bytes] = []
        stream = PrefixStream(prefix, lambda b: out.append(bytes(b)))
        last = 0
        for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
            stream.feed(data[last:cut])
            last = cut
        stream.close()
        assert b"".join(out) == prefixed_bytes(prefix, data)

    check()


def test_logs_all_keeps_a_line_longer_than_a_block_whole(tmp_path: Path, project: Path) -> None:
    """A 300 KiB line (over two read blocks) is shown as one prefixed line, as cat would:
    the block copy used to cut it into a line per block."""
    long_line = "x" * (300 * 1024)
    session = project / "logs" / "logs_2026-01-01_00-00-00"
    session.mkdir(parents=True)
    (session / "out.log").write_text("2026-01-01 00:00:00 started\n")
    (session / "mysql.log").write_text(f"first\n{long_line}\nlast")
    done = loon("logs", "mysql", "-n", "all", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"mysql | first\nmysql | {long_line}\nmysql | last\n"


# --- 9. accepted, then failing later ------------------------------------------------------

@pytest.mark.parametrize("section,key,value,expect", [
    ("deploymentSettings", "publishedPorts", {"²": 80}, "publishedPorts.²: is not a container"),
    ("deploymentSettings", "publishedPorts", {"99999": 80}, "publishedPorts.99999: is not"),
    ("deploymentSettings", "publishedPorts", {"80/xyz": 80}, "publishedPorts.80/xyz: is not"),
    ("deploymentSettings", "containerName", "a", "containerName: is not a valid container"),
    ("deploymentSettings", "imageDirectory", "/nonexistent", "/nonexistent is not a directory"),
    ("deploymentSettings", "loonSourceLocation", "", "loonSourceLocation: is empty"),
    ("deploymentSettings", "buildArgs", {"X": "a\nb"}, "buildArgs.X: holds a line break"),
    ("mySqlSettings", "databaseUser", "u" * 200, "MariaDB allows at most 80"),
])
def test_refused_at_validation(tmp_path: Path, project: Path, section: str, key: str,
                               value: object, expect: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from loon_supervisor.verbs import validate

    data = base_config(tmp_path / "data")
    data.setdefault(section, {})[key] = value
    assert validate.run(validate.ValidateOptions(write_config(project / "config.json", data))) == 2
    assert expect in capsys.readouterr().err


def test_still_accepted(tmp_path: Path, project: Path) -> None:
    from loon_supervisor.verbs import validate

    (project / "docker-x").mkdir()
    data = base_config(tmp_path / "data", publishedPorts={"80/tcp": 8080, "53/udp": 5353},
                       imageDirectory="docker-x", containerName="ab",
                       buildArgs={"X": "one line"})
    assert validate.run(validate.ValidateOptions(write_config(project / "config.json", data))) == 0


# --- 8b. which folder is a project --------------------------------------------------------

def test_project_dir_must_be_a_project(tmp_path: Path) -> None:
    stray = tmp_path / "stray"
    stray.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOON_")}
    done = subprocess.run([sys.executable, "-m", "loon_supervisor", "--project-dir",
                           str(stray), "validate"], cwd=tmp_path, env=base,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "is not a loon-supervisor project" in done.stderr
    assert sorted(stray.iterdir()) == []


def test_unrelated_config_json_above_is_passed_by(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from loon_supervisor import paths

    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    (tmp_path / "config.json").write_text('{"editor.fontSize": 12}')
    clone = tmp_path / "work" / "clone"
    (clone / "docs").mkdir(parents=True)
    (clone / "build.py").write_text("")
    assert paths.find_project(clone / "docs") == clone
    assert paths.find_project(tmp_path / "work") is None
    (tmp_path / "work" / "config.json").write_text('{"generalSettings": {,}')  # mid-edit
    assert paths.find_project(tmp_path / "work") == tmp_path / "work"


# --- 12. smaller --------------------------------------------------------------------------

def test_config_masks_build_args_and_url_credentials(tmp_path: Path, project: Path) -> None:
    data = base_config(tmp_path / "data", buildArgs={"NPM_TOKEN": "s3cr3t-token"},
                       minioSourceUrl="https://alice:pa55word@example.org/minio.tar.gz")
    write_config(project / "config.json", data)
    done = loon("config", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s3cr3t-token" not in done.stdout and "pa55word" not in done.stdout
    assert "alice" not in done.stdout and "https://**********@example.org" in done.stdout
    assert '"NPM_TOKEN": "**********"' in done.stdout


def test_gitignore_covers_pip_build_dir() -> None:
    from tests.conftest import ROOT

    done = subprocess.run(["git", "check-ignore", "-q", "build/lib/x.py"], cwd=ROOT)
    assert done.returncode == 0


def test_over_long_paths_are_problems_not_crashes(tmp_path: Path, project: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the override fuzzer: a 300-character component made is_dir raise."""
    from loon_supervisor.verbs import validate

    long = "/tmp/" + "x" * 300
    data = base_config(tmp_path / "data", imageDirectory=long, loonSourceLocation=long,
                       extraCaCertificate=long)
    assert validate.run(validate.ValidateOptions(write_config(project / "config.json", data))) == 2
    err = capsys.readouterr().err
    for key in ("imageDirectory", "loonSourceLocation", "extraCaCertificate"):
        assert f"deploymentSettings.{key}: " in err
    data = base_config(tmp_path / "data")
    data["mySqlSettings"]["sourceVolumeLocation"] = long
    assert validate.run(validate.ValidateOptions(write_config(project / "config.json", data))) == 2
    err = capsys.readouterr().err
    assert "mySqlSettings.sourceVolumeLocation: " in err and "File name too long" in err


# --- 10. loon dev says what runs -----------------------------------------------------------

def loon_site_prefix(env: dict[str, str]) -> str:
    """Loon's settings.py: ``SITE_PREFIX = 'http://'``, ``'https://'`` unless USE_HTTP."""
    return "http://" if env.get("USE_HTTP", "true").lower() in ("true", "1", "yes", "on") \
        else "https://"


def test_dev_env_agrees_with_the_image_about_minio() -> None:
    from loon_supervisor.verbs.dev import addresses, host_environment

    with_minio = host_environment({"MINIO_ENABLED": "true", "MINIO_STORAGE_ACCESS_KEY": "a",
                                   "MINIO_STORAGE_ENDPOINT": "127.0.0.1:9000"})
    assert with_minio["MINIO_STORAGE_ENDPOINT"] == "127.0.0.1:9000"
    # Loon's settings prepend SITE_PREFIX (from USE_HTTP) to both URLs: no scheme here,
    # and USE_HTTP=true because MinIO on 127.0.0.1:9000 speaks plain HTTP.
    assert with_minio["MINIO_STORAGE_MEDIA_URL"] == "127.0.0.1:9000/data"
    assert with_minio["MINIO_STORAGE_STATIC_URL"] == "127.0.0.1:9000/static"
    assert with_minio["USE_HTTP"] == "true"
    https_site = host_environment({"MINIO_ENABLED": "true", "USE_HTTP": "false"})
    assert loon_site_prefix(https_site) + https_site["MINIO_STORAGE_MEDIA_URL"] \
        == "http://127.0.0.1:9000/data"
    assert "MinIO 127.0.0.1:9000" in addresses(with_minio)
    without = host_environment({"MINIO_ENABLED": "false", "MINIO_STORAGE_ACCESS_KEY": "",
                                "MINIO_STORAGE_ENDPOINT": "127.0.0.1:9000"})
    assert without["MINIO_ENABLED"] == "false"
    assert not any(k.startswith("MINIO_STORAGE") for k in without)
    assert "MinIO" not in addresses(without)


def test_dev_env_rewritten_when_the_build_leaves_minio_out(tmp_path: Path, project: Path
                                                           ) -> None:
    """dev.env was written before the build and kept MINIO_ENABLED=true with an endpoint
    nothing serves; written from the aligned env it has none. (A real dev run, which writes
    it once after the build: tests/loon_images/test_dev.py::test_dev_says_what_runs.)"""
    from loon_supervisor.spec.envfile import read_env_file
    from loon_supervisor.spec.minio import align_env
    from loon_supervisor.spec.prepare import prepare
    from loon_supervisor.verbs.dev import write_dev_env

    write_config(project / "config.json", base_config(tmp_path / "data", networkMode="host"))
    prepared = prepare(project / "config.json", create_dirs=False)
    said: list[str] = []
    write_dev_env(prepared, said.append)
    dev_env = project / ".build-files" / "dev.env"
    assert read_env_file(dev_env)["MINIO_ENABLED"] == "true"
    assert align_env(prepared, {"mysql", "redis"}, said.append)
    write_dev_env(prepared, said.append)  # what up does after align_env now
    env = read_env_file(dev_env)
    assert env["MINIO_ENABLED"] == "false" and "MINIO_STORAGE_ENDPOINT" not in env
    assert "DEBUG=true" in said[0] and "DJANGO_ENV_FILE=" in said[0]
    assert "ln -s" not in said[0]


def test_closing_line_without_nginx_names_what_runs() -> None:
    from loon_supervisor.lifecycle.state import DeploymentState
    from loon_supervisor.verbs.up import up_line

    state = DeploymentState(name="ab", cid="c", session=Path("/s"), image="i",
                            services=("mysql", "redis"), log_dir="/l", status_command=None,
                            url="", stop_timeout=1)
    assert up_line(state).startswith("up: mysql, redis (no nginx")
    assert "http" not in up_line(state).split("(")[0]
    assert up_line(replace(state, url="http://localhost")) == "Loon is up: http://localhost"


def test_status_marks_services_dev_mode_does_not_run() -> None:
    from loon_supervisor.verbs.status import LEFT_OUT, left_out

    chosen = ("mysql", "redis", "duckdb")
    assert left_out("nginx", "unknown", chosen) == LEFT_OUT
    assert left_out("server", "STOPPED", chosen) == LEFT_OUT
    assert left_out("mysql", "STARTING", chosen) == "STARTING"
    assert left_out("nginx", "unknown", None) == "unknown"  # not our state: no claim


def test_env_file_read_back_bounded(tmp_path: Path) -> None:
    from loon_supervisor.bounded import UnboundedInput
    from loon_supervisor.spec.envfile import read_env_file

    (tmp_path / "ok.env").write_text("A='1'\nB=two\n")
    assert read_env_file(tmp_path / "ok.env") == {"A": "1", "B": "two"}
    with pytest.raises(UnboundedInput, match="is a device"):
        read_env_file(Path("/dev/zero"))
    (tmp_path / "big.env").write_bytes(b"A=" + b"x" * (2 * 1024 * 1024))
    with pytest.raises(UnboundedInput, match="more than the 1.0 MiB"):
        read_env_file(tmp_path / "big.env")
