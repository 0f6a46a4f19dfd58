"""One check's outcome and how a list of them is shown (table or JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass(frozen=True)
class Verdict:
    """``warn``: the service is absent by the build's choice (MinIO, the client), said with
    its consequence; ``skip``: not applicable to this configuration. Only ``fail`` fails."""

    service: str
    check: str
    result: str
    detail: str = ""
    hint: str = ""


class CheckFailed(Exception):
    """Raised by a check: the message is the detail, ``hint`` the fix."""

    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.hint = hint


def exit_code(verdicts: list[Verdict]) -> int:
    return 1 if any(v.result == FAIL for v in verdicts) else 0


def print_table(verdicts: list[Verdict], console: Console) -> None:
    table = Table("service", "check", "result", "hint")
    style = {PASS: "green", FAIL: "bold red", WARN: "yellow", SKIP: "dim"}
    for v in verdicts:
        result = f"[{style[v.result]}]{v.result.upper()}[/]"
        detail = f" ({v.detail})" if v.detail else ""
        table.add_row(v.service, v.check, result + _escape(detail), _escape(v.hint))
    console.print(table)
    failed = [v for v in verdicts if v.result == FAIL]
    console.print(f"{len(verdicts) - len(failed)} of {len(verdicts)} checks did not fail"
                  + (f"; FAILED: {', '.join(f'{v.service}/{v.check}' for v in failed)}"
                     if failed else ""), markup=False, highlight=False)


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def to_json(verdicts: list[Verdict]) -> str:
    return json.dumps({"ok": exit_code(verdicts) == 0,
                       "checks": [asdict(v) for v in verdicts]}, indent=2)
