from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from segments.models import ActivitySummary, Event, Person

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def make_person(account, customer_id=None, email=None, created=NOW, **attributes) -> Person:
    with account:
        return Person.objects.create(
            customer_id=customer_id, email=email, attributes=attributes,
            attribute_times=dict.fromkeys(attributes, 1.0), created_at=created, updated_at=created,
        )  # fmt: skip


def make_events(account, person, name, count, start=NOW):
    with account:
        Event.objects.bulk_create(
            Event(person=person, name=name, data={"n": n}, timestamp=start - timedelta(minutes=n),
                  received_at=start, dedupe_key=f"{person.pk}-{name}-{n}")
            for n in range(count)
        )  # fmt: skip
        ActivitySummary.objects.create(
            person=person, name=name, count=count,
            first_at=start - timedelta(minutes=count - 1), last_at=start,
        )  # fmt: skip


@pytest.fixture
def ann(cast) -> Person:
    return make_person(cast.acme, "ann-1", "ann@example.com", plan="pro", seats=5, vip=True)


@pytest.fixture
def globex_person(cast) -> Person:
    return make_person(cast.globex, "g-1", "gina@globex.example", plan="enterprise")


# Issue #4's budget for a dashboard page: at most ten statements, the account's SET search_path
# included (bench/people_pages.py measures the same at a million people).
QUERY_BUDGET = 10


def page_statements(client, path: str):
    """The response to `path` and the statements it ran, counted from the account's SET
    search_path on, as bench/people_pages.py counts them."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    statements = [query["sql"] for query in captured.captured_queries]
    start = next(n for n, sql in enumerate(statements) if sql.startswith('SET search_path = "acct'))
    return response, statements[start:]


# The ingestion fixtures, for tests that check what the dashboard does to ingestion.
from tests.ingest.conftest import acme_key, spool  # noqa: E402, F401
