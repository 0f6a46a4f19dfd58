"""Rotation under load and kill -9 at a rotation's seam, with a real engine, on both log
sources (issue 23): the host file must equal, byte for byte, everything the service wrote.

- A writer at ~10 MB/s with supervisord-style rotations every 256 KiB (``.log`` ->
  ``.log.1`` -> ... -> ``.log.N``, the oldest deleted; a line cut in two by every
  rotation): a follower that falls one or more generations behind catches up through them.
- A service writes half a line, rotates, and the logger is killed with the half line still
  in its buffer (the partial-line window right after a rotation); ``attach`` then ``down``.
  Before issue 23 the saved position was negative there: ``pread`` raised EINVAL (hostdir)
  or the follower ran ``tail -c +-N`` and tail's error text landed in the log (exec).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine_helpers import Deployment, wait_until
from tests.faults.support import host_file, in_container, kill_logger

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

LOG = "/var/log/loon/rot.log"
PERL_FILES = {  # the host's perl, bare (no modules): rename() without a fork per file
    "/usr/bin/perl": "usr/bin/perl",
    "/lib/x86_64-linux-gnu/libm.so.6": "lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libcrypt.so.1": "lib/x86_64-linux-gnu/libcrypt.so.1",
}

# supervisord's RotatingFileHandler in miniature: fixed-size numbered lines appended to PATH;
# when the next bytes would pass MAX, the file is filled to exactly MAX (cutting the line),
# closed, the generations shifted (.KEEP deleted, .k -> .k+1, .log -> .log.1), and the rest
# of the line goes to a new PATH. Paced at RATE bytes/s (gettimeofday through syscall 96:
# the bare perl binary has no Time::HiRes). Starts when GO exists.
ROTATING_PL = r"""
my ($path, $total, $max, $keep, $rate, $go) = @ARGV;
sub now { my $b = "\0" x 16; syscall(96, $b, 0); my ($s, $us) = unpack("q q", $b); return $s + $us / 1e6; }
while (!-e $go) { select(undef, undef, undef, 0.05); }
open(my $fh, ">>", $path) or die "open: $!";
my ($n, $sent, $rotations, $t0) = (0, 0, 0, now());
my $pad = "x" x 87;
for my $i (1 .. $total) {
    my $line = sprintf("rot %07d %s\n", $i, $pad);
    if ($n + length($line) > $max) {
        my $cut = $max - $n;
        print $fh substr($line, 0, $cut);
        close($fh);
        unlink("$path.$keep");
        for (my $k = $keep - 1; $k >= 1; $k--) { rename("$path.$k", "$path." . ($k + 1)); }
        rename($path, "$path.1") or die "rename: $!";
        open($fh, ">>", $path) or die "open: $!";
        print $fh substr($line, $cut);
        $n = length($line) - $cut;
        $rotations++;
        my $ahead = $sent / $rate - (now() - $t0);
        select(undef, undef, undef, $ahead) if $ahead > 0;
    } else {
        print $fh $line;
        $n += length($line);
    }
    $sent += length($line);
}
close($fh);
my $took = now() - $t0;
open(my $done, ">", "/tmp/done") or die;
printf $done "%d bytes in %.2f s, %d rotations\n", $sent, $took, $rotations;
close($done);
"""

LINE = 100  # bytes of each numbered line above
TOTAL = 320_000  # 32 MB
MAX = 256 * 1024
KEEP = 10  # supervisord's default stdout_logfile_backups, and the follower's default search


def expected(total: int) -> bytes:
    pad = "x" * 87
    return "".join(f"rot {i:07d} {pad}\n" for i in range(1, total + 1)).encode()


def with_perl(d: Deployment) -> Deployment:
    """The host's perl in the image context (tests/images.py copies ``gnu/`` to ``/``)."""
    for src, dst in PERL_FILES.items():
        target = d.root / "image" / "gnu" / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(src).resolve(), target)
    return d


