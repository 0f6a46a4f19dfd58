"""``build.py -e`` without pydantic when nothing changed since the last good validation.

Building the pydantic models is most of ``-e``'s start-up (about 0.3 s on a small machine)
while validating an unchanged file is pointless. After a successful validation a stamp in
``.build-files/`` records a digest of everything the result depends on: the config bytes,
the env file name and its written content, the engine endpoint, and the validator's own
source files. When the digest matches, only the checks that depend on the file system run
again (cross-field rules such as the certificate files, and the volume directories).

The cache is used only without ``LOON_*`` overrides and with a local engine: an override
can name other certificate files than config.json (whose re-check the fast path could not
do without the models) and a misspelt one owes a warning on every run; a remote engine's
volume directories are its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from loon_supervisor.config.envnames import override_names
from loon_supervisor.config.rules import check_rules
from loon_supervisor.config.volumes import check_volume_dirs
from loon_supervisor.engine.endpoint import resolve_endpoint

_SOURCES = ("config/model.py", "config/load.py", "config/rules.py", "config/jsonread.py",
            "config/overrides.py", "config/formats.py", "config/volumes.py",
            "config/certificates.py", "spec/envfile.py", "spec/prepare.py",
            "config/validation_cache.py", "config/envnames.py", "engine/endpoint.py",
            "bounded.py")


def _digest(config_bytes: bytes, env_file: str, env_bytes: bytes, build_dir: Path) -> str:
    h = hashlib.sha256()
    h.update(config_bytes)
    h.update(b"\0" + env_file.encode() + b"\0" + env_bytes)
    for key_file in sorted(build_dir.glob(".secret-key.*")):  # an emptied key must be seen
        try:
            h.update(b"\0" + key_file.name.encode() + b"=" + key_file.read_bytes())
        except OSError:
            h.update(b"\0unreadable")
    for key in sorted(k for k in os.environ if k.upper().startswith("LOON_")):
        h.update(f"\0{key}={os.environ[key]}".encode())
    h.update(f"\0engine={resolve_endpoint().host}".encode())
    here = Path(__file__).parent.parent  # the package
    for rel in _SOURCES:
        h.update(f"\0{rel}:{(here / rel).stat().st_mtime_ns}".encode())
    return h.hexdigest()


def _stamp(build_dir: Path, env_file: str) -> Path:
    from loon_supervisor.paths import build_file

    return build_file(f".validated.{env_file}.json", build_dir)


def fast_validate(config_file: Path, config_bytes: bytes, env_file: str, build_dir: Path
                  ) -> list[str] | None:
    """Messages to print when the stamp still holds; None means: validate for real."""
    if override_names(os.environ) or resolve_endpoint().remote:
        return None
    try:
        stamp = json.loads(_stamp(build_dir, env_file).read_text())
        env_bytes = (build_dir / env_file).read_bytes()
        if stamp.get("digest") != _digest(config_bytes, env_file, env_bytes, build_dir):
            return None
        data = json.loads(config_bytes)
        dirs = [(str(a), str(b)) for a, b in stamp.get("volume_dirs", [])]
    except (OSError, ValueError, TypeError, RecursionError, AttributeError):
        return None
    notes: list[str] = []
    if not isinstance(data, dict) or check_rules(data, config_file.resolve().parent, notes):
        return None
    messages, problems = check_volume_dirs(dirs, create=False)
    if problems:
        return None
    return [*notes, *messages, f"{build_dir / env_file} is current (config unchanged since the last "
                       "validation)"]


def write_stamp(config_bytes: bytes, env_file: str, build_dir: Path,
                volume_dirs: list[tuple[str, str]]) -> None:
    """Record a successful validation (a unique temporary name, then an atomic rename)."""
    env_bytes = (build_dir / env_file).read_bytes()
    digest = _digest(config_bytes, env_file, env_bytes, build_dir)
    path = _stamp(build_dir, env_file)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=build_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"digest": digest, "volume_dirs": volume_dirs}))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
