"""An S3-compatible server standing in for a lab's object store: moto's server mode (PyPI
``moto[server]``), run as a subprocess on 127.0.0.1 and a free port. Test use only; it is
never Loon's storage. moto checks no signatures: a wrong key is not caught by it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
ACCESS_KEY = "loon-ci-access"
SECRET_KEY = "loon-ci-secret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA (a lab's) and a certificate it signs for 127.0.0.1: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "lab-ca.pem", directory / "lab-ca.key"
    cert, key, csr = directory / "store.pem", directory / "store.key", directory / "store.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:127.0.0.1, DNS:localhost\n"
                   "extendedKeyUsage = serverAuth\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=Loon CI lab CA", "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key


@dataclass
class S3Store:
    port: int
    proc: subprocess.Popen[bytes] | None = None
    tls: tuple[Path, Path, Path] | None = None  # (ca, cert, key): serve https

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, log: Path) -> None:
        """Start moto_server (again, same port) and wait until it answers."""
        server = Path(sys.executable).with_name("moto_server")
        tls = ["-c", str(self.tls[1]), "-k", str(self.tls[2])] if self.tls else []
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(self.port),
                                          *tls], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2, context=self._tls()).close()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)

    def _tls(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def make_bucket(self, bucket: str) -> None:
        """A bucket as a lab prepares it for Loon: objects readable by anyone (the client
        reads experiment files through nginx's /data/), writable with the keys only."""
        import json

        c = self.client()
        c.create_bucket(Bucket=bucket)
        c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]},
                           "Action": ["s3:GetObject"],
                           "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}))

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            verify=str(self.tls[0]) if self.tls else None)
