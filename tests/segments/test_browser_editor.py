"""Building a nested rule in real Chromium: the count follows every change, then it saves."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_login import log_in
from tests.browser.test_people import in_thread
from tests.status.test_browser import in_a_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def acme_teams(django_db_blocker):
    """Three people committed in acme for the server to count; removed afterwards."""
    from django.utils import timezone

    from accounts.models import Account
    from segments.models import Person, Segment

    def create() -> None:
        with django_db_blocker.unblock(), Account.objects.get(slug="acme"):
            now = timezone.now()
            for customer_id, plan, seats in [("ann", "pro", 3), ("bob", "pro", 10),
                                             ("cid", "free", 20)]:  # fmt: skip
                Person.objects.create(customer_id=customer_id, attributes={"plan": plan, "seats": seats},
                                      attribute_times={}, created_at=now, updated_at=now)  # fmt: skip

    def remove() -> None:
        with django_db_blocker.unblock(), Account.objects.get(slug="acme"):
            Segment.objects.all().delete()
            Person.objects.all().delete()

    in_thread(create)
    yield
    in_thread(remove)


def test_building_a_nested_rule_updates_the_count_and_saves(
    django_db_setup, ferry_server, acme_teams
):
    # A Chromium of its own, in a thread: the browser suite may be running Playwright here.
    in_a_browser(lambda page: build_a_nested_rule(page, f"http://acme.localhost:{ferry_server}"))


def editor_drawn(response) -> bool:
    return response.request.method == "POST" and "preview" not in response.url


def redraw(page: Page, action) -> None:
    """Do something that draws the editor again, and wait until htmx has wired up the new
    inputs (it settles just after the response; a change before that would go unheard)."""
    with page.expect_response(editor_drawn):
        action()
    page.wait_for_timeout(300)


def choose(page: Page, selector: str, value: str) -> None:
    redraw(page, lambda: page.locator(selector).select_option(value))


def build_a_nested_rule(page: Page, base: str) -> None:
    log_in(page, base, "mia@acme.example")
    page.goto(f"{base}/segments/")
    page.get_by_role("link", name="New segment").click()
    count = page.get_by_test_id("live-count")

    page.locator('[name="r-0.name"]').fill("plan")
    page.locator('[name="r-0.value"]').fill("pro")
    expect(count).to_have_text("2")

    redraw(page, page.get_by_role("button", name="Add group").click)
    expect(page.locator('[name="r-1.op"]')).to_be_visible()
    choose(page, '[name="r-1.op"]', "and")
    page.locator('[name="r-1-0.name"]').fill("seats")
    choose(page, '[name="r-1-0.operator"]', "greater_than")
    expect(page.locator('[name="r-1-0.name"]')).to_have_value("seats")
    page.locator('[name="r-1-0.value"]').fill("5")
    expect(count).to_have_text("1")
    expect(page.get_by_role("link", name="bob")).to_be_visible()

    page.get_by_label("Name").fill("Big pro teams")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Big pro teams")
    expect(page.get_by_test_id("member-count")).to_have_text("1")
