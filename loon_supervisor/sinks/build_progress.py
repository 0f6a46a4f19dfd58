"""How far the image build is: ``Step n/m`` from the engine's output as a progress bar on the
terminal (step n of m, elapsed time, the current step's command) and as out.log lines."""

from __future__ import annotations

import re
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loon_supervisor.sinks.reporter import Reporter

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
COMMAND_WIDTH = 60


def parse_step(line: str) -> tuple[int, int, str] | None:
    """``(n, m, command)`` of a ``Step n/m : command`` line, else None."""
    match = STEP.match(line.strip())
    if match is None:
        return None
    return int(match[1]), int(match[2]), match[3]


def elapsed_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def short(command: str, width: int = COMMAND_WIDTH) -> str:
    command = " ".join(command.split())
    return command if len(command) <= width else command[: width - 1] + "…"


class BuildProgress:
    """A context manager: the bar lives exactly as long as the build (closed on every path).

    :param console: the terminal, or None when nothing is drawn (verbose output, tests).
    :param plain: no bar, but each step's line on the terminal too (``build.py -s``, for
        terminals and CI logs where a redrawn bar is noise).
    """

    def __init__(self, say: Reporter, tag: str, console: Console | None,
                 plain: bool = False) -> None:
        self.say = say
        self.plain = plain
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn(f"building {tag}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.description}"),
            console=console, transient=True) if console is not None else None
        self.task = self.progress.add_task("", total=None) if self.progress else None

    def __enter__(self) -> BuildProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def step(self, line: str) -> None:
        """Record the start of step n (n - 1 are done) on the bar and in out.log."""
        parsed = parse_step(line)
        if parsed is None:
            return
        n, m, command = parsed
        self.say(f"build progress: step {n}/{m}, "
                 f"{elapsed_text(time.monotonic() - self.started)} elapsed: {short(command)}",
                 terminal=self.plain)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=n - 1, total=m,
                                 description=short(command))

    def done(self) -> None:
        """All steps finished: a full bar and one out.log line with the total time."""
        took = elapsed_text(time.monotonic() - self.started)
        self.say(f"build progress: done in {took}", terminal=self.plain)
        if self.progress is not None and self.task is not None:
            total = self.progress.tasks[0].total
            self.progress.update(self.task, completed=total or 0, description="done")
