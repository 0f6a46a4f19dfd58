"""A private single-node swarm on loopback, for the swarm tests and bench/swarm.py."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.engine_helpers import wait_until
from tests.remote.support import free_port


def wait_swarm_up(proc: subprocess.Popen[str], out_log: Path, timeout: float = 240) -> None:
    """Until a foreground swarm `up` (``proc``) says it is up; its output if it exits first."""
    def up() -> bool:
        if proc.poll() is not None:
            assert proc.stdout is not None
            raise AssertionError(f"build.py exited {proc.returncode}: {proc.stdout.read()}")
        return out_log.exists() and "Loon is up (swarm)" in out_log.read_text()
    wait_until(up, timeout=timeout)


class SwarmEngine:
    """A private dockerd (no live-restore: swarm refuses it) initialised as a swarm."""

    def __init__(self, base: Path, address: str = "127.0.0.1") -> None:
        self.base = base
        self.address = address  # its swarm address (a loopback one of its own per node)
        self.sock = base / "d.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.listen = ""

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True,
                              text=True)

    def start(self, init: bool = True) -> None:
        """The engine, initialised as a swarm's manager (or left alone, to :meth:`join`)."""
        self.base.mkdir(parents=True)
        self.launch()
        if not init:
            return
        self.listen = f"{self.address}:{free_port()}"
        done = self.docker("swarm", "init", "--advertise-addr", self.address,
                           "--listen-addr", self.listen)
        assert done.returncode == 0, done.stderr

    def stop_daemon(self) -> None:
        """The engine stops (its containers with it), as on a node that shuts down."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def launch(self) -> None:
        """Start (or start again) this engine's dockerd on its own directories."""
        b = self.base
        log = open(b / "dockerd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(b / "data"), "--exec-root", str(b / "exec"),
             "--pidfile", str(b / "docker.pid"), "-H", self.host,
             "--containerd-namespace", f"loonsw{b.name[-6:]}",
             "--containerd-plugins-namespace", f"loonsw{b.name[-6:]}p",
             "--iptables=false", "--ip6tables=false", "--bridge=none"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_until(lambda: self.docker("info").returncode == 0, timeout=60, interval=0.2)

    def join(self, manager: SwarmEngine) -> None:
        """This engine joins ``manager``'s swarm as a worker, on its own loopback address."""
        token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        self.listen = f"{self.address}:{free_port()}"
        done = self.docker("swarm", "join", "--token", token, "--advertise-addr", self.address,
                           "--listen-addr", self.listen, manager.listen)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: manager.docker("node", "ls", "--format", "{{.Status}}"
                                          ).stdout.split().count("Ready") == 2,
                   timeout=60, interval=0.5)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for svc in self.docker("service", "ls", "-q").stdout.split():
                self.docker("service", "rm", svc)
            self.docker("swarm", "leave", "--force")
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        # the swarm's network namespace stays mounted under the exec root
        subprocess.run(["sh", "-c", f"umount {self.base}/exec/netns/* 2>/dev/null; true"])
        subprocess.run(["rm", "-rf", str(self.base)], check=False)
