"""A private single-node swarm on loopback, for the swarm tests and bench/swarm.py."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.engine_helpers import wait_until
from tests.remote.support import free_port


class SwarmEngine:
    """A private dockerd (no live-restore: swarm refuses it) initialised as a swarm."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "d.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True,
                              text=True)

    def start(self) -> None:
        b = self.base
        b.mkdir(parents=True)
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
        init = self.docker("swarm", "init", "--advertise-addr", "127.0.0.1",
                           "--listen-addr", f"127.0.0.1:{free_port()}")
        assert init.returncode == 0, init.stderr

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
