"""The Segment spec: write key as Basic username or in the body, batches, strict mode."""

import pytest
from django.test import Client

from tests.ingest.conftest import basic, drain, events, people, send

pytestmark = pytest.mark.django_db


def segment_client(write_key: str | None = None) -> Client:
    headers = {"HTTP_AUTHORIZATION": basic(write_key, "")} if write_key else {}
    return Client(HTTP_HOST="localhost", **headers)


def test_identify_with_the_write_key_as_basic_username(cast, spool, acme_key):
    body = {"userId": "u1", "traits": {"email": "Peter@Initech.com", "plan": "premium"}}
    assert send(segment_client(acme_key.write_key), "post", "/v1/identify", body).status_code == 200
    drain(spool)
    assert people(cast.acme)["u1"].attributes == {"email": "peter@initech.com", "plan": "premium"}


def test_a_batch_with_the_write_key_in_the_body(cast, spool, acme_key):
    body = {"writeKey": acme_key.write_key, "batch": [
        {"type": "track", "userId": "u1", "event": "User Registered", "properties": {"plan": "Pro"}, "messageId": "m1"},
        {"type": "page", "userId": "u1", "name": "Home", "properties": {"path": "/"}},
        {"type": "screen", "userId": "u1", "name": "Settings"},
        {"type": "group", "userId": "u1", "groupId": "acme-co", "traits": {"plan": "enterprise"}},
    ]}  # fmt: skip
    assert send(segment_client(), "post", "/v1/batch", body).status_code == 200
    drain(spool)
    assert [(e.kind, e.name) for e in events(cast.acme)] == [
        ("event", "User Registered"), ("page", "Home"), ("screen", "Settings"), ("event", "group"),
    ]  # fmt: skip


def test_an_unknown_write_key_is_refused(cast, spool):
    response = send(segment_client("nope"), "post", "/v1/track", {"userId": "u", "event": "x"})
    assert response.status_code == 401
    response = send(segment_client(), "post", "/v1/batch", {"writeKey": "nope", "batch": []})
    assert response.status_code == 401


def test_a_bad_message_is_reported_and_the_rest_kept(cast, spool, acme_key):
    body = {
        "batch": [{"type": "track", "userId": "u", "event": "ok"}, {"type": "track", "event": "no"}]
    }
    response = send(segment_client(acme_key.write_key), "post", "/v1/batch", body)
    assert response.status_code == 200
    assert response.json()["rejected"][0]["index"] == 1
    drain(spool)
    assert [e.name for e in events(cast.acme)] == ["ok"]


def test_strict_mode_refuses_the_whole_batch(cast, spool, acme_key):
    body = {
        "batch": [{"type": "track", "userId": "u", "event": "ok"}, {"type": "track", "event": "no"}]
    }
    response = send(
        segment_client(acme_key.write_key), "post", "/v1/batch", body, HTTP_X_STRICT_MODE="1"
    )
    assert response.status_code == 400
    assert spool.pending_count() == 0


def test_alias_merges_anonymous_activity_into_the_user(cast, spool, acme_key):
    client = segment_client(acme_key.write_key)
    send(client, "post", "/v1/track", {"anonymousId": "anon-1", "event": "Viewed"})
    send(client, "post", "/v1/alias", {"previousId": "anon-1", "userId": "u9"})
    drain(spool)
    assert events(cast.acme)[0].person.customer_id == "u9"


def test_identify_with_both_ids_merges_earlier_anonymous_events(cast, spool, acme_key):
    client = segment_client(acme_key.write_key)
    send(client, "post", "/v1/page", {"anonymousId": "anon-2", "name": "Pricing"})
    send(client, "post", "/v1/identify", {"userId": "u3", "anonymousId": "anon-2", "traits": {}})
    drain(spool)
    assert events(cast.acme)[0].person.customer_id == "u3"
    with cast.acme:
        assert people(cast.acme)["u3"].activity.get().name == "Pricing"
