"""Build progress: Step n/m as a bar on a terminal and as out.log lines."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from loon_supervisor.sinks.build_progress import BuildProgress, parse_step
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog


def test_parse_step() -> None:
    assert parse_step("Step 26/40 : RUN apt-get install -y nginx") == (
        26, 40, "RUN apt-get install -y nginx")
    assert parse_step(" ---> Using cache") is None


def test_bar_and_out_log_lines(tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    events = EventLog(tmp_path / "out.log")
    try:
        with BuildProgress(Reporter(events, None), "loon:latest", console) as progress:
            progress.step("Step 1/4 : FROM debian:bookworm-slim")
            progress.step(" ---> Using cache")
            progress.step("Step 3/4 : RUN apt-get install -y mariadb-server")
            progress.progress.refresh()  # type: ignore[union-attr]
            drawn = screen.getvalue()
            progress.done()
    finally:
        events.close()
    assert "building loon:latest" in drawn and "2/4" in drawn
    assert "RUN apt-get install -y mariadb-server" in drawn and "0:00:0" in drawn
    lines = (tmp_path / "out.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "build progress: step 1/4, 0s elapsed: FROM debian:bookworm-slim",
        "build progress: step 3/4, 0s elapsed: RUN apt-get install -y mariadb-server",
        "build progress: done in 0s"]
