"""A private dockerd on tcp://127.0.0.1:<free port> with client-certificate TLS, for remote tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.engine_helpers import PrivateEngine, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> tuple[Path, Path]:
    """A CA, a server cert for IP:127.0.0.1 and a client cert; returns (server dir, client dir).

    A second, untrusted CA signs ``bad/cert.pem`` for the wrong-certificate test.
    """
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "badca"):
        _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN=loon-test-{ca}", "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", cwd=d)
    (d / "server.ext").write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage = clientAuth\n")
    for who, ca in (("server", "ca"), ("client", "ca"), ("bad", "badca")):
        _ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout",
             f"{who}-key.pem", "-out", f"{who}.csr", cwd=d)
        ext = "server.ext" if who == "server" else "client.ext"
        _ssl("x509", "-req", "-in", f"{who}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
             "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{who}-cert.pem", cwd=d)
    for who in ("client", "bad"):
        out = d / who
        out.mkdir(exist_ok=True)
        shutil.copy(d / "ca.pem", out / "ca.pem")
        shutil.copy(d / f"{who}-cert.pem", out / "cert.pem")
        shutil.copy(d / f"{who}-key.pem", out / "key.pem")
    return d, d / "client"


class TlsEngine(PrivateEngine):
    """PrivateEngine that also listens on tcp://127.0.0.1:<port> and demands client certs."""

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="lr", dir="/tmp")))
        self.port = free_port()
        self.certs, self.client = make_certs(self.base / "certs")

    @property
    def tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        c = self.certs
        return [*super().args(), "-H", self.tcp, "--tlsverify", "--tlscacert", str(c / "ca.pem"),
                "--tlscert", str(c / "server-cert.pem"), "--tlskey", str(c / "server-key.pem")]

    def start(self) -> None:
        """Like PrivateEngine.start, but in its own session so no terminal signal reaches it."""
        (self.base / "docker.pid").unlink(missing_ok=True)
        with open(self.base / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log,
                                         start_new_session=True)
        wait_until(self.answers, timeout=60, interval=0.2)

    def client_env(self, cert_dir: Path | None = None) -> dict[str, str]:
        return {"DOCKER_HOST": self.tcp, "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(cert_dir or self.client)}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)

    def destroy(self) -> None:
        """Everything on the engine, the engine, its netns mount and its files."""
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["sh", "-c", f"docker -H {self.host} rm -f -v "
                            f"$(docker -H {self.host} ps -aq) 2>/dev/null"], check=False)
        self.stop()
        subprocess.run(["umount", str(self.base / "exec" / "netns" / "default")],
                       capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
