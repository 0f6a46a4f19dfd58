"""The dashboard against a real deployment on the engine (server side; the browser tests
are in test_dashboard_browser.py)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import anyio
import pytest

from tests.dashboard.support import browser, sign_in, start_dashboard
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

STATUS = ("for s in alpha beta; do if [ -e /tmp/$s.dead ]; then echo \"$s EXITED exit 1\"; "
          "else echo \"$s RUNNING pid 1\"; fi; done\n")


def services_of_page(text: str) -> dict[str, str]:
    rows = re.findall(r'<tr data-service="([^"]+)">.*?<td class="state[^"]*">([^<]*)</td>',
                      text, re.S)
    return {html.unescape(n): html.unescape(s) for n, s in rows}


def services_of_status(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line)]
        if len(cells) >= 4 and cells[1] in ("alpha", "beta"):
            out[cells[1]] = cells[2]
    return out


def test_the_services_table_matches_loon_status(deploy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.2"), "beta": "sleep 100000"},
               status_command="sh /app/status.sh", extra_files={"status.sh": STATUS})
    assert d.run("-d", timeout=120).returncode == 0
    dash = start_dashboard(tmp_path, d.env(), d.config)
    try:
        async def page() -> str:
            async with browser() as client:
                async with await sign_in(client, dash.url, dash.password) as r:
                    assert r.status == 303
                async with client.get(f"{dash.url}/dashboard/") as r:
                    assert r.status == 200
                    return await r.text()

        text = anyio.run(page)
    finally:
        stderr = dash.stop()
    status = d.loon("status", "--config-file", str(d.config))
    assert status.returncode == 0, status.stdout
    want = services_of_status(status.stdout)
    assert want == {"alpha": "RUNNING", "beta": "RUNNING"}, status.stdout
    assert services_of_page(text) == want, text
    assert d.name in text and "healthy" in text
    assert "Traceback" not in stderr
