"""Where the project keeps its generated files, relative to the project root."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The directory that holds build.py; LOON_PROJECT_ROOT overrides it (tests, installs)."""
    return Path(os.environ.get("LOON_PROJECT_ROOT", PROJECT_ROOT))


def build_files_dir() -> Path:
    return project_root() / ".build-files"


def logs_dir() -> Path:
    return project_root() / "logs"
