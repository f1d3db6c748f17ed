"""The people pages as a teammate clicks through them, in real Chromium."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_login import log_in
from tests.threads import in_thread

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def acme_people(django_db_blocker):
    """Two people committed in acme for the server to show; removed afterwards."""
    from django.utils import timezone

    from accounts.models import Account, AuditEntry
    from segments.models import Import, Person

    def create() -> None:
        with django_db_blocker.unblock(), Account.objects.get(slug="acme"):
            now = timezone.now()
            for customer_id, email, plan in [
                ("ann-1", "ann@example.com", "pro"),
                ("bob-2", "bob@example.com", "free"),
            ]:
                Person.objects.create(customer_id=customer_id, email=email, attributes={"plan": plan, "seats": 3},
                                      attribute_times={}, created_at=now, updated_at=now)  # fmt: skip

    def remove() -> None:
        with django_db_blocker.unblock(), Account.objects.get(slug="acme"):
            Person.objects.all().delete()
            Import.objects.all().delete()
            AuditEntry.objects.all().delete()

    in_thread(create)
    yield
    in_thread(remove)


@pytest.fixture
def acme(page: Page, ferry_server) -> str:
    base = f"http://acme.localhost:{ferry_server}"
    log_in(page, base, "alice@acme.example")
    return base


def test_searching_people_updates_the_list_as_you_type(page, acme, acme_people):
    page.goto(f"{acme}/people/")
    expect(page.get_by_role("link", name="ann@example.com")).to_be_visible()
    expect(page.get_by_role("link", name="bob@example.com")).to_be_visible()
    page.get_by_label("Search").fill("bob@")
    expect(page.get_by_role("link", name="ann@example.com")).to_have_count(0)
    expect(page.get_by_role("link", name="bob@example.com")).to_be_visible()
    expect(page).to_have_url(
        f"{acme}/people/?q=bob%40&attribute=&value=&subscription=&segment=&sort=newest"
    )


def test_a_profile_shows_attributes_and_an_edit_sticks(page, acme, acme_people):
    page.goto(f"{acme}/people/")
    page.get_by_role("link", name="ann@example.com").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ann@example.com")
    page.get_by_label("Attribute name:", exact=True).fill("seats")
    page.get_by_label("Type:", exact=True).select_option("number")
    page.get_by_label("Value:", exact=True).fill("12")
    page.get_by_role("button", name="Save attribute").click()
    expect(page.get_by_text("Attribute “seats” saved.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="seats")
    expect(row).to_contain_text("12")
    expect(row).to_contain_text("number")


def test_an_import_with_a_bad_row_reports_it_and_imports_the_rest(
    page, acme, acme_people, tmp_path, django_db_blocker
):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "email,plan\ncarl@example.com,pro\nnot-an-email,free\ndora@example.com,basic\n"
    )
    page.goto(f"{acme}/imports/")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("cell", name="carl@example.com")).to_be_visible()
    page.get_by_label("The identifier is a").select_option("email")
    page.get_by_role("button", name="Import").click()
    # The run command's import worker is not running here; run the queue as it would.
    from ingest.imports_worker import claim_task, run_task

    def work() -> None:
        with django_db_blocker.unblock():
            while task := claim_task():
                run_task(task)

    in_thread(work)
    expect(page.get_by_text("2 imported, 1 rejected")).to_be_visible(timeout=10_000)
    expect(page.get_by_role("cell", name="“not-an-email” is not an email address")).to_be_visible()


def test_export_downloads_the_filtered_people(page, acme, acme_people):
    page.goto(f"{acme}/people/?attribute=plan&value=pro")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    content = open(download_info.value.path()).read()
    assert "ann@example.com" in content
    assert "bob@example.com" not in content
