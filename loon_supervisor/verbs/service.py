"""``loon service install|uninstall|print``: a follower for the deployment at boot.

The container comes back by itself after a reboot (restart policy ``unless-stopped``); its
logs need a process that follows it. ``install`` writes a systemd unit whose process is
``loon attach --wait`` (see :mod:`loon_supervisor.lifecycle.supervised`): it waits for the
engine and the container, follows it into the recorded session from the saved positions,
holds the deployment's lock (so ``loon down`` and ``loon status`` see it), and is restarted
by systemd if it fails. Stopping the unit (or a shutdown) detaches it; the container runs
on. Without systemd, the same command can be started at boot by any init system.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from loon_supervisor.paths import project_root

UNIT_DIR = Path("/etc/systemd/system")
# Passed on to the unit when set at install time: which engine the follower talks to.
ENGINE_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


def unit_name(name: str) -> str:
    return f"loon-{name}.service"


def command(name: str, project: Path) -> list[str]:
    """The follower's command line (what the unit runs)."""
    return [sys.executable, "-m", "loon_supervisor", "--project-dir", str(project),
            "attach", "--name", name, "--wait"]


def _arg(text: str) -> str:
    """One word of a unit file's command line or assignment: ``%`` doubled (specifiers), and
    quoted when it holds blanks, quotes or backslashes."""
    text = text.replace("%", "%%")
    if any(c.isspace() or c in "\"'\\;" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def unit_text(name: str, project: Path, env: dict[str, str] | None = None) -> str:
    """The systemd unit of deployment ``name`` in ``project``."""
    engine_env = dict(os.environ) if env is None else env
    lines = [
        "[Unit]",
        f"Description=Loon deployment {name}: follows its container and writes its logs",
        "Documentation=https://docs.docker.com/config/containers/start-containers-"
        "automatically/",
        "Wants=docker.service",
        "After=docker.service network-online.target",
        "",
        "[Service]",
        "Type=simple",
        # A path setting: taken as it is (blanks too), only specifiers escaped.
        f"WorkingDirectory={str(project).replace('%', '%%')}",
        f"Environment={_arg(f'LOON_PROJECT_ROOT={project}')}",
        *(f"Environment={_arg(f'{k}={engine_env[k]}')}" for k in ENGINE_ENV
          if engine_env.get(k)),
        "ExecStart=" + " ".join(_arg(a) for a in command(name, project)),
        "# SIGTERM (systemctl stop, a shutdown) detaches the follower; the container runs on.",
        "# `loon down` stops the deployment through this process.",
        "Restart=always",
        "RestartSec=2",
        "TimeoutStopSec=60",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _systemctl(console: Console, *args: str) -> bool:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        console.print(f"`systemctl {' '.join(args)}` failed: "
                      f"{(result.stderr or result.stdout).strip()}", markup=False)
    return result.returncode == 0


def without_systemd(name: str, project: Path) -> str:
    """How to run the same follower at boot without systemd."""
    cmd = shlex.join(command(name, project))
    return (f"Without systemd, start this at boot (after the Docker engine) and again if it "
            f"exits:\n  {cmd}\nfor example from cron: @reboot sh -c 'while :; do {cmd} "
            f">> {shlex.quote(str(project / 'logs' / 'service.out'))} 2>&1; sleep 2; done'")


def install(name: str, unit_dir: Path, console: Console, start: bool) -> int:
    project = project_root()
    path = unit_dir / unit_name(name)
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(unit_text(name, project))
        path.chmod(0o644)
    except OSError as exc:
        console.print(f"cannot write {path}: {exc.strerror or exc}; run this as root, or "
                      "pass --unit-dir", markup=False)
        return 1
    console.print(f"wrote {path}", markup=False)
    if unit_dir == UNIT_DIR and systemd_running() and start:
        if not (_systemctl(console, "daemon-reload")
                and _systemctl(console, "enable", "--now", unit_name(name))):
            return 1
        console.print(f"enabled and started {unit_name(name)}: it follows deployment '{name}' "
                      "now and after every boot (`systemctl status "
                      f"{unit_name(name)}`, `journalctl -u {unit_name(name)}`)", markup=False)
        return 0
    if unit_dir == UNIT_DIR and systemd_running():
        console.print(f"enable it with: systemctl daemon-reload && systemctl enable --now "
                      f"{unit_name(name)}", markup=False)
    elif unit_dir == UNIT_DIR:
        console.print("systemd is not running on this machine, so the unit was not enabled.",
                      markup=False)
        console.print(without_systemd(name, project), markup=False, highlight=False)
    else:
        console.print(f"copy it to {UNIT_DIR}/ and run: systemctl daemon-reload && "
                      f"systemctl enable --now {unit_name(name)}", markup=False)
    return 0


def uninstall(name: str, unit_dir: Path, console: Console) -> int:
    path = unit_dir / unit_name(name)
    if unit_dir == UNIT_DIR and systemd_running():
        # Stopping the unit detaches its follower; the container runs on.
        _systemctl(console, "disable", "--now", unit_name(name))
    try:
        path.unlink()
    except FileNotFoundError:
        console.print(f"no unit {path}: nothing to remove", markup=False)
        return 0
    except OSError as exc:
        console.print(f"cannot remove {path}: {exc.strerror or exc}; run this as root",
                      markup=False)
        return 1
    if unit_dir == UNIT_DIR and systemd_running():
        _systemctl(console, "daemon-reload")
    console.print(f"removed {path}; the deployment keeps running (`loon down` stops it, "
                  "`loon attach` follows it from this shell)", markup=False)
    return 0


@dataclass(frozen=True)
class ServiceOptions:
    """``loon service``: install, uninstall or print the unit of deployment ``name``."""

    action: str
    name: str
    unit_dir: Path | None = None
    start: bool = True


def run(opts: ServiceOptions) -> int:
    action, name, unit_dir, start = opts.action, opts.name, opts.unit_dir, opts.start
    console = Console(soft_wrap=True)
    where = unit_dir or UNIT_DIR
    if action == "install":
        return install(name, where, console, start)
    if action == "uninstall":
        return uninstall(name, where, console)
    print(unit_text(name, project_root()), end="")
    return 0
