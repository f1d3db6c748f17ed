"""Segment windows and retention: a window longer than what the account keeps is refused,
naming the node, in the rule reader and in the editor."""

from datetime import UTC, datetime, timedelta

import pytest

from maintenance.models import RetentionPolicy
from segments.models import Segment
from segments.rules import Context, InvalidRule, parse_rule
from tests.conftest import client_for

KEPT = Context(kept_days={"events": 90, "deliveries": 30})


def event(**window) -> dict:
    return {
        "type": "group", "op": "and",
        "children": [{"type": "event", "name": "purchase", "operator": "performed", **window}],
    }  # fmt: skip


def errors_of(rule: dict, context: Context = KEPT) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRule) as raised:
        parse_rule(rule, context)
    return [(error.path, error.message) for error in raised.value.errors]


def test_windows_up_to_the_retention_are_accepted():
    assert parse_rule(event(within_days=90), KEPT)
    assert parse_rule(event(), KEPT)  # all time: answered from the summaries
    recent = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    assert parse_rule(event(**{"from": recent, "to": recent}), KEPT)


def test_a_longer_window_is_refused_naming_the_node():
    assert errors_of(event(within_days=91)) == [
        (
            "rules.children[0].within_days",
            "91 days is longer than this account keeps events (90 days); older events are "
            "deleted, so use at most 90",
        )
    ]


def test_fixed_dates_before_the_horizon_are_refused():
    [(path, message)] = errors_of(event(**{"from": "2020-01-01", "to": "2020-02-01"}))
    assert path == "rules.children[0].from"
    assert "this account keeps events 90 days and older events are deleted" in message


def test_email_windows_follow_the_delivery_retention():
    rule = {
        "type": "group", "op": "and",
        "children": [{"type": "email", "activity": "opened", "operator": "performed",
                      "within_days": 31}],
    }  # fmt: skip
    [(path, message)] = errors_of(rule)
    assert path == "rules.children[0].within_days"
    assert message.startswith("31 days is longer than this account keeps deliveries (30 days)")


def test_without_a_retention_in_the_context_nothing_changes():
    # Stored rules are read back without it (memberships, the sweep), so a rule saved under
    # a longer retention keeps working while the account shortens it.
    assert parse_rule(event(within_days=400), Context())


@pytest.mark.django_db
def test_the_editor_refuses_a_window_longer_than_the_accounts_retention(cast, spool):
    RetentionPolicy.objects.create(account=cast.acme, events_days=30)
    form = {
        "name": "Recent buyers", "description": "", "r.type": "group", "r.op": "and",
        "r-0.type": "event", "r-0.name": "purchase", "r-0.operator": "performed",
        "r-0.window": "days", "r-0.within_days": "60", "save": "1",
    }  # fmt: skip
    client = client_for(cast.acme, cast.mia)
    response = client.post("/segments/new/", form)
    assert response.status_code == 200
    assert b"rules.children[0].within_days" in response.content
    assert b"60 days is longer than this account keeps events (30 days)" in response.content
    with cast.acme:
        assert not Segment.objects.exists()
    assert client.post("/segments/new/", {**form, "r-0.within_days": "30"}).status_code == 302
    # Globex keeps the default, so the same window is fine there.
    other = client_for(cast.globex, cast.charlie).post("/segments/new/", form)
    assert other.status_code == 302