def exec_in(d: Deployment, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", d.name, *cmd], capture_output=True, text=True)


def assert_same_lines(host: bytes, want: bytes) -> None:
    """Byte equality, with a message that names the first differing line."""
    if host == want:
        return
    got, exp = host.split(b"\n"), want.split(b"\n")
    at = next((i for i, (a, b) in enumerate(zip(got, exp, strict=False)) if a != b),
              min(len(got), len(exp)))
    nl = b"\n"
    raise AssertionError(f"host file {len(host)} bytes / {host.count(nl)} lines, expected "
                         f"{len(want)} / {want.count(nl)}; first difference at line "
                         f"{at + 1}: {got[at][:40]!r} != "
                         f"{exp[at][:40] if at < len(exp) else b'<end>'!r}")


def rotating_writer(deploy, rate: int, total: int):  # type: ignore[no-untyped-def]
    """A deployment whose ``rot`` service writes ``total`` lines at ``rate`` bytes/s with
    supervisord's rotation, once /tmp/go exists; up -d done, writing started. (deployment,
    the expected host file)"""
    d = with_perl(deploy(
        {"rot": f"perl /app/rotating.pl {LOG} {total} {MAX} {KEEP} {rate} /tmp/go; "
                "exec sleep 100000"},
        extra_files={"rotating.pl": ROTATING_PL},
        extra_labels={"org.loon.log-backups": str(KEEP)}))
    up = d.run("-d", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    assert exec_in(d, "touch", "/tmp/go").returncode == 0
    want = expected(total)
    wait_until(lambda: exec_in(d, "test", "-e", "/tmp/done").returncode == 0, timeout=180)
    path = d.session() / "rot.log"
    try:
        wait_until(lambda: path.exists() and path.stat().st_size >= len(want), timeout=60)
    except AssertionError:
        pass  # the comparisons say what is missing
    return d, want


def test_a_follower_behind_by_generations_at_10_mb_s(deploy, log_source: str) -> None:  # type: ignore[no-untyped-def]
    """~10 MB/s with a rotation every 256 KiB (about 40 a second): the follower regularly
    finds the file it follows already renamed to ``.log.2`` or further; it reads that
    file's rest and every newer generation whole, in order (only ``.log.1`` was searched
    before issue 23: a check like this one got 30.7 of 35.2 MB to the host).

    hostdir: every byte, exactly once. exec: each resync costs exec round trips (a stat, a
    fingerprint read, one read per generation, a new tail), so at 40 rotations a second the
    follower falls more than the 10 kept generations behind and the writer deletes files
    nobody has read: those bytes are lost, and that must never be silent. Every gap in the
    host file is named in out.log, no line is doubled or out of order, and a line is cut
    only where bytes are missing. (On this machine the exec follower also fell behind for
    good at two rotations a second; see docs/log-faults.md, Limits.)

    Green since the generation search reads each file by the inode its stat named (the
    host directory opens, then fstats, and a path that holds another file by then makes
    the search look again): before that, about one run in two read a generation twice or
    left a gap out.log did not name, because a check could read another file than the
    stat named while the writer renamed them all 40 times a second."""
    d, want = rotating_writer(deploy, 10_000_000, TOTAL)
    said = exec_in(d, "cat", "/tmp/done").stdout.strip()  # e.g. "32000000 bytes in 3.2 s"
    out = (d.session() / "out.log").read_text(errors="replace")
    host = host_file(d, "rot")
    gaps, said_gone = line_gaps(host), out.count("is gone from disk")
    notes = "\n".join(x for x in out.splitlines() if "gone from disk" in x)[-3000:]
    if log_source == "hostdir":
        assert said_gone == 0 and not gaps, (
            f"writer: {said}; {len(gaps)} gaps in the host file {gaps[:5]}, out.log says "
            f"{said_gone} times that a file was gone:\n{notes}")
        assert_same_lines(host, want)
    else:
        assert len(gaps) <= said_gone, (
            f"writer: {said}; {len(gaps)} gaps in the host file {gaps[:5]} but out.log names "
            f"{said_gone}:\n{notes}")
        assert host.endswith(want[-LINE:]), "the host file does not end with the last line"
    down = d.run("-D", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert host_file(d, "rot") == host


def line_gaps(host: bytes) -> list[tuple[int, int]]:
    """Where the numbered lines jump: lost lines (a line cut by lost bytes counts as one
    more gap). A doubled or out-of-order line is an assertion error at once."""
    pad = b"x" * 87
    gaps: list[tuple[int, int]] = []
    last = 0
    for line in host.split(b"\n")[:-1]:
        head, num, rest = line.split(b" ", 2) if line.count(b" ") == 2 else (b"", b"", b"")
        if not (head == b"rot" and num.isdigit() and rest == pad):
            gaps.append((last, -1))  # the end of one line and the start of a later one
            continue
        n = int(num)
        assert n > last, f"rot {n} after rot {last} (doubled or out of order)"
        if n != last + 1 and not (gaps and gaps[-1] == (last, -1)):
            gaps.append((last, n))
        last = n
    return gaps


# Half a line, a rotation, then nothing until /tmp/go: the half line waits in the logger's
# buffer for its newline (the partial-line window) while the follower has already switched
# to the new, empty file. Then the rest of the line and more lines, and a second rotation.
SEAM = (f'sleep 1; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo "rot $i" >> {LOG}; '
        f'usleep 500; done; printf "rot half " >> {LOG}; mv {LOG} {LOG}.1; : > {LOG}; '
        'touch /tmp/rotated; while [ ! -e /tmp/go ]; do usleep 50000; done; '
        f'echo "line" >> {LOG}; while [ $i -lt 600 ]; do i=$((i+1)); echo "rot $i" >> {LOG}; '
        f'usleep 500; if [ $i = 450 ]; then mv {LOG}.1 {LOG}.2; mv {LOG} {LOG}.1; fi; done; '
        'touch /tmp/done; exec sleep 100000')


def test_kill_9_in_the_partial_line_window_after_a_rotation(deploy) -> None:  # type: ignore[no-untyped-def]
    """The logger is killed while the half line written just before a rotation is still in
    its buffer (``LOON_TEST_PARTIAL_DELAY`` stretches the 0.25 s partial-line window to
    60 s so the kill lands inside it on a loaded machine; the attached logger runs with the
    normal window). No offset the sources get is ever negative: the logger and ``down``
    end normally, nothing of tail's error text or a traceback appears anywhere, and the host
    file is the concatenation of the generations."""
    d = deploy({"rot": SEAM})
    up = d.run("-d", timeout=180, LOON_TEST_PARTIAL_DELAY="60")
    assert up.returncode == 0, up.stdout + up.stderr
    wait_until(lambda: exec_in(d, "test", "-e", "/tmp/rotated").returncode == 0, timeout=60)
    # the follower has read the half line and met the rotation (hostdir: inotify at once;
    # exec: tail's notice) well within this; the half line stays buffered for 60 s
    wait_until(lambda: host_file(d, "rot").endswith(b"rot 300\n"), timeout=30)
    state = (d.project / ".build-files" / f"state.{d.name}.json")
    wait_until(lambda: b'"rot"' in state.read_bytes(), timeout=10)
    time.sleep(3)
    assert host_file(d, "rot").endswith(b"rot 300\n"), "the half line was written already"
    kill_logger(d)
    assert exec_in(d, "touch", "/tmp/go").returncode == 0
    wait_until(lambda: exec_in(d, "test", "-e", "/tmp/done").returncode == 0, timeout=60)
    whole = in_container(d, "rot", (".2", ".1", ""))
    lines = [f"rot {i}" for i in range(1, 301)] + ["rot half line"] + [
        f"rot {i}" for i in range(301, 601)]
    assert whole.decode() == "".join(f"{x}\n" for x in lines)  # the generations hold it all
    attach = d.loon("attach", "--name", d.name)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    wait_until(lambda: host_file(d, "rot").endswith(b"rot 600\n"), timeout=60)
    assert host_file(d, "rot") == whole
    down = d.run("-D", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert host_file(d, "rot") == whole
    session = d.session()
    out = (session / "out.log").read_text(errors="replace")
    stderr = (session / "logger.stderr").read_text(errors="replace") \
        if (session / "logger.stderr").exists() else ""
    for text in (out, stderr, down.stdout + down.stderr, attach.stdout + attach.stderr):
        assert "Traceback" not in text, text[-3000:]
        assert "invalid number of bytes" not in text, text[-3000:]  # tail -c +-N
        assert "Invalid argument" not in text, text[-3000:]  # pread EINVAL
        assert "impossible offset" not in text, text[-3000:]
    for f in session.glob("*.log"):
        if f.name not in ("out.log",):
            assert b"tail:" not in f.read_bytes(), f"{f.name} holds tail's text"
