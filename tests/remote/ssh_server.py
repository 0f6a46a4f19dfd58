"""Debian's openssh-server on 127.0.0.1:<free port> with keys made by the test.

The authorized key carries ``environment="DOCKER_HOST=unix://<private engine>"`` (with
``PermitUserEnvironment DOCKER_HOST``), so the ``docker system dial-stdio`` that aiodocker runs
over ssh reaches the test's private engine, never the shared one.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.engine_helpers import wait_until
from tests.remote.tls_engine import free_port


class SshServer:
    def __init__(self, engine_host: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ls", dir="/tmp"))
        self.port = free_port()
        self.home = self.base / "home"
        self.proc: subprocess.Popen[bytes] | None = None
        ssh = self.home / ".ssh"
        ssh.mkdir(parents=True, mode=0o700)
        for key in (self.base / "host_key", ssh / "id_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True)
        client_pub = (ssh / "id_ed25519.pub").read_text().strip()
        (self.base / "authorized_keys").write_text(
            f'environment="DOCKER_HOST={engine_host}" {client_pub}\n')
        host_pub = (self.base / "host_key.pub").read_text().split()
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (self.base / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1",
            f"HostKey {self.base / 'host_key'}",
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}",
            f"PidFile {self.base / 'sshd.pid'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitUserEnvironment DOCKER_HOST", "AcceptEnv none", "LogLevel VERBOSE", ""]))

    @property
    def docker_host(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        with open(self.base / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f",
                                          str(self.base / "sshd_config")],
                                         stdout=log, stderr=log, start_new_session=True)
        wait_until(lambda: "Server listening" in (self.base / "sshd.log").read_text(),
                   timeout=20)

    def session_pids(self) -> list[int]:
        """The sshd children serving client connections (one per ssh connection)."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in self.session_pids():
                subprocess.run(["kill", "-9", str(pid)], check=False)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        shutil.rmtree(self.base, ignore_errors=True)
