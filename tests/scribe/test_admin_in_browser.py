"""The admin and /v1/docs, styled, in a real headless Chromium under a real daphne.

DEBUG is off, as in production: the stylesheets must come from the web process itself
(WhiteNoise), with no collectstatic run. Screenshots land in the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, REPO_ROOT
from tests.e2e.stack import daphne_command, free_port

PASSWORD = "browser-test-only-7c1e"
SETUP = f"""
from django.contrib.auth.models import User
from accounts.services import api_key_create
from glossary.models import Glossary, Term
from transcription.models import ServiceSettings
User.objects.create_superuser("operator", "op@example.com", "{PASSWORD}")
key, _ = api_key_create(owner_name="billing-service", scopes=["transcribe", "stream"])
glossary = Glossary.objects.create(owner=key.owner, name="ML infra")
Term.objects.create(glossary=glossary, canonical="vLLM", variants=["브이엘엘엠"])
ServiceSettings.current()
print(glossary.pk)
"""


def browser_tools() -> tuple[str, str]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "chromium and chromium-driver (Debian packages) are not installed"
    if IN_CI:
        pytest.fail(f"{message}; .ci/run installs them")
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A migrated SQLite database with an operator, a key and a glossary; daphne on it."""
    tmp = tmp_path_factory.mktemp("browser")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        SCRIBE_SQLITE_PATH=str(tmp / "db.sqlite3"),
        SCRIBE_STATIC_ROOT=str(tmp / "static"),  # empty: nothing collected
        SECRET_KEY="browser-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-012345",
        DEBUG="false",
    )

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--no-input", "--verbosity", "0")
    glossary_id = manage("shell", "-c", SETUP).strip().splitlines()[-1]
    port = free_port()
    log = (tmp / "daphne.log").open("w")
    process = subprocess.Popen(
        daphne_command(port),
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # localhost, not 127.0.0.1: browsers keep Secure cookies (DEBUG off) only there on http.
    base_url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                    break
            assert process.poll() is None, (tmp / "daphne.log").read_text()
            time.sleep(0.2)
        yield {"url": base_url, "glossary_id": glossary_id, "shots": tmp}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def browser(server):
    chromium, driver_path = browser_tools()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        driver.get(f"{server['url']}/admin/login/")
        driver.find_element("name", "username").send_keys("operator")
        driver.find_element("name", "password").send_keys(PASSWORD)
        driver.find_element("css selector", "input[type=submit]").click()
        # The click does not wait for the login to land: a page asked for before the
        # session cookie is set would be answered with the login page.
        deadline = time.monotonic() + 30
        while "/login/" in driver.current_url and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "/login/" not in driver.current_url, "the operator's login did not complete"
        yield driver
    finally:
        driver.quit()


# Every stylesheet of the page was fetched and parsed: a 404 leaves a sheet without rules.
STYLESHEETS = """
return Array.from(document.querySelectorAll('link[rel=stylesheet]')).map(link => {
  let rules = -1;
  try { rules = link.sheet ? link.sheet.cssRules.length : -1; } catch (e) { rules = -2; }
  return [link.getAttribute('href'), rules];
});
"""


def assert_styled_admin_page(driver, url: str, shot: Path, *, heading: str) -> None:
    driver.get(url)
    driver.save_screenshot(str(shot))

    sheets = driver.execute_script(STYLESHEETS)
    header = driver.execute_script(
        "return getComputedStyle(document.getElementById('header')).backgroundColor"
    )
    font = driver.execute_script("return getComputedStyle(document.body).fontFamily")

    assert heading in driver.find_element("css selector", "#content h1").text
    assert any("admin/css/base.css" in href for href, _ in sheets), sheets
    assert all(rules > 0 for _, rules in sheets), sheets
    # Unstyled, the header is transparent and the body in the browser's default serif.
    assert header not in ("rgba(0, 0, 0, 0)", "transparent"), header
    assert "serif" not in font.replace("sans-serif", ""), font
    assert shot.stat().st_size > 10_000


def test_the_key_list_is_styled(server, browser):
    assert_styled_admin_page(
        browser,
        f"{server['url']}/admin/accounts/apikey/",
        server["shots"] / "api-keys.png",
        heading="API key",
    )
    row = browser.find_element("css selector", "#result_list tbody tr").text
    assert "billing-service" in row and "stream, transcribe" in row


def test_a_glossary_is_styled(server, browser):
    assert_styled_admin_page(
        browser,
        f"{server['url']}/admin/glossary/glossary/{server['glossary_id']}/change/",
        server["shots"] / "glossary.png",
        heading="glossary",
    )
    assert "vLLM" in browser.page_source


def test_the_service_settings_are_styled(server, browser):
    assert_styled_admin_page(
        browser,
        f"{server['url']}/admin/transcription/servicesettings/1/change/",
        server["shots"] / "service-settings.png",
        heading="service settings",
    )


def test_the_api_docs_load_their_script_and_stylesheet(server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server['url']}/v1/docs")
    # Swagger UI's script, a static file, renders the schema's title into the page.
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements("css selector", ".swagger-ui .info .title")
    )
    browser.save_screenshot(str(server["shots"] / "api-docs.png"))
    sheets = browser.execute_script(STYLESHEETS)

    assert any("swagger-ui" in href for href, _ in sheets), sheets
    assert all(rules > 0 for _, rules in sheets), sheets
    assert "scribe" in browser.find_element("css selector", ".swagger-ui .info .title").text


def test_static_files_are_served_with_caching_headers(server):
    response = httpx.get(f"{server['url']}/static/admin/css/base.css", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "max-age" in response.headers.get("cache-control", "")
