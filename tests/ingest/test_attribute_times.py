"""Attribute times: an older change loses to a newer one, including for people created whole,
whose attributes share one time (attribute_times {"": at}) instead of one entry each."""

import json

import pytest

from ingest import wire
from segments.models import Person
from tests.ingest.conftest import drain, people

pytestmark = pytest.mark.django_db


def apply(spool, account, *items) -> None:
    spool.append(str(account.pk), [json.dumps(item) for item in items])
    drain(spool)


def identify(person: str, at: float, **attributes) -> dict:
    return wire.cio_identify(person, {**attributes, "_timestamp": at})


def test_a_person_created_whole_stores_one_time_for_all_their_attributes(cast, spool):
    apply(spool, cast.acme, identify("1", 100, plan="pro", seats=5))
    person = people(cast.acme)["1"]
    assert person.attributes == {"plan": "pro", "seats": 5}
    assert person.attribute_times == {"": 100}


def test_an_older_change_loses_to_the_shared_time_and_a_newer_one_wins(cast, spool):
    apply(spool, cast.acme, identify("1", 100, plan="pro", seats=5))
    apply(spool, cast.acme, identify("1", 50, plan="free"), identify("1", 200, seats=6))
    person = people(cast.acme)["1"]
    assert person.attributes == {"plan": "pro", "seats": 6}
    assert person.attribute_times == {"": 100, "seats": 200}


def test_the_shared_time_does_not_block_an_attribute_never_set(cast, spool):
    apply(spool, cast.acme, identify("1", 100, plan="pro"))
    apply(spool, cast.acme, identify("1", 50, country="NO"))
    assert people(cast.acme)["1"].attributes == {"plan": "pro", "country": "NO"}


def test_a_removed_attribute_keeps_its_own_time(cast, spool):
    apply(spool, cast.acme, identify("1", 100, plan="pro", seats=5))
    apply(spool, cast.acme, identify("1", 150, seats=""))
    # Older than the removal, though newer than the shared time: the removal stands.
    apply(spool, cast.acme, identify("1", 120, seats=7))
    person = people(cast.acme)["1"]
    assert person.attributes == {"plan": "pro"}
    assert person.attribute_times == {"": 100, "seats": 150}
    apply(spool, cast.acme, identify("1", 160, seats=8))
    assert people(cast.acme)["1"].attributes == {"plan": "pro", "seats": 8}


def test_changes_in_the_batch_that_creates_the_person_follow_the_same_rules(cast, spool):
    apply(
        spool, cast.acme,
        identify("1", 100, plan="pro", seats=5),
        identify("1", 50, plan="free", country="NO"),
        identify("1", 100, seats=5),  # a replay of the creating change
    )  # fmt: skip
    person = people(cast.acme)["1"]
    assert person.attributes == {"plan": "pro", "seats": 5, "country": "NO"}
    assert person.attribute_times == {"": 100, "country": 50, "seats": 100}


def test_a_replay_of_the_creating_change_writes_nothing(cast, spool):
    item = identify("1", 100, plan="pro", seats=5)
    apply(spool, cast.acme, item)
    written = people(cast.acme)["1"].updated_at
    apply(spool, cast.acme, item)
    assert people(cast.acme)["1"].updated_at == written


def test_the_email_a_person_was_created_by_gets_no_time_it_was_not_given(cast, spool):
    # Created by email with other attributes: the email is stored without a time, as before,
    # so the shared time is not used (it would date the email too).
    apply(spool, cast.acme, identify("ann@example.com", 100, plan="pro"))
    person = people(cast.acme)["ann@example.com"]
    assert person.attributes == {"email": "ann@example.com", "plan": "pro"}
    assert person.attribute_times == {"plan": 100}
    apply(spool, cast.acme, identify("ann@example.com", 50, email="ann@example.org"))
    assert people(cast.acme)["ann@example.org"].attributes["email"] == "ann@example.org"


def test_people_stored_with_a_time_per_attribute_keep_working(cast, spool):
    apply(spool, cast.acme, identify("1", 100, plan="pro"))
    with cast.acme:
        Person.objects.filter(customer_id="1").update(attribute_times={"plan": 100})
    apply(spool, cast.acme, identify("1", 50, plan="free", seats=1))
    person = people(cast.acme)["1"]
    assert person.attributes == {"plan": "pro", "seats": 1}
    assert person.attribute_times == {"plan": 100, "seats": 50}
