"""Validation: wall time of ``build.py -e`` on config.example.json.

Run as an operator runs it (the project's venv python, build.py as a subprocess) with
LOON_PROJECT_ROOT pointing at a temp dir, so nothing is written into the repo. For
reference the same is timed for a bare interpreter start (``python -c pass``), for pydantic
alone (``import pydantic``) and for the validation code's imports with its models built
(``import loon_supervisor.spec.prepare``): together they show what bounds ``-e``. ``-e`` on an
unchanged config takes the stamp's fast path (loon_supervisor/config/validation_cache.py); the
"config changed" case removes the stamp before each run, so it measures a full validation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, median, say


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} exited {res.returncode}: {res.stdout}{res.stderr}")
    return took


def bench(work: Path, runs: int) -> dict:
    # `-e` writes the env file with fsync (temp file, fsync, rename): with other files'
    # dirty pages pending (a test or bench part that just wrote hundreds of MiB), ext4's
    # journal makes that fsync wait for their writeback too, and `-e` measured 0.32 s
    # instead of 0.22 s. Flush first, so the figure is -e's own.
    os.sync()
    time.sleep(1.0)
    project = work / "validation"
    project.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    env["LOON_PROJECT_ROOT"] = str(project)
    cases = {
        "build.py -e, config changed (full validation)": [sys.executable, str(ROOT / "build.py"),
                                                          "-e", "--config-file",
                                                          str(ROOT / "config.example.json")],
        "build.py -e": [sys.executable, str(ROOT / "build.py"), "-e", "--config-file",
                        str(ROOT / "config.example.json")],
        "python -c pass": [sys.executable, "-c", "pass"],
        "import pydantic": [sys.executable, "-c", "import pydantic; pydantic.BaseModel"],
        "import loon_supervisor.spec.prepare": [sys.executable, "-c",
                                           "import loon_supervisor.spec.prepare"],
    }
    out = {}
    for name, cmd in cases.items():
        full = name.endswith("(full validation)")
        timed(cmd, env, project)  # warm the page cache and .pyc files
        times = []
        for _ in range(runs):
            if full:  # forget the last validation, as a changed config would
                for stamp in (project / ".build-files").glob(".validated.*"):
                    stamp.unlink()
            times.append(timed(cmd, env, project))
        out[name] = {"runs": times, "median": median(times), "min": min(times)}
        say(f"validation {name}: median {median(times):.3f} s")
    if not (project / ".build-files" / ".env").exists():
        raise RuntimeError("build.py -e did not write the env file into LOON_PROJECT_ROOT")
    return out
