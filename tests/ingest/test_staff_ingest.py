import json

import pytest

from ingest import wire
from ingest.models import DeadLetter
from tests.conftest import client_for
from tests.ingest.conftest import drain, events

pytestmark = pytest.mark.django_db


def test_staff_see_the_backlog_per_account(cast, spool):
    spool.append(str(cast.acme.pk), [json.dumps(wire.cio_event("1", {"name": "x"}))] * 3)
    response = client_for(None, cast.stella).get("/staff/ingest/")
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content
    assert b"3 items waiting" in response.content


def test_staff_replay_a_dead_letter(cast, spool):
    letter = DeadLetter.objects.create(
        account_id=cast.acme.pk,
        source="node:1",
        payload=wire.cio_event("1", {"name": "again"}),
        error="x",
    )
    client = client_for(None, cast.stella)
    assert client.post(f"/staff/ingest/dead-letters/{letter.pk}/replay/").status_code == 302
    drain(spool)
    assert [e.name for e in events(cast.acme)] == ["again"]
    assert client.post(f"/staff/ingest/dead-letters/{letter.pk}/replay/").status_code == 404


def test_staff_discard_a_dead_letter(cast, spool):
    letter = DeadLetter.objects.create(
        account_id=cast.acme.pk, source="node:2", payload={}, error="x"
    )
    client_for(None, cast.stella).post(f"/staff/ingest/dead-letters/{letter.pk}/discard/")
    assert not DeadLetter.objects.waiting().exists()


def test_account_users_and_non_staff_cannot_reach_the_ingestion_pages(cast, spool):
    letter = DeadLetter.objects.create(
        account_id=cast.acme.pk, source="node:3", payload={}, error="x"
    )
    assert client_for(None, cast.paul).get("/staff/ingest/").status_code == 403
    assert (
        client_for(None, cast.paul)
        .post(f"/staff/ingest/dead-letters/{letter.pk}/replay/")
        .status_code
        == 403
    )
    assert client_for(cast.acme, cast.alice).get("/staff/ingest/").status_code == 404
    anonymous = client_for(None)
    assert anonymous.get("/staff/ingest/").status_code == 302


def test_an_account_sees_its_own_backlog_banner_only(cast, spool):
    import time

    spool.append(str(cast.acme.pk), [json.dumps(wire.cio_event("1", {"name": "x"}))] * 5)
    spool.db.execute("UPDATE items SET received_at = ?", (time.time() - 120,))
    acme_page = client_for(cast.acme, cast.vic).get("/").content
    assert b"5 items" in acme_page and b"catching up" in acme_page
    assert b"catching up" not in client_for(cast.globex, cast.charlie).get("/").content


def test_the_status_console_shows_the_drain_backlog_and_proposes_a_state(cast, spool):
    import time

    from status.component_signals import readings_for
    from status.models import Component

    component = Component(key="data-processing", name="Data Processing")
    (reading,) = [r for r in readings_for(component) if r.label == "Drain backlog"]
    assert (reading.value, reading.proposed_status) == ("nothing waiting", "operational")
    spool.append(str(cast.acme.pk), [json.dumps(wire.cio_event("1", {"name": "x"}))] * 4)
    spool.db.execute("UPDATE items SET received_at = ?", (time.time() - 900,))
    (reading,) = [r for r in readings_for(component) if r.label == "Drain backlog"]
    assert reading.value.startswith("4 items waiting, oldest 9")
    assert reading.proposed_status == "partial_outage"
