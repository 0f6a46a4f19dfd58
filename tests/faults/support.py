"""Helpers for the fault matrix: who holds a deployment's lock, followers in a container,
numbered-line checks, and the expected bytes of rotated in-container files."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess

from tests.engine_helpers import Deployment, container_files, wait_until


def lock_holder(d: Deployment) -> int | None:
    """The pid written in the deployment's lock file while someone holds the flock."""
    path = d.project / ".build-files" / f"state.{d.name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 32, 0).decode().strip()
            return int(raw) if raw.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def loggers(d: Deployment) -> list[int]:
    """Background logger processes of this deployment."""
    out = subprocess.run(["pgrep", "-f", f"_logger {d.name}$"], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def followers(d: Deployment) -> list[str]:
    """The LOON_FOLLOWER marks of the processes inside the container."""
    script = ('for p in /proc/[0-9]*; do tr "\\0" "\\n" < $p/environ 2>/dev/null '
              '| grep "^LOON_FOLLOWER="; done; true')
    out = subprocess.run(["docker", "exec", d.name, "sh", "-c", script], capture_output=True,
                         text=True).stdout
    return sorted(out.split())


def use_log_source(d: Deployment, kind: str) -> None:
    """Set ``deploymentSettings.logSource`` in the deployment's config (and remember it)."""
    cfg = json.loads(d.config.read_text())
    cfg.setdefault("deploymentSettings", {})["logSource"] = kind
    d.config.write_text(json.dumps(cfg, indent=2))
    d.log_source = kind  # type: ignore[attr-defined]


def source_of(d: Deployment) -> str:
    """The source the state file records (what up chose)."""
    path = d.project / ".build-files" / f"state.{d.name}.json"
    return (json.loads(path.read_text()).get("log_source") or {}).get("kind", "exec")


def expected_followers(d: Deployment, names: list[str]) -> list[str]:
    """The in-container follower marks a logger leaves: one per service with exec, none
    with hostdir (nothing of ours runs in the container)."""
    if getattr(d, "log_source", "exec") == "hostdir":
        return []
    return sorted(f"LOON_FOLLOWER={d.name}/{n}" for n in names)


def kill_logger(d: Deployment) -> int:
    pid = lock_holder(d)
    assert pid, "no logger holds the lock"
    os.kill(pid, 9)
    wait_until(lambda: lock_holder(d) is None, timeout=10)
    return pid


def in_container(d: Deployment, name: str, parts: tuple[str, ...] = (".1", "")) -> bytes:
    """The concatenation of ``name``'s in-container files, oldest generation first."""
    files = container_files(d.name)
    return b"".join(files.get(f"{name}.log{p}", b"") for p in parts)


def numbered(text: str, name: str) -> list[int]:
    return [int(m) for m in re.findall(rf"^{re.escape(name)} (\d+)$", text, re.M)]


def assert_consecutive(text: str, name: str) -> None:
    """Lines ``name 1..N`` each exactly once, in order: nothing lost, nothing doubled."""
    nums = numbered(text, name)
    assert nums, f"no {name} lines"
    bad = [(a, b) for a, b in zip(nums, nums[1:], strict=False) if b != a + 1]
    assert not bad, f"{name}: gap or duplicate at {bad[:5]}"
    assert nums[0] == 1


def host_file(d: Deployment, name: str) -> bytes:
    path = d.session() / f"{name}.log"
    return path.read_bytes() if path.exists() else b""
