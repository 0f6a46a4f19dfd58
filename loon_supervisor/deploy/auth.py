"""Request authentication: the deploy token and the optional GitHub-style body signature.

Both checks compare in constant time. The token is compared through SHA-256 digests, so
neither its content nor its length can be learned from response timings, and both accepted
forms (``<token>`` and ``Bearer <token>``) are always computed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from pydantic import SecretStr


class Verdict(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # answered 401
    INVALID = "invalid"  # answered 403


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def check_token(header: str | None, token: SecretStr) -> Verdict:
    """``Authorization: <token>`` or ``Authorization: Bearer <token>``."""
    if header is None or not header.strip():
        return Verdict.MISSING
    want = _digest(token.get_secret_value())
    value = header.strip()
    scheme, _, rest = value.replace("\t", " ").partition(" ")  # RFC 9110: SP or HTAB
    plain_ok = hmac.compare_digest(_digest(value), want)
    bearer_ok = hmac.compare_digest(_digest(rest.strip()), want)
    bearer_ok = bearer_ok and scheme.lower() == "bearer"
    return Verdict.OK if (plain_ok or bearer_ok) else Verdict.INVALID


def signature(body: bytes, secret: SecretStr) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends: ``sha256=<hex HMAC of the raw body>``."""
    mac = hmac.new(secret.get_secret_value().encode("utf-8"), body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_signature(header: str | None, body: bytes, secret: SecretStr) -> Verdict:
    if header is None or not header.strip():
        return Verdict.MISSING
    given = header.strip().lower().encode("utf-8", "surrogateescape")
    return (Verdict.OK if hmac.compare_digest(given, signature(body, secret).encode("ascii"))
            else Verdict.INVALID)
