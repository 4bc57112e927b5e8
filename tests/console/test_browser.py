"""The console in a real browser: Debian's chromium, headless, driven by selenium.

Serves the real app, sends a real webhook, signs in, opens the event's timeline, approves
a job that waits for approval, adds and ends a pause, and sees a hostile label as text.
Screenshots of the main pages are saved under the test's temp dir; with CONSOLE_SCREENSHOT=1
they also replace the docs site's (docs/console/*.png, shown on docs/how-to/console.md).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.admin import (
    Calls,
    make_settings,
    serve_in_thread,
    webhook_headers,
    write_rules,
)
from tests.support.payloads import alert, payload, with_service
from tests.support.procs import ROOT, require_binary

ADMIN = "browser-admin-token-0123"
HOSTILE = "<script>alert(1)</script>"
PAGES = ("activity", "event", "waiting", "pauses", "rules")  # the screenshots taken
RULES = """\
rules:
  - name: fix-it
    matchers: ['alertname="TestBroken"']
    handler: test.fix
    target: 'svc/{{ labels.service }}'
  - name: gated
    matchers: ['alertname="Gated"']
    handler: test.fix
    target: 'gated/{{ labels.service }}'
    approval: {required: true, timeout: 30m, approvers: [U0ALICE]}
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = require_binary("chromium", "/usr/bin/chromium")
    driver_path = require_binary("chromedriver", "/usr/bin/chromedriver")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def fire(url: str, labels: dict[str, str], name: str = "TestBroken") -> str:
    request = urllib.request.Request(
        f"{url}/webhooks/alertmanager",
        data=json.dumps(payload(alert(name, **with_service(labels)))).encode(),
        headers={**webhook_headers(), "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        event_id: str = json.load(response)["event_ids"][0]
    return event_id


def wait_for_text(driver: WebDriver, text: str, url: str, within: float = 20.0) -> None:
    """Reload ``url`` until the page shows ``text`` (the worker runs in the background)."""

    def shown(d: WebDriver) -> bool:
        d.get(url)
        return text in d.find_element(By.TAG_NAME, "main").text

    WebDriverWait(driver, within, poll_frequency=0.3).until(shown)


def test_the_console_in_a_real_browser(browser: WebDriver, tmp_path: Path) -> None:
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", RULES), admin_token=ADMIN, ui=True, defer_interval=0.05
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with serve_in_thread(settings, Calls()) as served:
        url = served.url
        event_id = fire(url, {"service": "api", "note": HOSTILE})
        gated_id = fire(url, {"service": "db"}, name="Gated")

        # sign in
        browser.get(f"{url}/ui/")
        assert browser.current_url.endswith("/ui/signin")
        browser.find_element(By.ID, "token").send_keys(ADMIN)
        browser.find_element(By.CSS_SELECTOR, "form.signin button").click()
        WebDriverWait(browser, 10).until(expected_conditions.url_to_be(f"{url}/ui/"))
        assert "admin" in browser.find_element(By.CSS_SELECTOR, "header .who").text

        # the activity lists the event; its timeline shows the hostile label as text
        wait_for_text(browser, event_id, f"{url}/ui/")
        browser.save_screenshot(str(shots / "activity.png"))
        browser.find_element(By.LINK_TEXT, event_id).click()
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "Timeline" in main and "succeeded" in main
        assert HOSTILE in main  # shown as text, not run
        assert browser.execute_script("return document.querySelectorAll('main script').length") == 0
        assert browser.find_element(By.LINK_TEXT, "Prometheus").get_attribute("href") == (
            "http://prometheus.test:9090/graph?g0.expr=up"  # the alert's generatorURL (one builder now)
        )
        browser.save_screenshot(str(shots / "event.png"))

        # approve the job waiting for approval
        wait_for_text(browser, "awaiting_approval", f"{url}/ui/waiting")
        browser.save_screenshot(str(shots / "waiting.png"))
        row = browser.find_element(By.XPATH, f"//tr[.//a[text()='{gated_id}']]")
        # issue 25: the plan and who may decide, never a bare id; times in UTC, local on hover
        assert "Approvers: Slack user U0ALICE" in row.text and "Plan:" in row.text
        when = row.find_element(By.TAG_NAME, "time")
        assert when.text.endswith(" UTC") and (when.get_attribute("title") or "").startswith("local: ")
        row.find_element(By.NAME, "note").send_keys("looks right")
        row.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
        WebDriverWait(browser, 10).until(expected_conditions.url_to_be(f"{url}/ui/waiting"))
        wait_for_text(browser, "approved by admin: looks right", f"{url}/ui/events/{gated_id}")
        assert "succeeded" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text

        # add a pause, then end it early
        browser.get(f"{url}/ui/pauses")
        browser.find_element(By.NAME, "matchers").send_keys('service="api"')
        browser.find_element(By.NAME, "reason").send_keys("browser test deploy")
        browser.find_element(By.CSS_SELECTOR, "form.action button").click()
        # The form posts from /ui/pauses back to /ui/pauses: the URL alone cannot tell the new
        # page from the old, so wait for the new page's text (the old one may go stale meanwhile).
        WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: "browser test deploy" in d.find_element(By.TAG_NAME, "main").text
        )
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "browser test deploy" in main and 'service="api"' in main
        browser.save_screenshot(str(shots / "pauses.png"))
        browser.find_element(By.XPATH, "//button[text()='End now']").click()
        WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: "browser test deploy" not in d.find_element(By.TAG_NAME, "main").text
        )

        browser.get(f"{url}/ui/rules")
        assert "gated" in browser.find_element(By.TAG_NAME, "main").text
        browser.save_screenshot(str(shots / "rules.png"))
        browser.get(f"{url}/ui/")
        browser.save_screenshot(str(shots / "activity.png"))

    for name in PAGES:
        assert (shots / f"{name}.png").stat().st_size > 1000
    if os.environ.get("CONSOLE_SCREENSHOT") == "1":  # refresh the docs' pictures on purpose
        for name in PAGES:
            shutil.copy(shots / f"{name}.png", ROOT / "docs" / "console" / f"{name}.png")
