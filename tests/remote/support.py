"""Remote engines on loopback: a private dockerd behind client-certificate TLS, and an sshd
that reaches an engine with `docker system dial-stdio`, both made by the tests."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.engine_helpers import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str = "ca") -> None:
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN=loon test {name}", "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", cwd=d)


def sign(d: Path, ca: str, out: str, cn: str, ext: str) -> None:
    (d / f"{out}.ext").write_text(ext)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
            f"{out}-key.pem", "-out", f"{out}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{out}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", f"{out}.ext", "-out", f"{out}.pem",
            cwd=d)


def client_dir(src: Path, ca: str, name: str, dest: Path) -> Path:
    """A DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "ca.pem").write_bytes((src / f"{ca}.pem").read_bytes())
    (dest / "cert.pem").write_bytes((src / f"{name}.pem").read_bytes())
    (dest / "key.pem").write_bytes((src / f"{name}-key.pem").read_bytes())
    return dest


class TlsEngine:
    """A private dockerd on tcp://127.0.0.1:<port> that requires a client certificate."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.sock = base / "d.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        pki = base / "pki"
        make_ca(pki)
        sign(pki, "ca", "server", "127.0.0.1",
             "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        sign(pki, "ca", "client", "loon client", "extendedKeyUsage=clientAuth\n")
        make_ca(pki, "rogue")
        sign(pki, "rogue", "intruder", "intruder", "extendedKeyUsage=clientAuth\n")
        self.certs = client_dir(pki, "ca", "client", base / "client")
        self.wrong_certs = client_dir(pki, "ca", "intruder", base / "wrong")
        self.pki = pki

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def local(self) -> str:
        return f"unix://{self.sock}"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.url, "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(self.certs)}

    def start(self) -> None:
        b, p = self.base, self.pki
        log = open(b / "dockerd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(b / "data"), "--exec-root", str(b / "exec"),
             "--pidfile", str(b / "docker.pid"), "-H", self.local, "-H", self.url,
             "--tlsverify", "--tlscacert", str(p / "ca.pem"), "--tlscert", str(p / "server.pem"),
             "--tlskey", str(p / "server-key.pem"),
             "--containerd-namespace", f"loontls{b.name[-6:]}",
             "--containerd-plugins-namespace", f"loontls{b.name[-6:]}p",
             "--iptables=false", "--ip6tables=false", "--bridge=none"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_until(lambda: self.docker("info").returncode == 0, timeout=60, interval=0.2)

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", self.local, *args], capture_output=True,
                              text=True)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        # dockerd leaves its netns mount behind; without this the directory cannot go.
        subprocess.run(["umount", str(self.base / "exec" / "netns" / "default")],
                       capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(self.base)], check=False)


def write_context(home: Path, name: str, host: str, certs: Path | None) -> None:
    """A context in the docker CLI's store, as `docker context create` writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = home / ".docker" / "contexts" / "meta" / digest
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if certs is not None:
        tls = home / ".docker" / "contexts" / "tls" / digest / "docker"
        tls.mkdir(parents=True, exist_ok=True)
        for f in ("ca.pem", "cert.pem", "key.pem"):
            (tls / f).write_bytes((certs / f).read_bytes())


class SshServer:
    """Debian's sshd on 127.0.0.1:<port> with its own host key and one authorized key; the
    client side lives in a HOME of its own (config, identity, known_hosts)."""

    def __init__(self, base: Path, engine_host: str | None = None) -> None:
        """``engine_host``: the ssh session's DOCKER_HOST (authorized_keys ``environment=``),
        so ``docker system dial-stdio`` on the "server" reaches that engine."""
        self.base = base
        self.port = free_port()
        self.home = base / "home"
        ssh = self.home / ".ssh"
        ssh.mkdir(parents=True)
        os.chmod(ssh, 0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(base / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(ssh / "id_ed25519")], check=True)
        key_opts = f'environment="DOCKER_HOST={engine_host}" ' if engine_host else ""
        (base / "authorized_keys").write_text(key_opts + (ssh / "id_ed25519.pub").read_text())
        os.chmod(base / "authorized_keys", 0o600)
        host_pub = (base / "host_key.pub").read_text().split()
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (ssh / "config").write_text(
            f"Host 127.0.0.1\n  Port {self.port}\n  User root\n"
            f"  IdentityFile {ssh / 'id_ed25519'}\n  UserKnownHostsFile {ssh / 'known_hosts'}\n")
        (base / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
            f"AuthorizedKeysFile {base / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"PidFile {base / 'sshd.pid'}\nStrictModes no\nLogLevel ERROR\n"
            + ("PermitUserEnvironment DOCKER_HOST\n" if engine_host else ""))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)
        log = open(self.base / "sshd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f",
                                      str(self.base / "sshd_config")],
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(answers, timeout=30, interval=0.1)

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": "ssh://root@127.0.0.1", "HOME": str(self.home)}

    def sessions(self) -> list[int]:
        """The sshd processes serving connections (children of the listener)."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def drop_sessions(self) -> int:
        """Kill every process serving a connection: the per-connection monitor and its
        privilege-separated child, which holds the socket and would otherwise keep the
        connection alive without its parent (the drop would not happen at all)."""
        pids = self.sessions()
        tree = list(pids)
        for pid in pids:
            tree += descendants(pid)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in out.split()]
    return kids + [d for k in kids for d in descendants(k)]


def wait_for(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")
