"""The dashboard's passwords, read from the deploy server's secrets file.

``DASHBOARD_PASSWORD`` opens a session that may act (redeploy, cancel, restart);
``DASHBOARD_VIEWER_PASSWORD`` (optional) opens a read-only one. They are checked like the
deploy token (long, not guessable, not reused), because the login lockout follows the deploy
server's rule: the right password is never refused, so its randomness is what protects it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass

from pydantic import SecretStr

from loon_supervisor.deploy.secret_strength import MAKE_ONE, guessable
from loon_supervisor.errors import Problem

ADMIN_VAR = "DASHBOARD_PASSWORD"
VIEWER_VAR = "DASHBOARD_VIEWER_PASSWORD"
MIN_LENGTH = 32
MAX_LENGTH = 1024


class Role(enum.StrEnum):
    ADMIN = "admin"  # may act
    VIEWER = "viewer"  # read-only


@dataclass(frozen=True)
class DashboardPasswords:
    admin: SecretStr
    viewer: SecretStr | None = None

    def role_of(self, given: str) -> Role | None:
        """The role the password opens, or None; constant time over both passwords."""
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        admin = hmac.compare_digest(digest, _digest(self.admin))
        viewer = self.viewer is not None and hmac.compare_digest(digest, _digest(self.viewer))
        return Role.ADMIN if admin else Role.VIEWER if viewer else None


def _digest(secret: SecretStr) -> bytes:
    return hashlib.sha256(secret.get_secret_value().encode("utf-8", "surrogateescape")).digest()


def _check(where: str, value: str, problems: list[Problem]) -> None:
    if len(value) < MIN_LENGTH:
        problems.append(Problem(where, f"is shorter than {MIN_LENGTH} characters",
                                f"make one with a generator, e.g. {MAKE_ONE}"))
    elif len(value) > MAX_LENGTH:
        problems.append(Problem(where, f"is longer than {MAX_LENGTH} characters",
                                f"make one with a generator, e.g. {MAKE_ONE}"))
    elif guessable(value):
        problems.append(Problem(where, "looks guessable (repeats, sequences, common words)",
                                f"make one with a generator, e.g. {MAKE_ONE}"))


def read_passwords(env_file: str, values: dict[str, str], others: list[str], *,
                   required: bool, problems: list[Problem]) -> DashboardPasswords | None:
    """The passwords, or None when the dashboard is not configured (and not ``required``).
    ``others`` are the secrets file's other secrets, which a password must not repeat."""
    admin = values.get(ADMIN_VAR)
    viewer = values.get(VIEWER_VAR) or None
    if not admin:
        if required or viewer:
            problems.append(Problem(f"{env_file}: {ADMIN_VAR}", "is missing or empty; the "
                                    "dashboard never runs without a login",
                                    f"set it, e.g. `printf '{ADMIN_VAR}=%s\\n' \"$(openssl "
                                    f"rand -hex 32)\" >> {env_file}`"))
        return None
    _check(f"{env_file}: {ADMIN_VAR}", admin, problems)
    if viewer is not None:
        _check(f"{env_file}: {VIEWER_VAR}", viewer, problems)
        if viewer == admin:
            problems.append(Problem(f"{env_file}: {VIEWER_VAR}", f"is the same as {ADMIN_VAR}",
                                    "use two different random values"))
    for value in (admin, viewer):
        if value is not None and value in others:
            problems.append(Problem(f"{env_file}: {ADMIN_VAR if value == admin else VIEWER_VAR}",
                                    "repeats another secret of the file (the deploy token "
                                    "or the webhook secret)", "use its own random value"))
    return DashboardPasswords(SecretStr(admin), SecretStr(viewer) if viewer else None)
