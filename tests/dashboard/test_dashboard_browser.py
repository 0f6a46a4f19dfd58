"""The dashboard in a real browser: Debian's Chromium driven by Selenium through Debian's
chromedriver (scripts/ensure-browser.sh installs both; nothing is downloaded), against
``loon dashboard`` serving a real deployment on the engine.

Screenshots of each page go to test-artifacts/dashboard/ (CI keeps them as artefacts; one is
committed as docs/dashboard-overview.png for the README)."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT
from tests.dashboard.support import Dashboard, start_dashboard
from tests.dashboard.test_dashboard_engine import STATUS, services_of_status
from tests.engine_helpers import Deployment, make_deployment
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine]

ARTIFACTS = Path(os.environ.get("LOON_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
WAIT_S = 10.0  # a liveness bound for the browser, not a performance claim (BENCHMARKS.md)


@pytest.fixture(scope="module")
def deployment(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = make_deployment(tmp_path_factory.mktemp("dash"),
                        {"alpha": ticker("alpha", "1"), "beta": "sleep 100000"},
                        status_command="sh /app/status.sh", extra_files={"status.sh": STATUS})
    try:
        done = d.run("-d", timeout=180)
        assert done.returncode == 0, done.stdout
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def dashboard(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Dashboard]:
    dash = start_dashboard(tmp_path_factory.mktemp("dashsrv"), deployment.env(),
                           deployment.config, "--max-auth-failures", "3")
    yield dash
    stderr = dash.stop()
    assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-browser.sh")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"no browser for the dashboard tests: {done.stderr}")
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield browser
    finally:
        browser.quit()


def shot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait(driver: WebDriver, condition, timeout: float = WAIT_S):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition)


def sign_in(driver: WebDriver, dash: Dashboard, password: str | None = None,
            name: str = "ada") -> None:
    driver.get(f"{dash.url}/dashboard/login")
    if not driver.current_url.endswith("/dashboard/login"):
        return  # still signed in: the login page sends a session to the overview
    driver.find_element(By.ID, "name").clear()
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password or dash.password)
    button = driver.find_element(By.ID, "signin")
    button.click()
    wait(driver, staleness_of(button))  # the answer's page has replaced the form


def sign_out(driver: WebDriver, dash: Dashboard) -> None:
    driver.get(f"{dash.url}/dashboard/")
    buttons = driver.find_elements(By.CSS_SELECTOR, "form.signout button")
    if buttons:
        buttons[0].click()
        wait(driver, staleness_of(buttons[0]))
        wait(driver, lambda d: d.current_url.endswith("/dashboard/login"))


def csp_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


def in_container(d: Deployment, text: str) -> None:
    """Append a line to alpha's log inside the container (as the service would)."""
    subprocess.run(["docker", "exec", d.name, "sh", "-c",
                    f"printf '%s\\n' '{text}' >> /var/log/loon/alpha.log"], check=True,
                   timeout=30)


