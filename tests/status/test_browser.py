"""A staff member posts an update in the console and a visitor sees it on the status page."""

import os
import threading
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from playwright.sync_api import Page, expect, sync_playwright

from status.models import Incident, Notification
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import PASSWORD, gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = os.environ.get("FERRY_SCREENSHOTS")


def in_a_browser(drive: Callable[[Page], None]) -> None:
    """Run `drive` with a fresh Chromium page, in a thread of its own.

    The browser suite may already have Playwright's event loop running in this thread, and
    the sync API refuses to start inside a running loop.
    """
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    drive(browser.new_context().new_page())
                finally:
                    browser.close()
        except BaseException as failure:
            failures.append(failure)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


@pytest.fixture(scope="module")
def status_server(test_database_url, tmp_path_factory) -> Iterator[str]:
    snapshots = tmp_path_factory.mktemp("status-snapshots")
    with gunicorn(test_database_url, env={"STATUS_SNAPSHOT_DIR": str(snapshots)}) as port:
        yield port


@pytest.fixture
def forget_incidents(django_db_blocker):
    """The server commits what the browser does; leave the shared database as it was."""
    yield

    # Playwright keeps an event loop running in this thread, where Django refuses ORM calls.
    def delete() -> None:
        try:
            with django_db_blocker.unblock():
                Notification.objects.all().delete()
                Incident.objects.all().delete()
        finally:
            connection.close()

    worker = threading.Thread(target=delete)
    worker.start()
    worker.join()


def test_an_update_posted_in_the_console_appears_on_the_status_page(
    django_db_setup, status_server, forget_incidents
):
    in_a_browser(lambda page: post_an_update_and_read_it(page, status_server))


def post_an_update_and_read_it(page: Page, status_server: str) -> None:
    console = f"http://localhost:{status_server}"
    page.goto(f"{console}/staff/login/")
    page.get_by_label("Email address").fill("stella@ferry.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(f"{console}/staff/status/")
    page.get_by_role("link", name="Open an incident").click()
    page.get_by_label("Name").fill("Browser-reported slowness")
    page.get_by_label("Message").fill("We are **investigating** slow dashboards.")
    expect(page.locator("#preview strong")).to_have_text("investigating")
    page.get_by_role("button", name="Open incident and publish").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Browser-reported slowness")

    page.evaluate("window.notReloaded = true")
    page.get_by_label("Status:", exact=True).select_option("monitoring")
    page.get_by_label("Message").fill("A fix is out; *watching* the error rate.")
    page.get_by_role("button", name="Post update").click()
    expect(page.get_by_text("Update posted and published.")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/status-console.png", full_page=True)

    page.goto(f"http://status.localhost:{status_server}/")
    notice = page.locator(".sp-notice")
    expect(notice.get_by_role("link", name="Browser-reported slowness")).to_be_visible()
    expect(notice.locator("em")).to_have_text("watching")
    expect(notice.get_by_text("Monitoring", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Minor Service Outage")
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/status-page.png", full_page=True)
