"""Tiny test images that honour the image contract: busybox plus GNU tail, FROM scratch."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

GNU_TAIL_FILES = {
    "/usr/bin/tail": "usr/bin/tail",
    "/lib/x86_64-linux-gnu/libc.so.6": "lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/ld-linux-x86-64.so.2": "lib64/ld-linux-x86-64.so.2",
}


def busybox_path() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(p).exists():
            return p
    raise RuntimeError("busybox-static is not installed (scripts/ensure-docker.sh installs it)")


def write_context(ctx: Path, services: dict[str, str], *, status_command: str | None = None,
                  gnu_tail: bool = True, log_dir: str = "/var/log/loon",
                  main: str | None = None, labels: bool = True,
                  extra_files: dict[str, str] | None = None, build_step: str | None = None,
                  extra_labels: dict[str, str] | None = None) -> Path:
    """A build context whose container runs each ``services[name]`` shell snippet with its
    output appended to ``<log_dir>/<name>.log``."""
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox_path(), ctx / "busybox")
    copies = []
    if gnu_tail:
        for src, dst in GNU_TAIL_FILES.items():
            target = ctx / "gnu" / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(src).resolve(), target)
        copies.append("COPY gnu/ /")
    lines = ["#!/bin/sh", f"mkdir -p {log_dir} /tmp", "pids="]
    for name, snippet in services.items():
        (ctx / f"svc-{name}.sh").write_text(f"#!/bin/sh\n{snippet}\n")
        # run-time selection (org.loon.run-services-env): only the services named there
        lines.append(f'case ",${{LOON_RUN_SERVICES:-{name}}}," in *",{name},"*)')
        lines.append(f"sh /app/svc-{name}.sh >> {log_dir}/{name}.log 2>&1 &")
        lines.append('pids="$pids $!" ;; esac')
    # Like supervisord: on TERM, pass it to every service, wait for them, then exit.
    lines.append("trap 'kill -TERM $pids; wait; exit 0' TERM")
    lines.append(main or "echo container up; while :; do sleep 1 & wait $!; done")
    for fname, text in (extra_files or {}).items():
        (ctx / fname).write_text(text)
    (ctx / "run.sh").write_text("\n".join(lines) + "\n")
    label_lines = []
    if labels:
        label_lines.append(f'LABEL org.loon.services="{",".join(services)}" '
                           f'org.loon.log-dir="{log_dir}" '
                           'org.loon.run-services-env="LOON_RUN_SERVICES"')
        if status_command:
            label_lines.append(f"LABEL org.loon.status-command='{status_command}'")
        for key, value in (extra_labels or {}).items():
            label_lines.append(f"LABEL {key}='{value}'")
    (ctx / "Dockerfile").write_text(textwrap.dedent("""\
        FROM scratch
        COPY busybox /bin/busybox
        {copies}
        RUN ["/bin/busybox", "--install", "-s", "/bin"]
        {step}
        COPY run.sh svc-*.sh {extra}/app/
        {labels}
        CMD ["/bin/sh", "/app/run.sh"]
        """).format(copies="\n".join(copies), labels="\n".join(label_lines),
                 step=f"RUN {build_step}" if build_step else "",
                 extra="".join(f"{f} " for f in (extra_files or {}))))
    (ctx / ".dockerignore").write_text("ignored-*\n")
    return ctx