def test_sign_in_and_out(driver: WebDriver, dashboard: Dashboard) -> None:
    driver.get(f"{dashboard.url}/dashboard/")
    assert driver.current_url.endswith("/dashboard/login")
    shot(driver, "login")
    sign_in(driver, dashboard)
    wait(driver, lambda d: d.current_url.endswith("/dashboard/"))
    assert "ada (admin)" in driver.find_element(By.TAG_NAME, "header").text
    # the cookie is HttpOnly: the page's scripts cannot read it
    assert driver.execute_script("return document.cookie") == ""
    sign_out(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/")
    assert driver.current_url.endswith("/dashboard/login")
    assert csp_errors(driver) == []


def test_a_wrong_password_is_locked_out_like_the_deploy_server(
        driver: WebDriver, dashboard: Dashboard) -> None:
    for _ in range(3):
        sign_in(driver, dashboard, password="wrong-" + uuid.uuid4().hex * 2)
        assert driver.find_element(By.ID, "login-error").text == "wrong password"
    sign_in(driver, dashboard, password="wrong-" + uuid.uuid4().hex * 2)
    error = driver.find_element(By.ID, "login-error").text
    assert error.startswith("too many failed sign-ins from your address"), error
    shot(driver, "login-locked-out")
    assert driver.current_url.endswith("/dashboard/login")


def test_the_services_table_matches_loon_status(driver: WebDriver, dashboard: Dashboard,
                                                deployment: Deployment) -> None:
    sign_in(driver, dashboard)
    wait(driver, lambda d: d.current_url.endswith("/dashboard/"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#services tbody tr")
    shown = {r.find_element(By.CSS_SELECTOR, "th.svc").text:
             r.find_element(By.CSS_SELECTOR, "td.state").text for r in rows}
    status = deployment.loon("status", "--config-file", str(deployment.config))
    assert status.returncode == 0, status.stdout
    assert shown == services_of_status(status.stdout) == {"alpha": "RUNNING",
                                                          "beta": "RUNNING"}
    assert deployment.name in driver.find_element(By.TAG_NAME, "h1").text
    shot(driver, "overview")


def test_a_line_written_in_the_container_appears_live_and_the_filter_hides_others(
        driver: WebDriver, dashboard: Dashboard, deployment: Deployment) -> None:
    sign_in(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/logs?service=alpha")
    wait(driver, lambda d: d.find_element(By.ID, "conn").text == "live")
    mark = f"mark-{uuid.uuid4().hex}"
    start = time.monotonic()
    in_container(deployment, mark)
    wait(driver, lambda d: mark in d.find_element(By.ID, "log").text)
    latency = time.monotonic() - start
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / "latency.txt").open("a") as fh:  # reported, never asserted
        fh.write(f"container write -> live view: {latency * 1000:.0f} ms\n")
    in_container(deployment, "banana split")
    wait(driver, lambda d: "banana split" in d.find_element(By.ID, "log").text)
    driver.find_element(By.ID, "filter").send_keys("banana")
    lines = driver.find_elements(By.CSS_SELECTOR, "#log .line")
    visible = [ln.text for ln in lines if ln.is_displayed()]
    assert visible == ["banana split"]
    assert any(mark in ln.get_attribute("textContent") for ln in lines if not ln.is_displayed())
    shot(driver, "logs-filtered")
    driver.find_element(By.ID, "filter").clear()
    driver.find_element(By.ID, "filter").send_keys(" ")  # input event, matches nothing
    assert csp_errors(driver) == []


def test_markup_in_a_log_line_shows_as_text(driver: WebDriver, dashboard: Dashboard,
                                            deployment: Deployment) -> None:
    sign_in(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/logs?service=alpha")
    wait(driver, lambda d: d.find_element(By.ID, "conn").text == "live")
    evil = '<script>document.title="pwned"</script><b id="bold">bold</b><img src=x>'
    in_container(deployment, evil)
    wait(driver, lambda d: evil in d.find_element(By.ID, "log").text)
    assert driver.title != "pwned"
    assert driver.find_elements(By.CSS_SELECTOR, "#log b, #log img, #log script") == []
    shot(driver, "logs-markup-as-text")
    # the server-rendered last line on the overview is escaped too
    driver.get(f"{dashboard.url}/dashboard/")
    assert driver.find_elements(By.ID, "bold") == []


def test_an_action_without_the_csrf_token_is_refused(driver: WebDriver,
                                                     dashboard: Dashboard) -> None:
    sign_in(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/confirm/restart/beta")
    assert "Restart service beta?" in driver.find_element(By.TAG_NAME, "h1").text
    shot(driver, "confirm")
    driver.execute_script("document.querySelector('input[name=csrf]').remove()")
    button = driver.find_element(By.ID, "confirm")
    button.click()
    wait(driver, staleness_of(button))
    wait(driver, lambda d: "CSRF token is missing or wrong" in d.find_element(
        By.TAG_NAME, "body").text)


def test_doctor_and_deploy_pages_render(driver: WebDriver, dashboard: Dashboard) -> None:
    sign_in(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/doctor")
    driver.find_element(By.ID, "run-doctor").click()
    wait(driver, lambda d: d.find_elements(By.ID, "doctor-summary")
         or d.find_elements(By.CSS_SELECTOR, "p.error"), timeout=120)
    shot(driver, "doctor")
    driver.get(f"{dashboard.url}/dashboard/deploys")
    assert re.search(r"No deploy yet|Deploy", driver.find_element(By.TAG_NAME, "main").text)
    shot(driver, "deploys")


def test_the_versions_page_lists_what_loon_versions_lists(
        driver: WebDriver, dashboard: Dashboard, deployment: Deployment) -> None:
    sign_in(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/versions")
    rows = driver.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    listed = deployment.loon("versions", "--config-file", str(deployment.config))
    assert listed.returncode == 0, listed.stderr
    tags = [ln.split()[1] for ln in listed.stdout.splitlines()[1:]
            if ln.strip() and not ln.startswith("* the")]
    shown = [r.find_element(By.TAG_NAME, "th").text.replace(" (current)", "") for r in rows]
    assert tags and sorted(shown) == sorted(tags), listed.stdout
    current = [r for r in rows if "(current)" in r.text]
    assert len(current) == 1 and "Roll back" not in current[0].text
    shot(driver, "versions")
    # a rollback to a tag that is not one of this deployment's versions is refused
    driver.get(f"{dashboard.url}/dashboard/confirm/redeploy")
    driver.execute_script(
        "var f = document.querySelector('form[action=\\'/dashboard/actions/redeploy\\']');"
        "f.action = '/dashboard/actions/rollback';"
        "var i = document.createElement('input'); i.type = 'hidden'; i.name = 'tag';"
        "i.value = 'busybox:latest'; f.appendChild(i);")
    button = driver.find_element(By.ID, "confirm")
    button.click()
    wait(driver, staleness_of(button))
    assert "no such version of this deployment" in driver.find_element(By.ID, "result").text


def test_keyboard_only_sign_in_and_a_phone_sized_window(driver: WebDriver,
                                                        dashboard: Dashboard) -> None:
    sign_out(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/login")
    name = driver.find_element(By.ID, "name")
    name.send_keys("kim" + Keys.TAB + dashboard.password + Keys.TAB)
    focused = driver.switch_to.active_element
    assert focused.get_attribute("id") == "signin"
    focused.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.current_url.endswith("/dashboard/"))
    try:
        driver.set_window_size(390, 844)
        for page in ("/dashboard/", "/dashboard/logs?service=alpha", "/dashboard/deploys"):
            driver.get(f"{dashboard.url}{page}")
            # wide tables scroll inside their box; the page itself never scrolls sideways
            assert driver.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1"), page
        driver.get(f"{dashboard.url}/dashboard/")
        shot(driver, "overview-phone")
    finally:
        driver.set_window_size(1200, 800)
        sign_out(driver, dashboard)  # the next test signs in as ada


def test_a_redeploy_started_from_the_page_shows_its_phases_and_ends(
        driver: WebDriver, dashboard: Dashboard, deployment: Deployment) -> None:
    """Last in this module: it replaces the deployment's container (a real up --replace)."""
    sign_in(driver, dashboard)
    driver.get(f"{dashboard.url}/dashboard/deploys")
    driver.find_element(By.ID, "redeploy").click()
    button = driver.find_element(By.ID, "confirm")
    button.click()
    wait(driver, staleness_of(button))
    assert re.search(r"/dashboard/deploys/\d{8}T\d{6}Z-[0-9a-f]{8}$", driver.current_url)
    deploy_id = driver.current_url.rsplit("/", 1)[1]

    def status(d: WebDriver) -> str | None:
        text = d.find_element(By.ID, "deploy-status").text  # the page reloads every 2 s
        return text if text in ("succeeded", "failed", "cancelled") else None

    done = WebDriverWait(driver, 240, poll_frequency=0.5,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException)).until(status)
    shot(driver, "deploy")
    log = driver.find_element(By.ID, "deploy-log").text
    assert done == "succeeded", log
    assert "building" in driver.find_element(By.ID, "phases").text
    assert "$ loon up -d --replace" in log
    out_logs = list((deployment.project / "logs").glob("logs_*/out.log"))
    assert any(f"dashboard: redeploy {deploy_id} started by ada (admin, from 127.0.0.1)"
               in p.read_text() for p in out_logs)
