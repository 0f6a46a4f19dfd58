"""Shared pieces of the benchmark suite: process/engine CPU, images, deployments, inotify.

The suite reuses the test helpers (``tests.images.write_context``, ``tests.engine_helpers``)
so every benchmark drives the real product exactly as the engine tests do: ``build.py`` as a
subprocess with ``LOON_PROJECT_ROOT`` pointing at a temp dir.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import select
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.engine_helpers import Deployment, make_deployment  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_DIR = "/var/log/loon"
SERVICES = [f"s{i}" for i in range(8)]


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- CPU and memory

def proc_cpu(pid: int) -> float:
    """CPU seconds (user+system, all threads) of one live process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


def peak_until_exit(pid: int, out: dict, interval: float = 0.005) -> None:
    """The largest VmHWM of ``pid`` seen until it is gone (a zombie shows none: skipped).

    The process's own peak: ``wait4``'s ru_maxrss is not, because exec hands the forked
    copy's high-water mark on, so a child forked from a large bench process reports the
    bench's RSS (the capped teardown read 181 MiB that way for a ~70 MiB supervisor)."""
    while True:
        try:
            hwm = proc_rss_mb(pid)[1]
        except OSError:
            return
        if hwm > 0:
            out["hwm"] = max(out.get("hwm", 0.0), hwm)
        elif out:
            return
        time.sleep(interval)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def engine_pids(cid: str) -> list[int]:
    """dockerd (the one on /var/run/docker.sock), containerd, and this container's shim."""
    pids: list[int] = []
    try:
        pids.append(int(Path("/var/run/docker.pid").read_text().strip()))
    except (OSError, ValueError):
        pass
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        comm = _comm(int(p.name))
        if comm == "containerd" or (comm.startswith("containerd-shim")
                                    and f"-id {cid}" in _cmdline(int(p.name))):
            pids.append(int(p.name))
    return pids


def container_cpu(cid: str) -> float:
    """CPU seconds used by every process in the container (cgroup v1 cpuacct, else v2)."""
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
                 f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage"):
        if os.path.exists(path):
            return int(Path(path).read_text()) / 1e9
    for path in (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat",
                 f"/sys/fs/cgroup/docker/{cid}/cpu.stat"):
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
    return float("nan")


@dataclass
class CpuMeter:
    """Engine (dockerd + containerd + shim) and in-container CPU over a window."""

    cid: str
    pids: list[int]
    engine0: float = 0.0
    container0: float = 0.0

    @classmethod
    def start(cls, cid: str) -> CpuMeter:
        m = cls(cid, engine_pids(cid))
        m.engine0, m.container0 = m._engine(), container_cpu(cid)
        return m

    def _engine(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                total += proc_cpu(pid)
            except OSError:
                pass
        return total

    def stop(self) -> tuple[float, float]:
        return self._engine() - self.engine0, container_cpu(self.cid) - self.container0


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def other_containers() -> int:
    out = subprocess.run(["docker", "ps", "-q"], capture_output=True, text=True).stdout
    return len(out.split())


# ---------------------------------------------------------------- statistics

def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(sorted_xs: list[float], p: float) -> float:
    if not sorted_xs:
        return float("nan")
    k = min(len(sorted_xs) - 1, max(0, round(p / 100 * (len(sorted_xs) - 1))))
    return sorted_xs[k]


# ---------------------------------------------------------------- machine

def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError):
        pass
    server = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    driver = subprocess.run(["docker", "info", "--format", "{{.Driver}}"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "host": platform.node(), "cpu": f"{model} x{os.cpu_count()}", "memory": mem,
        "kernel": platform.release(), "python": platform.python_version(),
        "docker": f"engine {server}, {driver}",
    }


# ---------------------------------------------------------------- images and deployments

PERL_FILES = {
    "/usr/bin/perl": "usr/bin/perl",
    "/lib/x86_64-linux-gnu/libm.so.6": "lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libcrypt.so.1": "lib/x86_64-linux-gnu/libcrypt.so.1",
}

# One line every PERIOD seconds on an absolute schedule, each carrying its write time in
# microseconds since the epoch (gettimeofday, syscall 96 on x86_64: no modules needed, so
# the bare perl binary in a FROM-scratch image runs it). On TERM: a last "bye" line, unless
# started with IGNORE (a service that only dies by SIGKILL at the stop timeout).
WRITER_PL = r"""
$| = 1;
my ($name, $period, $mode) = @ARGV;
my $stop = 0;
if (($mode // "") eq "IGNORE") { $SIG{TERM} = "IGNORE"; } else { $SIG{TERM} = sub { $stop = 1; }; }
sub now_us { my $b = "\0" x 16; syscall(96, $b, 0); my ($s, $us) = unpack("q q", $b); return $s * 1000000 + $us; }
my $step = int($period * 1000000);
my $next = now_us();
my $i = 0;
while (!$stop) {
    $i++;
    my $t = now_us();
    print "$name $i $t\n";
    $next += $step;
    my $d = ($next - now_us()) / 1e6;
    select(undef, undef, undef, $d) if $d > 0;
}
print "bye $name $i\n";
exit 0;
"""

STATUS_SH = "".join(f'echo "{s} RUNNING"\n' for s in SERVICES)


def add_perl(d: Deployment) -> None:
    """Put the host's perl (and its two extra libraries) into the image's context."""
    gnu = d.root / "image" / "gnu"
    for src, dst in PERL_FILES.items():
        target = gnu / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(src).resolve(), target)


