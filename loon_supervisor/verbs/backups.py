"""``loon backups``: the finished backups, oldest first, as `loon restore` names them."""

from __future__ import annotations

from dataclasses import dataclass

from loon_supervisor.backup.manifest import BackupError, backups_root, list_backups, read_manifest
from loon_supervisor.paths import project_root


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


@dataclass(frozen=True)
class BackupsOptions:
    """``loon backups``: nothing to choose."""


def run(opts: BackupsOptions) -> int:
    root = backups_root(project_root())
    found = list_backups(root)
    if not found:
        print(f"no backups in {root} yet; take one with `loon backup`")
        return 0
    rows = [("BACKUP", "DEPLOYMENT", "IMAGE", "SIZE", "DATA FILES", "MIGRATIONS")]
    for directory in found:
        try:
            m = read_manifest(directory)
        except BackupError:
            rows.append((directory.name, "?", "manifest unreadable", "", "", ""))
            continue
        data = sum(1 for e in m.files if e.path.startswith("data/"))
        rows.append((directory.name, m.deployment, m.image, _size(m.total_bytes),
                     str(data) if m.data_dir else "-", str(len(m.migrations))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"in {root}; restore one with `loon restore BACKUP`")
    return 0
