"""Building a nested rule in real Chromium: the count follows every change, then it saves."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import browser, cast_ids, page  # noqa: F401 (fixtures)
from tests.browser.test_login import log_in
from tests.browser.test_people import in_thread

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


def test_building_a_nested_rule_updates_the_count_and_saves(page: Page, ferry_server, acme_teams):  # noqa: F811
    base = f"http://acme.localhost:{ferry_server}"
    log_in(page, base, "mia@acme.example")
    page.goto(f"{base}/segments/")
    page.get_by_role("link", name="New segment").click()
    count = page.get_by_test_id("live-count")

    page.locator('[name="r-0.name"]').fill("plan")
    page.locator('[name="r-0.value"]').fill("pro")
    expect(count).to_have_text("2")

    page.get_by_role("button", name="Add group").click()
    expect(page.locator('[name="r-1.op"]')).to_be_visible()
    page.locator('[name="r-1.op"]').select_option("and")
    page.wait_for_load_state("networkidle")  # the editor is drawn again after a choice
    page.locator('[name="r-1-0.name"]').fill("seats")
    page.locator('[name="r-1-0.operator"]').select_option("greater_than")
    page.wait_for_load_state("networkidle")
    expect(page.locator('[name="r-1-0.name"]')).to_have_value("seats")
    page.locator('[name="r-1-0.value"]').fill("5")
    expect(count).to_have_text("1")
    expect(page.get_by_role("link", name="bob")).to_be_visible()

    page.get_by_label("Name").fill("Big pro teams")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Big pro teams")
    expect(page.get_by_test_id("member-count")).to_have_text("1")
