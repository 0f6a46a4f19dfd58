"""The build context as a tar stream: .dockerignore honoured, files read in a worker thread.

The .dockerignore matcher is hand-written (about 30 lines) because the only Python library
that implements Docker's exact rules is the docker SDK, which would pull in requests and a
second engine client just for this. Rules: patterns are relative to the context root, use
Go's filepath.Match syntax plus ``**``, ``!`` re-includes, and the last matching line wins.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
from anyio.abc import ObjectSendStream

CHUNK = 256 * 1024


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                i += 1
                out[-1] = "(?:.*/)?"
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    # A pattern matching a directory also excludes everything below it.
    return re.compile("".join(out) + "(?:/.*)?")


def read_dockerignore(root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    path = root / ".dockerignore"
    rules: list[tuple[bool, re.Pattern[str]]] = []
    if not path.is_file():
        return rules
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        line = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((keep, _translate(line)))
    return rules


def is_ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    ignored = False
    for keep, rx in rules:
        if rx.fullmatch(rel):
            ignored = not keep
    return ignored


def context_files(root: Path) -> list[str]:
    """Relative paths to send; the Dockerfile and .dockerignore always go (as Docker does)."""
    rules = read_dockerignore(root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames) + [d for d in sorted(dirnames)
                                         if os.path.islink(os.path.join(dirpath, d))]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel in ("Dockerfile", ".dockerignore") or not is_ignored(rel, rules):
                out.append(rel)
        dirnames.sort()
    return out


INCLUDE_FILE = ".loon-include"


def included_files(root: Path) -> dict[str, Path]:
    """Files of the directories named in ``<root>/.loon-include`` (one path per line,
    relative to ``root``), merged into the context at their relative paths.

    Lets several image directories share scripts and configuration without copies (a
    Docker build context cannot reach outside itself). The context's own .dockerignore
    applies to them too; a path present in both is an error, not a silent override.
    """
    listing = root / INCLUDE_FILE
    if not listing.is_file():
        return {}
    rules = read_dockerignore(root)
    own = set(context_files(root))
    out: dict[str, Path] = {}
    for raw in listing.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        shared = (root / line).resolve()
        if not shared.is_dir():
            raise ValueError(f"{listing} names {line}, which is not a directory")
        for dirpath, dirnames, filenames in os.walk(shared):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                rel = path.relative_to(shared).as_posix()
                if is_ignored(rel, rules):
                    continue
                if rel in own or rel in out:
                    raise ValueError(f"{rel} is both in {root} and in {shared}; keep one")
                out[rel] = path
    return out


class _ChunkWriter(io.RawIOBase):
    """A file object for tarfile that hands fixed-size chunks to the event loop."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._buf = bytearray()
        self._deliver = deliver

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self._buf += b
        while len(self._buf) >= CHUNK:
            self._deliver(bytes(self._buf[:CHUNK]))
            del self._buf[:CHUNK]
        return len(b)

    def close(self) -> None:
        if self._buf:
            self._deliver(bytes(self._buf))
            self._buf.clear()
        super().close()


def _write_tar(root: Path, extra: dict[str, Path | bytes | None], send: ObjectSendStream[bytes]
               ) -> None:
    def deliver(chunk: bytes) -> None:
        anyio.from_thread.run(send.send, chunk)

    writer = _ChunkWriter(deliver)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in context_files(root):
            tar.add(root / rel, arcname=rel, recursive=False)
        for arcname, source in extra.items():
            if source is None:  # an empty directory
                info = tarfile.TarInfo(arcname)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(source, bytes):
                info = tarfile.TarInfo(arcname)
                info.size = len(source)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(source))
            else:
                tar.add(source, arcname=arcname, recursive=True)
    writer.close()


async def produce_context(root: Path, extra: dict[str, Path | bytes | None],
                          send: ObjectSendStream[bytes]) -> None:
    """Run in a task: fills ``send`` with the tar, then closes it."""
    async with send:
        await anyio.to_thread.run_sync(_write_tar, root, extra, send)


async def iterate(receive: anyio.abc.ObjectReceiveStream[bytes]) -> AsyncIterator[bytes]:
    async with receive:
        async for chunk in receive:
            yield chunk
