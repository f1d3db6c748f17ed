import os
import threading

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from accounts.models import Account, Invitation
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = os.environ.get("FERRY_SCREENSHOTS")


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_an_owner_logs_into_acme_and_cannot_reach_globex(page, ferry_server):
    acme = f"http://acme.localhost:{ferry_server}"
    log_in(page, acme, "alice@acme.example")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Corporation")
    expect(page.get_by_role("navigation", name="Dashboard")).to_be_visible()
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/dashboard.png", full_page=True)

    page.goto(f"http://globex.localhost:{ferry_server}/")
    expect(page).to_have_url(f"http://globex.localhost:{ferry_server}/login/?next=/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in to Globex Corporation")
    expect(page.get_by_text("Acme Corporation")).to_have_count(0)

    # The acme session is still good on acme's own host.
    page.goto(f"{acme}/team/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Team")


def test_acme_credentials_fail_on_globex(page, ferry_server):
    log_in(page, f"http://globex.localhost:{ferry_server}", "alice@acme.example")
    expect(
        page.get_by_text("That email address and password do not match a login here.")
    ).to_be_visible()


@pytest.fixture
def forget_invitations(django_db_blocker):
    """The server commits what the browser does; leave the shared cast as it was."""
    yield

    # Playwright keeps an event loop running in this thread, where Django refuses ORM calls.
    def delete() -> None:
        try:
            with django_db_blocker.unblock(), Account.objects.get(slug="acme"):
                Invitation.objects.all().delete()
        finally:
            connection.close()

    worker = threading.Thread(target=delete)
    worker.start()
    worker.join()


def test_an_owner_invites_a_teammate_without_a_page_reload(page, ferry_server, forget_invitations):
    acme = f"http://acme.localhost:{ferry_server}"
    log_in(page, acme, "alice@acme.example")
    page.goto(f"{acme}/team/")
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Email:", exact=True).fill("browser-invitee@example.com")
    page.get_by_label("Role:", exact=True).select_option("viewer")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to browser-invitee@example.com.")).to_be_visible()
    expect(page.get_by_role("cell", name="browser-invitee@example.com")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/team.png", full_page=True)
