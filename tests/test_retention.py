"""Host log retention (sinks/retention.py): what is kept, compressed and pruned, exactly."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from loon_supervisor.sinks import retention
from loon_supervisor.sinks.retention import Limits
from loon_supervisor.sinks.session import EventLog, point_latest
from loon_supervisor.streams.cursor import Known, Position

MiB = 1 << 20


def _session(root: Path, second: int, files: dict[str, bytes], n: int | None = None) -> Path:
    name = f"logs_2026-01-01_00-{second // 60:02d}-{second % 60:02d}" + (f"_{n}" if n else "")
    path = root / name
    path.mkdir(parents=True)
    for stem, data in files.items():
        (path / f"{stem}.log").write_bytes(data)
    return path


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    logs, build = tmp_path / "logs", tmp_path / ".build-files"
    logs.mkdir()
    build.mkdir()
    return logs, build


def _text(i: int) -> bytes:
    return b"".join(b"session %d line %d\n" % (i, k) for k in range(2000))


def test_sessions_over_the_count_are_compressed_then_the_oldest_pruned(tmp_path: Path) -> None:
    logs, build = _dirs(tmp_path)
    made = [_session(logs, i, {"out": _text(i), "nginx": _text(i) * 2}) for i in range(25)]
    point_latest(logs, made[-1])
    # the oldest session is still a deployment's (a dead logger: `loon down` collects into it)
    (build / "state.old.json").write_text(json.dumps({"session": str(made[0])}))
    current = _session(logs, 30, {"out": b"starting\n"})

    out = retention.apply(logs, build, Limits(sessions=20, max_bytes=1 << 40), keep=[current])

    left = retention.sessions(logs)
    # 26 sessions (25 and the current one) -> 20: the 6 oldest unprotected ones went
    assert [p.name for p in out.pruned] == [p.name for p in made[1:7]]
    assert left == [made[0], *made[7:], current]
    # finished sessions are gzipped file by file, byte-identical; protected ones untouched
    for s in made[7:-1]:
        assert sorted(p.name for p in s.iterdir()) == ["nginx.log.gz", "out.log.gz"]
        i = made.index(s)
        assert gzip.decompress((s / "nginx.log.gz").read_bytes()) == _text(i) * 2
    for s in (made[0], made[-1], current):
        assert not list(s.glob("*.gz")), s
    assert (made[0] / "out.log").read_bytes() == _text(0)
    assert len(out.compressed) == 2 * (25 - 2 - 6)  # none compressed only to be pruned
    assert out.usage == retention.usage(logs, build)


def test_bytes_limit_prunes_oldest_until_under_and_no_further(tmp_path: Path) -> None:
    logs, build = _dirs(tmp_path)
    made = [_session(logs, i, {"server": os.urandom(MiB)}) for i in range(8)]
    point_latest(logs, made[-1])
    staging = build / "service-logs" / "loon"
    staging.mkdir(parents=True)
    (staging / "server.log").write_bytes(b"x" * (MiB // 2))

    out = retention.apply(logs, build, Limits(sessions=100, max_bytes=5 * MiB))

    # random bytes do not shrink: each compressed session is 1 MiB and a gzip header, so
    # with the staging half MiB only 4 fit under 5 MiB: the 4 oldest go
    assert out.pruned == made[:4]
    assert retention.sessions(logs) == made[4:]
    assert out.usage == retention.usage(logs, build) <= 5 * MiB
    assert (staging / "server.log").exists()  # the staging copy counts, is never pruned here
    assert out.lines(Limits(100, 5 * MiB))[0].startswith("log retention: compressed 7 file(s)")


def test_current_session_over_the_limit_is_kept_and_warned_about(tmp_path: Path) -> None:
    logs, build = _dirs(tmp_path)
    old = [_session(logs, i, {"a": b"x" * 1000}) for i in range(3)]
    current = _session(logs, 10, {"a": os.urandom(3 * MiB)})
    point_latest(logs, current)

    limits = Limits(sessions=10, max_bytes=2 * MiB)
    out = retention.apply(logs, build, limits, keep=[current])

    assert out.pruned == old
    assert retention.sessions(logs) == [current]
    lines = out.lines(limits)
    assert any(line.startswith("warning: host logs use 3.0 MiB, over") for line in lines)
    use = retention.measure(logs, build, limits)
    assert use.near_limit and use.warning() is not None


def test_a_session_a_live_process_writes_is_never_touched(tmp_path: Path) -> None:
    logs, build = _dirs(tmp_path)
    live = _session(logs, 0, {"mysql": b"m\n" * 100})
    events = EventLog(live / "out.log")  # a foreground `up` still building: no state yet
    events.event("building")
    others = [_session(logs, i, {"a": b"a\n"}) for i in range(1, 5)]
    point_latest(logs, others[-1])
    try:
        out = retention.apply(logs, build, Limits(sessions=1, max_bytes=1 << 40))
        assert live.exists() and (live / "mysql.log").exists()
        assert not list(live.glob("*.gz"))
        assert out.pruned == others[:-1]
    finally:
        events.close()
    # once its writer is gone, it is an old session like any other
    out = retention.apply(logs, build, Limits(sessions=1, max_bytes=1 << 40))
    assert out.pruned == [live]


def test_interrupted_compression_is_finished_not_doubled(tmp_path: Path) -> None:
    logs, build = _dirs(tmp_path)
    s = _session(logs, 0, {"a": b"a\n" * 10, "b": b"b\n" * 10})
    (s / "a.log.gz").write_bytes(gzip.compress(b"a\n" * 10))  # renamed, not yet unlinked
    (s / "b.log.gz.tmp").write_bytes(b"\x1f\x8b half")  # cut short while writing
    newest = _session(logs, 1, {"a": b"new\n"})
    point_latest(logs, newest)

    retention.apply(logs, build, Limits())

    assert sorted(p.name for p in s.iterdir()) == ["a.log.gz", "b.log.gz"]
    assert gzip.decompress((s / "b.log.gz").read_bytes()) == b"b\n" * 10
    assert gzip.decompress((s / "a.log.gz").read_bytes()) == b"a\n" * 10


def test_sessions_sort_by_stamp_then_same_second_number(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    a = _session(logs, 5, {})
    b = _session(logs, 5, {}, n=2)
    c = _session(logs, 5, {}, n=10)
    d = _session(logs, 6, {})
    (logs / "notes").mkdir()
    assert retention.sessions(logs) == [a, b, c, d]


def test_staging_drops_only_rotated_files_the_session_holds(tmp_path: Path) -> None:
    """A rotated file goes once the saved position names it (inode and size) among the
    files older than its own, from .log.2 on; a generation a follower has not read stays
    (issue 23: a follower behind by generations reads them)."""
    host = tmp_path / "service-logs" / "loon"
    host.mkdir(parents=True)
    names = ("nginx.log", "nginx.log.1", "nginx.log.2", "nginx.log.3", "mysql.log",
             "mysql.log.1", "mysql.log.12", "odd.log.x", "plain.txt")
    for name in names:
        (host / name).write_bytes(b"x\n")

    def known(*files: str) -> tuple[Known, ...]:
        return tuple(Known((host / f).stat().st_ino, (host / f).stat().st_size)
                     for f in files)

    nginx = host / "nginx.log"
    positions = {
        "nginx": Position(nginx.stat().st_ino, 2, 2, b"x\n",
                          known("nginx.log.1", "nginx.log.2", "nginx.log.3")),
        "mysql": Position((host / "mysql.log.1").stat().st_ino, 1, 1, b"x", ()),
    }
    assert retention.prune_staging(host) == []  # no positions: nothing is known read
    removed = retention.prune_staging(host, positions)

    assert sorted(p.name for p in removed) == ["nginx.log.2", "nginx.log.3"]
    assert sorted(p.name for p in host.iterdir()) == [
        "mysql.log", "mysql.log.1", "mysql.log.12", "nginx.log", "nginx.log.1", "odd.log.x",
        "plain.txt"]
    pruner = retention.StagingPruner(host)
    (host / "nginx.log.2").write_bytes(b"new\n")  # another file: not the one read
    pruner(positions)
    assert (host / "nginx.log.2").exists()
    retention.StagingPruner(None)(positions)  # exec source: nothing to prune


@pytest.mark.parametrize(("share_mib", "kept_rotated"), [
    (6, ["nginx.log.1", "worker.log.1", "worker.log.2"]),  # the oldest read .1 is enough
    (4, ["worker.log.1", "worker.log.2"]),  # every read one goes, unread ones stay
])
def test_staging_over_its_share_loses_read_rotated_files_only(
        tmp_path: Path, share_mib: int, kept_rotated: list[str]) -> None:
    """Staging filled past its share (a quarter of logMaxMegabytes) by 8 MiB: the read
    ``.2`` always goes, then read ``.1`` files, oldest first, until the project's staging
    copy fits; the live files and a follower's unread generations are never removed, so
    status and doctor then warn."""
    build = tmp_path / ".build-files"
    root = retention.staging_root(build)
    host, other = root / "loon", root / "other"
    host.mkdir(parents=True)
    other.mkdir()
    (other / "x.log").write_bytes(b"o" * MiB)  # another deployment's: counted, not ours
    sizes = {"nginx.log": MiB, "nginx.log.1": MiB, "nginx.log.2": MiB,
             "mysql.log": MiB // 2, "mysql.log.1": MiB,
             "worker.log": MiB // 2, "worker.log.1": MiB, "worker.log.2": MiB}
    for i, (name, size) in enumerate(sizes.items()):
        (host / name).write_bytes(name.encode()[:1] * size)
        os.utime(host / name, (1000 + i, 1000 + i))
    os.utime(host / "mysql.log.1", (10, 10))  # the oldest rotated file

    def known(*files: str) -> tuple[Known, ...]:
        return tuple(Known((host / f).stat().st_ino, (host / f).stat().st_size)
                     for f in files)

    positions = {
        "nginx": Position((host / "nginx.log").stat().st_ino, 5, 5, None,
                          known("nginx.log.2", "nginx.log.1")),
        "mysql": Position((host / "mysql.log").stat().st_ino, 5, 5, None,
                          known("mysql.log.1")),
        # behind by two generations: still in .2, .1 not read either
        "worker": Position((host / "worker.log.2").stat().st_ino, 5, 5, None, ()),
    }
    limits = Limits(max_bytes=4 * share_mib * MiB)
    assert limits.staging_bytes == share_mib * MiB
    assert retention.tree_bytes(root) == 8 * MiB

    retention.StagingPruner(host, limits)(positions)

    left = sorted(p.name for p in host.iterdir())
    assert left == sorted(["nginx.log", "mysql.log", "worker.log", *kept_rotated])
    assert (other / "x.log").exists()
    use = retention.measure(tmp_path / "logs", build, limits)
    assert use.staging == retention.tree_bytes(root) == use.used
    assert f"staging copy {retention.human(use.staging)} of {share_mib}.0 MiB" in use.summary()
    warning = use.warning()
    if use.staging > limits.staging_bytes:
        assert warning is not None and "staging copy" in warning and "not read yet" in warning
    else:
        assert warning is None or "staging copy" not in warning
    # what is over the share is only what must stay: a second pass removes nothing more
    assert retention.prune_staging(host, positions, limits.staging_bytes) == []


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, Limits(20, 1024 * MiB)),
    ({"logSessionsKept": 3, "logMaxMegabytes": 64}, Limits(3, 64 * MiB)),
    ({"logSessionsKept": "3", "logMaxMegabytes": -1}, Limits(20, 1024 * MiB)),
    ({"logSessionsKept": True}, Limits(20, 1024 * MiB)),
])
def test_limits_read_leniently(settings: dict[str, object], expected: Limits) -> None:
    assert Limits.from_settings(settings) == expected


def test_defaults_match_the_config_model() -> None:
    from loon_supervisor.config.model import DeploymentSettings

    d = DeploymentSettings()
    assert Limits(d.logSessionsKept, d.logMaxMegabytes * MiB) == Limits()


@pytest.mark.anyio
async def test_doctor_shows_usage_and_warns_from_80_percent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loon_supervisor.config.model import LoonConfig
    from loon_supervisor.doctor.checks import CHECKS, Context, host_logs
    from loon_supervisor.doctor.runner import run_check
    from tests.conftest import base_config

    assert ("host logs", "disk usage", host_logs) in CHECKS
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(tmp_path))
    logs, build = _dirs(tmp_path)
    _session(logs, 0, {"a": os.urandom(12 * MiB)})
    config = LoonConfig.model_validate(base_config(tmp_path, logMaxMegabytes=16))
    ctx = Context(None, "", {}, (), config, build / ".env")  # type: ignore[arg-type]
    v = await run_check(ctx, "host logs", "disk usage", host_logs)
    assert v.result == "pass" and v.detail.startswith("12.0 MiB of 16.0 MiB"), v
    (build / "service-logs" / "loon").mkdir(parents=True)
    (build / "service-logs" / "loon" / "a.log").write_bytes(b"x" * MiB)  # staging counts
    v = await run_check(ctx, "host logs", "disk usage", host_logs)
    assert v.result == "warn" and "81 %" in v.hint, v


def test_the_newest_session_with_service_logs_stays_readable(tmp_path: Path) -> None:
    """A run that stopped before following anything leaves only out.log; `loon logs` then
    shows the newest session with service files, so that one is not gzipped or pruned."""
    logs, build = _dirs(tmp_path)
    older = _session(logs, 0, {"out": b"o\n", "mysql": b"m\n"})
    shown = _session(logs, 1, {"out": b"o\n", "mysql": b"m\n"})
    failed = [_session(logs, i, {"out": b"build failed\n"}) for i in (2, 3, 4)]
    point_latest(logs, failed[-1])

    out = retention.apply(logs, build, Limits(sessions=3, max_bytes=1 << 40))

    assert out.pruned == [older, failed[0]]
    assert retention.sessions(logs) == [shown, failed[1], failed[2]]
    assert (shown / "mysql.log").read_bytes() == b"m\n"
    assert (failed[1] / "out.log.gz").exists()


def test_staging_keeps_a_newer_file_that_reused_a_known_inode(tmp_path: Path) -> None:
    """Inode numbers are reused at once (the rotation that deletes the oldest generation
    creates the new file): a rotated file newer than the one the position stands in is
    never taken for a known older one, even with the same inode, size and ending (issue 23;
    seen at 40 rotations a second with fixed-size lines: unread generations deleted)."""
    host = tmp_path / "service-logs" / "loon"
    host.mkdir(parents=True)
    for name in ("svc.log", "svc.log.1", "svc.log.2", "svc.log.3", "svc.log.4"):
        (host / name).write_bytes(b"same\n")

    def known(f: str) -> Known:
        st = (host / f).stat()
        return Known(st.st_ino, st.st_size, b"same\n")

    # the follower stands in .log.3; .log.2's inode is in its older set (a stale entry of
    # a deleted file whose inode .log.2 got)
    pos = Position((host / "svc.log.3").stat().st_ino, 5, 5, b"same\n",
                   (known("svc.log.2"), known("svc.log.4")))
    removed = retention.prune_staging(host, {"svc": pos})
    assert [p.name for p in removed] == ["svc.log.4"]
    assert (host / "svc.log.2").exists()
    gone = Position(12345678, 5, 5, b"same\n", (known("svc.log.2"),))  # own file not there
    assert retention.prune_staging(host, {"svc": gone}) == []
