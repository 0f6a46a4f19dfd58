"""TLS files: parse them with ``cryptography`` so that a bad file fails here, with its
config path, instead of later inside the container when nginx starts."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

from loon_supervisor.bounded import MiB, UnboundedInput, read_bounded
from loon_supervisor.errors import Problem

SOON_DAYS = 30
MAX_PEM = 4 * MiB
"""Far above any certificate, key or CA bundle (a full system bundle is about 200 KiB)."""


def _certs(path: Path, json_path: str, problems: list[Problem]) -> list[object]:

    try:
        data = read_bounded(path, MAX_PEM)
    except UnboundedInput as exc:
        what, _, fix = str(exc).partition("; ")
        problems.append(Problem(json_path, f"{path} {what}", fix))
        return []
    except OSError as exc:
        problems.append(Problem(json_path, f"{path} cannot be read ({exc.strerror or exc})",
                                "fix its permissions"))
        return []
    with warnings.catch_warnings():  # old CA bundles hold certificates it frowns upon
        warnings.simplefilter("ignore")
        return _parse(data, path, json_path, problems)


def _parse(data: bytes, path: Path, json_path: str, problems: list[Problem]) -> list[object]:
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError:
        pass
    parsed: list[object] = []  # a bundle may hold one certificate this library cannot read: keep the rest
    for block in data.split(b"-----END CERTIFICATE-----")[:-1]:
        try:
            parsed.append(x509.load_pem_x509_certificate(block + b"-----END CERTIFICATE-----\n"))
        except ValueError:
            continue
    if not parsed:
        problems.append(Problem(json_path, f"{path} is not a PEM certificate",
                                "give a file that starts with -----BEGIN CERTIFICATE-----"))
    return parsed


def check_tls_pair(cert_path: Path, key_path: Path) -> tuple[list[Problem], list[str]]:
    """Problems with the pair, and notes (days to expiry) to print."""
    from cryptography.hazmat.primitives import serialization

    problems: list[Problem] = []
    notes: list[str] = []
    certs = _certs(cert_path, "nginxSettings.certFileLocation", problems)
    key = None
    try:
        key = serialization.load_pem_private_key(read_bounded(key_path, MAX_PEM), password=None)
    except UnboundedInput as exc:
        what, _, fix = str(exc).partition("; ")
        problems.append(Problem("nginxSettings.keyFileLocation", f"{key_path} {what}", fix))
    except OSError as exc:
        problems.append(Problem("nginxSettings.keyFileLocation",
                                f"{key_path} cannot be read ({exc.strerror or exc})",
                                "fix its permissions"))
    except (ValueError, TypeError):
        problems.append(Problem("nginxSettings.keyFileLocation",
                                f"{key_path} is not an unencrypted PEM private key",
                                "give the key file (-----BEGIN ... PRIVATE KEY-----) without "
                                "a passphrase; is it swapped with the certificate?"))
    if not certs:
        return problems, notes
    leaf = certs[0]
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key is not None and key.public_key().public_bytes(enc, fmt) != \
            leaf.public_key().public_bytes(enc, fmt):  # type: ignore[attr-defined]
        problems.append(Problem("nginxSettings.keyFileLocation",
                                f"{key_path} does not belong to the certificate {cert_path}",
                                "give the private key the certificate was issued for"))
    expiry(leaf, "nginxSettings.certFileLocation", cert_path, problems, notes)
    return problems, notes


def expiry(cert: object, json_path: str, path: Path, problems: list[Problem],
           notes: list[str]) -> None:
    """Expired certificates are problems; ones expiring within SOON_DAYS are notes."""
    end = cert.not_valid_after_utc  # type: ignore[attr-defined]
    days = (end - datetime.now(UTC)).days
    if end < datetime.now(UTC):
        problems.append(Problem(json_path, f"{path} expired on {end:%Y-%m-%d}",
                                "renew the certificate"))
    else:
        notes.append(f"{json_path}: {path} is valid until {end:%Y-%m-%d} ({days} days)"
                     + (" — renew it soon" if days < SOON_DAYS else ""))


def check_ca(path: Path) -> tuple[list[Problem], list[str]]:
    """The extra CA certificate must be PEM (it is added to the build's trust store)."""
    problems: list[Problem] = []
    notes: list[str] = []
    certs = _certs(path, "deploymentSettings.extraCaCertificate", problems)
    for cert in certs[:1]:
        expiry(cert, "deploymentSettings.extraCaCertificate", path, problems, notes)
    return problems, [n for n in notes if "renew" in n]