# The exec-stream parts (throughput, steady, sweep, teardown) follow through exec streams on
# purpose: their targets compare our exec followers with the docker CLI's on the same engine
# path. The default on a local engine (logSource auto) is the host-directory fast path, which
# bench/fastpath.py measures against its own targets.
EXEC = "exec"


def use_source(d: Deployment, kind: str) -> None:
    """Set deploymentSettings.logSource (auto | exec | hostdir) in the deployment's config."""
    cfg = json.loads(d.config.read_text())
    cfg.setdefault("deploymentSettings", {})["logSource"] = kind
    d.config.write_text(json.dumps(cfg, indent=2))


def check_source(d: Deployment, kind: str) -> None:
    """The figures must describe the source they are labelled with."""
    got = state_of(d).get("log_source")
    if got != kind:
        raise RuntimeError(f"{d.name} follows through {got!r}, the benchmark expected {kind!r}")


def writer_deployment(tmp: Path, period: float = 0.01, *, stop_timeout: int = 10,
                      stubborn: tuple[str, ...] = (), source: str = EXEC) -> Deployment:
    """8 services, each a perl writer of timestamped numbered lines every ``period`` s."""
    services = {s: f"exec perl /app/writer.pl {s} {period}"
                   + (" IGNORE" if s in stubborn else "") for s in SERVICES}
    d = make_deployment(tmp, services, stop_timeout=stop_timeout,
                        status_command="sh /app/status.sh",
                        extra_files={"writer.pl": WRITER_PL, "status.sh": STATUS_SH})
    add_perl(d)
    use_source(d, source)
    return d


def quiet_deployment(tmp: Path, source: str = EXEC) -> Deployment:
    services = {s: f'echo "{s} started"; exec sleep 1000000' for s in SERVICES}
    d = make_deployment(tmp, services, stop_timeout=10, status_command="sh /app/status.sh",
                        extra_files={"status.sh": STATUS_SH})
    use_source(d, source)
    return d


def state_of(d: Deployment) -> dict:
    return json.loads((d.project / ".build-files" / f"state.{d.name}.json").read_text())


def cid_of(name: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", "{{.Id}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def remove_image(tag: str) -> None:
    """Bounded: on a wedged shared engine ``docker rmi`` can hang; the tag stays, the suite
    goes on."""
    try:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        say(f"docker rmi {tag} did not answer within 30 s; left in place")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def out_log_has(d: Deployment, text: str) -> bool:
    out = d.logs / "latest" / "out.log"
    return out.exists() and text in out.read_text(errors="replace")


def start_foreground(d: Deployment) -> subprocess.Popen[str]:
    """``build.py`` in the foreground (the supervisor itself), once every stream is attached."""
    proc = d.start()
    wait_for(lambda: out_log_has(d, "Loon is up") or proc.poll() is not None, 600,
             "the deployment to come up")
    if proc.poll() is not None:
        raise RuntimeError(f"build.py exited {proc.returncode}: "
                           f"{proc.stdout.read() if proc.stdout else ''}")
    return proc


# ---------------------------------------------------------------- inotify

IN_MODIFY = 0x2
IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")


class Inotify:
    """Minimal inotify on one directory (ctypes, Linux only): names of modified files."""

    def __init__(self, directory: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = self._libc.inotify_add_watch(self.fd, str(directory).encode(),
                                          IN_MODIFY | IN_CREATE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def wait(self, timeout: float) -> set[str]:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return set()
        names: set[str] = set()
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return names
        i = 0
        while i + _EVENT.size <= len(data):
            _, _, _, length = _EVENT.unpack_from(data, i)
            raw = data[i + _EVENT.size:i + _EVENT.size + length]
            names.add(raw.rstrip(b"\0").decode(errors="replace"))
            i += _EVENT.size + length
        return names

    def close(self) -> None:
        os.close(self.fd)


def cleanup(d: Deployment, timeout: float = 15) -> None:
    """``d.cleanup()`` bounded in time: a request the engine never answers (seen on a shared
    engine while another user's container was paused) must not hang the whole suite. On
    timeout the container is removed with the CLI, by its exact name, and the run goes on."""
    import threading

    t = threading.Thread(target=d.cleanup, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        say(f"cleanup of {d.name} did not finish within {timeout:.0f} s; removing it by name")
        subprocess.run(["docker", "rm", "-f", d.name], capture_output=True, timeout=60)
