"""Dashboards show a banner while an incident or maintenance concerning them is active."""

import pytest

from status import actions
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def dashboard(cast, account, user) -> str:
    return client_for(account, user).get("/").content.decode()


def test_an_incident_for_some_accounts_shows_only_on_theirs(demo, publish, cast):
    actions.open_incident(
        name="Acme segments stale", status="identified", impact="minor", body="Recomputing.",
        affected_accounts=["acme"],
    )  # fmt: skip
    publish()
    assert "Incident: Acme segments stale" in dashboard(cast, cast.acme, cast.alice)
    assert "Acme segments stale" not in dashboard(cast, cast.globex, cast.charlie)


def test_an_incident_for_everyone_shows_everywhere_until_resolved(demo, publish, cast):
    incident = actions.open_incident(
        name="Mail delayed", status="investigating", impact="major", body="Looking."
    )
    publish()
    assert "Mail delayed" in dashboard(cast, cast.acme, cast.alice)
    assert "Mail delayed" in dashboard(cast, cast.globex, cast.charlie)
    actions.post_update(incident, status="resolved", body="Done.")
    publish()
    assert "Mail delayed" not in dashboard(cast, cast.acme, cast.alice)


def test_the_banner_costs_no_query(demo, publish, cast, rf, django_assert_num_queries):
    from status.context_processors import status_banner

    actions.open_incident(name="Any", status="identified", impact="minor", body="x")
    publish()
    request = rf.get("/")
    request.account = cast.acme
    with django_assert_num_queries(0):
        notices = status_banner(request)["status_banner"]
    assert [n["name"] for n in notices] == ["Any"]
