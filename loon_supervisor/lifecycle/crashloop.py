"""Crash-loop detection: a service that restarts N times within M seconds is failing, whatever
supervisord's state says.

supervisord calls a start successful once it outlived ``startsecs``; a service that then dies
after 10 s is restarted for ever and shows RUNNING/STARTING in turn, never FATAL. Each new run
of a service is visible in the status command's output (supervisorctl's ``pid N, uptime
H:MM:SS``): a different pid, or an uptime smaller than the last one seen (pid reuse), is one
restart. Hand-written: supervisord has no restart counter to ask for.

Defaults (``deploymentSettings.crashLoopRestarts`` / ``crashLoopWindow``): 3 restarts within
300 s. The verdict ends once a whole window passes without a restart.

The verdicts are kept in ``<session>/crash-loops.json`` so that ``loon status`` (another
process) can show ``crash-looping``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RESTARTS = 3
DEFAULT_WINDOW = 300.0
STATE_FILE = "crash-loops.json"

_PID = re.compile(r"\bpid (\d+)")
_UPTIME = re.compile(r"\buptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


@dataclass(frozen=True)
class CrashLoopPolicy:
    restarts: int = DEFAULT_RESTARTS
    window: float = DEFAULT_WINDOW


@dataclass(frozen=True)
class Run:
    """One run of a service as the status line shows it (pid and uptime, when running)."""

    pid: int | None
    uptime: int | None


def parse_run(line: str) -> Run:
    """pid and uptime (seconds) from a supervisorctl status line; None where absent."""
    pid = _PID.search(line)
    up = _UPTIME.search(line)
    uptime = None
    if up:
        days, h, m, s = (int(g) if g else 0 for g in up.groups())
        uptime = ((days * 24 + h) * 60 + m) * 60 + s
    return Run(int(pid.group(1)) if pid else None, uptime)


@dataclass
class _Service:
    last: Run | None = None
    restarts: deque[float] = field(default_factory=deque)
    looping: bool = False


class CrashLoopDetector:
    """Feed it every status sample; it says when a service starts or stops crash-looping."""

    def __init__(self, policy: CrashLoopPolicy | None = None) -> None:
        self.policy = policy or CrashLoopPolicy()
        self._services: dict[str, _Service] = {}

    def observe(self, name: str, line: str, now: float) -> str | None:
        """Returns "started" or "ended" when the verdict for ``name`` changes, else None."""
        svc = self._services.setdefault(name, _Service())
        run = parse_run(line)
        if run.pid is not None:
            last = svc.last
            if last is not None and last.pid is not None and (
                    run.pid != last.pid
                    or (run.uptime is not None and last.uptime is not None
                        and run.uptime < last.uptime)):
                svc.restarts.append(now)
            svc.last = run
        while svc.restarts and now - svc.restarts[0] > self.policy.window:
            svc.restarts.popleft()
        if not svc.looping and len(svc.restarts) >= self.policy.restarts:
            svc.looping = True
            return "started"
        if svc.looping and not svc.restarts:
            svc.looping = False
            return "ended"
        return None

    def restarts(self, name: str) -> int:
        svc = self._services.get(name)
        return len(svc.restarts) if svc else 0

    def looping(self) -> list[str]:
        return sorted(n for n, s in self._services.items() if s.looping)


class CrashLoopWatch:
    """The follower's side: detector + loud report + the session's crash-loops.json."""

    def __init__(self, session: Path, say: Callable[[str], None],
                 tail: Callable[[Path], list[str]], policy: CrashLoopPolicy | None = None
                 ) -> None:
        self.detector = CrashLoopDetector(policy)
        self.session = session
        self.say = say
        self.tail = tail

    def observe(self, name: str, line: str) -> None:
        change = self.detector.observe(name, line, time.monotonic())
        if change is None:
            return
        p = self.detector.policy
        if change == "started":
            self.say(f"CRASH LOOP: service {name} restarted {self.detector.restarts(name)} "
                     f"times within {p.window:.0f} s (supervisord still restarts it and may "
                     f"call it RUNNING); the other services stay up. Last lines of {name}.log:")
            for text in self.tail(self.session / f"{name}.log"):
                self.say(f"  {text}")
        else:
            self.say(f"service {name}: no restart for {p.window:.0f} s, no longer crash-looping")
        write_verdicts(self.session, {n: self.detector.restarts(n)
                                      for n in self.detector.looping()})


def write_verdicts(session: Path, looping: dict[str, int]) -> None:
    """Atomically replace the session's crash-loops.json ({service: restarts})."""
    tmp = session / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(looping))
    os.replace(tmp, session / STATE_FILE)


def read_verdicts(session: Path | None) -> dict[str, int]:
    """What the follower last said; empty when it never saw a crash loop."""
    if session is None:
        return {}
    try:
        data = json.loads((session / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}
