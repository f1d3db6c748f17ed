"""A teammate sends a broadcast in the demo and reads its delivery log, in real Chromium;
the sending worker runs as the run command starts it, to a real SMTP server."""

import os
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_login import log_in
from tests.browser.test_people import in_thread
from tests.conftest import BASE_DIR
from tests.messaging.conftest import smtp_server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def messaging_demo(django_db_blocker):
    """The messaging demo loaded into acme (committed, for the server); removed afterwards."""
    from django.core.management import call_command

    from accounts.models import Account, AuditEntry
    from messaging.models import Broadcast, Topic
    from segments.models import Person, Segment

    def load() -> None:
        with django_db_blocker.unblock():
            call_command("load_messaging_demo", verbosity=0)

    def remove() -> None:
        with django_db_blocker.unblock(), Account.objects.get(slug="acme"):
            Broadcast.objects.all().delete()
            Topic.objects.all().delete()
            Segment.objects.filter(name="Newsletter readers").delete()
            Person.objects.filter(customer_id__startswith="demo-reader-").delete()
            AuditEntry.objects.all().delete()

    in_thread(load)
    yield
    in_thread(remove)


@pytest.fixture
def sending_worker(test_database_url, smtp_server, tmp_path):  # noqa: F811
    mailbox, port = smtp_server
    mailbox.received.clear()
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "send_broadcasts"],
        cwd=BASE_DIR,
        env={
            **os.environ, "DATABASE_URL": test_database_url, "BROADCAST_SMTP_HOST": "127.0.0.1",
            "BROADCAST_SMTP_PORT": str(port), "BROADCAST_SMTP_USE_TLS": "false",
            "MESSAGING_SEND_RATE": "0", "INGEST_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
        },
    )  # fmt: skip
    yield mailbox
    worker.terminate()
    worker.wait(timeout=30)


def test_a_broadcast_is_composed_sent_and_its_delivery_log_read(
    page: Page, ferry_server, messaging_demo, sending_worker
):
    acme = f"http://acme.localhost:{ferry_server}"
    log_in(page, acme, "alice@acme.example")
    page.get_by_role("link", name="Broadcasts", exact=True).click()
    # The demo's sent broadcast, with its rates and chart.
    page.get_by_role("link", name="November newsletter").click()
    expect(page.locator("#rates")).to_contain_text("recipients")
    expect(page.locator("svg.line-chart polyline").first).to_be_attached()

    page.get_by_role("link", name="Broadcasts", exact=True).click()
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Name:", exact=True).fill("Spring sale")
    page.get_by_label("Subject:", exact=True).fill(
        "{{ customer.first_name }}, the spring sale is on"
    )
    page.get_by_label("From:", exact=True).fill("Acme Sales <sales@acme.example>")
    page.get_by_label("Segment:", exact=True).select_option(label="Newsletter readers (40)")
    page.get_by_label("Body:", exact=True).fill(
        "Hi **{{ customer.first_name }}**, [shop now](https://acme.example/sale)"
    )
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Broadcast saved as a draft")).to_be_visible()

    # Preview as a given person, through htmx.
    page.get_by_label("Preview as:", exact=True).fill("ada.reader@example.com")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-subject")).to_have_text("Ada, the spring sale is on")

    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_text("Sending has started")).to_be_visible()
    # The worker sends within seconds; the page shows it once reloaded.
    for _ in range(40):
        page.reload()
        if page.locator("#broadcast-state").inner_text() == "Sent":
            break
        page.wait_for_timeout(500)
    expect(page.locator("#broadcast-state")).to_have_text("Sent")
    # One reader unsubscribed and one bounced in the demo: skipped, the others sent.
    assert len(sending_worker.received) == 38
    assert {r.message["Subject"] for r in sending_worker.received} >= {"Ada, the spring sale is on"}

    page.get_by_role("link", name="Delivery log").click()
    rows = page.locator("#deliveries tbody tr")
    expect(rows).to_have_count(40)
    page.get_by_label("State:", exact=True).select_option("skipped")
    expect(rows).to_have_count(2)
    expect(page.locator("#deliveries")).to_contain_text("unsubscribed")
    page.get_by_label("State:", exact=True).select_option("sent")
    expect(rows).to_have_count(38)
    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sent")
    expect(page.locator("#headers")).to_contain_text("List-Unsubscribe-Post")
    expect(page.locator("#headers")).to_contain_text("List-Unsubscribe=One-Click")
    expect(page.locator("#events")).to_contain_text("Sent")
