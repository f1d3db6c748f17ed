from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Account
from segments.models import Event, Person, Segment
from segments.rules import parse_rule
from segments.segment_actions import rule_context, save_segment

NOW = datetime.now(UTC)


def person(customer_id: str, **attributes) -> Person:
    """A person in the current account's schema."""
    return Person.objects.create(
        customer_id=customer_id, email=attributes.get("email"), attributes=attributes,
        unsubscribed=attributes.pop("unsubscribed", False), created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def event(who: Person, name: str, days_ago: float = 0, **data) -> Event:
    from segments.models import ActivitySummary

    at = NOW - timedelta(days=days_ago)
    made = Event.objects.create(
        person=who, name=name, data=data, timestamp=at, received_at=NOW,
        dedupe_key=f"{who.pk}-{name}-{Event.objects.count()}",
    )  # fmt: skip
    summary, created = ActivitySummary.objects.get_or_create(
        person=who, name=name, defaults={"count": 1, "first_at": at, "last_at": at}
    )
    if not created:
        summary.count += 1
        summary.first_at, summary.last_at = min(summary.first_at, at), max(summary.last_at, at)
        summary.save()
    return made


def rule_segment(name: str, rules: dict, by: str = "alice@acme.example") -> Segment:
    segment = Segment(kind=Segment.Kind.RULES)
    save_segment(
        segment, name=name, description="", rule=parse_rule(rules, rule_context(segment)),
        changed_by=by,
    )  # fmt: skip
    return segment


def manual_segment(name: str) -> Segment:
    segment = Segment(kind=Segment.Kind.MANUAL)
    save_segment(segment, name=name, description="", rule=None, changed_by="alice@acme.example")
    return segment


def members(segment: Segment) -> set[str]:
    return set(segment.memberships.values_list("person__customer_id", flat=True))


PLAN_IS_PRO = {
    "type": "group",
    "op": "and",
    "children": [{"type": "attribute", "name": "plan", "operator": "equals", "value": "pro"}],
}


@pytest.fixture
def acme(cast) -> Account:
    return cast.acme


# The ingestion tests' own spool, shared with the segment tests that drain.
from tests.ingest.conftest import acme_key, globex_key, spool  # noqa: E402, F401
