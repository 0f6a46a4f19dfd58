"""Login sessions, kept in memory only (a restart logs everyone out).

The cookie holds a random 256-bit id; the store keeps only its SHA-256, so the ids are not in
memory in a form that could be replayed. Each session has its own CSRF token, which every
action's form carries back (sessions.py checks it in constant time)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from loon_supervisor.dashboard.passwords import Role

IDLE_S = 3600.0
ABSOLUTE_S = 12 * 3600.0
MAX_SESSIONS = 1000


@dataclass
class Session:
    user: str  # the name typed at login: recorded with every action
    role: Role
    client: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    @property
    def may_act(self) -> bool:
        return self.role is Role.ADMIN

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                         self.csrf.encode("ascii"))

    @property
    def who(self) -> str:
        """How out.log names the person: the login name, the role and the address."""
        return f"{self.user} ({self.role}, from {self.client})"


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    def __init__(self, idle: float = IDLE_S, absolute: float = ABSOLUTE_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.idle, self.absolute, self.max_sessions = idle, absolute, max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, role: Role, client: str) -> tuple[str, Session]:
        """A new session and the id to put in the cookie."""
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.pop(next(iter(self._sessions)))  # bounded: drop the oldest
        session_id = secrets.token_urlsafe(32)
        session = Session(user=user, role=role, client=client)
        self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(_key(session_id))
        now = time.monotonic()
        if session is None:
            return None
        if now - session.seen > self.idle or now - session.created > self.absolute:
            self._sessions.pop(_key(session_id), None)
            return None
        session.seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_key(session_id), None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, s in list(self._sessions.items()):
            if now - s.seen > self.idle or now - s.created > self.absolute:
                del self._sessions[key]
