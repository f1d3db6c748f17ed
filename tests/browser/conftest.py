from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Chromium as root in a closed network: no sandbox, no background calls home, and every
# *.localhost name pinned to the loopback address the test server listens on.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1",
]


@pytest.fixture(scope="module")
def browser(django_db_setup, committed_keys, cast_ids) -> Iterator[Browser]:
    # Playwright runs an event loop in this thread, where Django refuses database calls:
    # everything the browser tests read from the database is set up before it starts. One
    # browser per module, so that the loop is gone before the tests after them connect.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def cast_ids(django_db_setup, django_db_blocker) -> dict[str, str]:
    """Account ids as the spool records them, read before the browser's event loop starts."""
    from accounts.models import Account

    with django_db_blocker.unblock():
        return {account.slug: str(account.pk) for account in Account.objects.all()}
