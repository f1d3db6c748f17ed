"""Customer.io's Track API: what is accepted, refused, and where it lands."""

import json

import pytest

from tests.ingest.conftest import api_client, basic, drain, events, people, send

pytestmark = pytest.mark.django_db


def test_identify_answers_200_and_lands_in_the_senders_account_only(cast, spool, acme_key):
    response = send(
        api_client(acme_key), "put", "/api/v1/customers/42", {"email": "bob@x.io", "plan": "basic"}
    )
    assert (response.status_code, response.json()) == (200, {})
    drain(spool)
    bob = people(cast.acme)["42"]
    assert (bob.email, bob.attributes["plan"]) == ("bob@x.io", "basic")
    assert people(cast.globex) == {}


def test_bad_credentials_are_refused_with_401_and_nothing_is_spooled(cast, spool, acme_key):
    client = api_client()
    client.defaults["HTTP_AUTHORIZATION"] = basic(acme_key.site_id, "wrong")
    response = send(client, "put", "/api/v1/customers/42", {"plan": "basic"})
    assert response.status_code == 401
    assert "site id and API key" in response.json()["meta"]["error"]
    response = send(api_client(), "put", "/api/v1/customers/42", {"plan": "basic"})
    assert response.status_code == 401
    assert spool.pending_count() == 0


def test_another_accounts_write_key_is_not_a_track_credential(cast, spool, acme_key):
    client = api_client()
    client.defaults["HTTP_AUTHORIZATION"] = basic(acme_key.write_key, "")
    assert send(client, "put", "/api/v1/customers/42", {}).status_code == 401


def test_a_bad_request_names_the_field_and_stores_nothing(cast, spool, acme_key):
    response = send(
        api_client(acme_key), "post", "/api/v1/customers/42/events", {"name": "", "data": {}}
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "name", "message": "is required and must be a non-empty string"}
    ]
    assert spool.pending_count() == 0


def test_invalid_json_is_a_400(cast, spool, acme_key):
    response = api_client(acme_key).post(
        "/api/v1/customers/42/events", data="{nope", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_events_are_deduplicated_by_their_id(cast, spool, acme_key):
    client = api_client(acme_key)
    for _ in range(3):
        send(
            client,
            "post",
            "/api/v1/customers/42/events",
            {"name": "purchase", "id": "01HX", "data": {"p": 1}},
        )
    drain(spool)
    assert [e.name for e in events(cast.acme)] == ["purchase"]
    with cast.acme:
        summary = people(cast.acme)["42"].activity.get()
    assert (summary.name, summary.count) == ("purchase", 1)


def test_page_and_screen_events_keep_their_kind(cast, spool, acme_key):
    client = api_client(acme_key)
    send(
        client,
        "post",
        "/api/v1/customers/42/events",
        {"type": "page", "name": "https://x.io/pricing"},
    )
    send(client, "post", "/api/v1/customers/42/events", {"type": "screen", "name": "Settings"})
    drain(spool)
    assert [(e.kind, e.name) for e in events(cast.acme)] == [
        ("page", "https://x.io/pricing"),
        ("screen", "Settings"),
    ]


def test_anonymous_events_merge_into_the_person_who_claims_the_anonymous_id(cast, spool, acme_key):
    client = api_client(acme_key)
    send(client, "post", "/api/v1/events", {"name": "viewed pricing", "anonymous_id": "anon-7"})
    drain(spool)
    assert events(cast.acme)[0].person is None
    send(client, "put", "/api/v1/customers/42", {"anonymous_id": "anon-7"})
    drain(spool)
    event = events(cast.acme)[0]
    assert (event.person.customer_id, event.anonymous_id) == ("42", None)
    send(client, "post", "/api/v1/events", {"name": "viewed docs", "anonymous_id": "anon-7"})
    drain(spool)
    assert {e.person.customer_id for e in events(cast.acme)} == {"42"}


def test_delete_removes_the_person_and_their_events(cast, spool, acme_key):
    client = api_client(acme_key)
    send(client, "post", "/api/v1/customers/42/events", {"name": "x"})
    drain(spool)
    assert api_client(acme_key).delete("/api/v1/customers/42").status_code == 200
    drain(spool)
    assert people(cast.acme) == {}
    assert events(cast.acme) == []


def test_update_only_does_not_create_a_person_and_records_why(cast, spool, acme_key):
    from ingest.models import DeadLetter

    send(api_client(acme_key), "put", "/api/v1/customers/99", {"plan": "x", "_update": True})
    assert drain(spool).dead == 1
    assert people(cast.acme) == {}
    assert DeadLetter.objects.get().error == "_update: the person does not exist"


def test_older_timestamps_lose_against_newer_attribute_changes(cast, spool, acme_key):
    client = api_client(acme_key)
    send(client, "put", "/api/v1/customers/42", {"plan": "new", "_timestamp": 2000000000})
    send(
        client, "put", "/api/v1/customers/42", {"plan": "old", "seats": 3, "_timestamp": 1900000000}
    )
    drain(spool)
    assert people(cast.acme)["42"].attributes == {"plan": "new", "seats": 3}


def test_an_empty_value_removes_the_attribute(cast, spool, acme_key):
    client = api_client(acme_key)
    send(client, "put", "/api/v1/customers/42", {"plan": "basic", "_timestamp": 1})
    send(client, "put", "/api/v1/customers/42", {"plan": "", "_timestamp": 2})
    drain(spool)
    assert "plan" not in people(cast.acme)["42"].attributes


def test_unsubscribed_sets_the_subscription_state(cast, spool, acme_key):
    send(api_client(acme_key), "put", "/api/v1/customers/42", {"unsubscribed": True})
    drain(spool)
    assert people(cast.acme)["42"].unsubscribed is True


def test_an_email_that_belongs_to_someone_else_fails_the_change_but_answers_200(
    cast, spool, acme_key
):
    client = api_client(acme_key)
    send(client, "put", "/api/v1/customers/1", {"email": "ann@x.io"})
    response = send(client, "put", "/api/v1/customers/2", {"email": "ann@x.io", "plan": "pro"})
    assert response.status_code == 200
    result = drain(spool)
    assert result.dead == 1
    # Nothing of the failed change is stored: not its plan, not the person it alone named.
    assert "2" not in people(cast.acme)
    assert people(cast.acme)["1"].attributes == {"email": "ann@x.io"}


def test_v2_batch_applies_every_operation(cast, spool, acme_key):
    batch = {"batch": [
        {"type": "person", "identifiers": {"id": "42"}, "action": "identify", "attributes": {"plan": "premium"}},
        {"type": "person", "identifiers": {"id": "42"}, "action": "event", "name": "purchase", "attributes": {"price": 29.99}},
        {"type": "person", "identifiers": {"id": "42"}, "action": "page", "name": "/pricing"},
    ]}  # fmt: skip
    assert send(api_client(acme_key), "post", "/api/v2/batch", batch).status_code == 200
    drain(spool)
    assert people(cast.acme)["42"].attributes == {"plan": "premium"}
    assert [(e.kind, e.name, e.data) for e in events(cast.acme)] == [
        ("event", "purchase", {"price": 29.99}), ("page", "/pricing", {}),
    ]  # fmt: skip


def test_a_v2_batch_with_one_bad_operation_is_refused_whole(cast, spool, acme_key):
    batch = {"batch": [
        {"type": "person", "identifiers": {"id": "42"}, "action": "identify", "attributes": {}},
        {"type": "person", "identifiers": {}, "action": "identify"},
    ]}  # fmt: skip
    response = send(api_client(acme_key), "post", "/api/v2/batch", batch)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "batch[1].identifiers"
    assert spool.pending_count() == 0


def test_a_v2_batch_over_500_kb_is_refused(cast, spool, acme_key):
    op = {
        "type": "person",
        "identifiers": {"id": "1"},
        "action": "event",
        "name": "x",
        "attributes": {"b": "x" * 30_000},
    }
    response = send(api_client(acme_key), "post", "/api/v2/batch", {"batch": [op] * 20})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_v2_entity_takes_one_operation(cast, spool, acme_key):
    op = {
        "type": "person",
        "identifiers": {"email": "Z@x.io"},
        "action": "identify",
        "attributes": {"a": 1},
    }
    assert send(api_client(acme_key), "post", "/api/v2/entity", op).status_code == 200
    drain(spool)
    assert people(cast.acme)["z@x.io"].attributes == {"a": 1, "email": "z@x.io"}


def test_wrong_methods_are_refused(cast, spool, acme_key):
    assert api_client(acme_key).get("/api/v1/customers/42").status_code == 405


def test_gzip_bodies_are_accepted(cast, spool, acme_key):
    import gzip

    body = gzip.compress(json.dumps({"name": "zipped"}).encode())
    response = api_client(acme_key).post(
        "/api/v1/customers/42/events",
        data=body,
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200
    drain(spool)
    assert events(cast.acme)[0].name == "zipped"


def test_the_api_answers_on_account_hosts_too_and_credentials_still_pick_the_account(
    cast, spool, globex_key
):
    client = api_client(globex_key)
    client.defaults["HTTP_HOST"] = cast.acme.host
    send(client, "put", "/api/v1/customers/7", {"plan": "x"})
    drain(spool)
    assert "7" in people(cast.globex)
    assert people(cast.acme) == {}


def test_an_identifier_with_a_line_break_is_a_person_like_any_other(cast, spool, acme_key):
    # Found by the schemathesis run: `.` in the route did not match "\n", so this was a 404.
    client = api_client(acme_key)
    assert send(client, "put", "/api/v1/customers/a%0Ab", {"plan": "basic"}).status_code == 200
    assert send(client, "post", "/api/v1/customers/a%0Ab/events", {"name": "x"}).status_code == 200
    drain(spool)
    assert people(cast.acme)["a\nb"].attributes["plan"] == "basic"
    assert [e.name for e in events(cast.acme)] == ["x"]


def test_a_segment_id_in_unicode_digits_is_a_clear_400(cast, spool, acme_key):
    # "³".isdigit() is true but int("³") fails: this was a 500 (found by schemathesis).
    response = send(
        api_client(acme_key), "post", "/api/v1/segments/%C2%B3/add_customers", {"ids": ["1"]}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "segment_id"
    assert spool.pending_count() == 0


def test_a_nul_character_anywhere_is_refused_naming_where(cast, spool, acme_key):
    """PostgreSQL cannot store it, so it must not be accepted into the spool."""
    client = api_client(acme_key)
    response = send(client, "put", "/api/v1/customers/42", {"plan": "pro\x00"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "plan"
    batch = {"batch": [
        {"type": "person", "identifiers": {"id": "42"}, "action": "identify", "attributes": {}},
        {"type": "person", "identifiers": {"id": "42"}, "action": "event", "name": "a\x00b"},
    ]}  # fmt: skip
    response = send(client, "post", "/api/v2/batch", batch)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "batch[1].name"
    response = send(client, "put", "/api/v1/customers/4%002", {"plan": "pro"})
    assert response.status_code == 400
    # A backslash followed by "u0000" is text like any other.
    assert send(client, "put", "/api/v1/customers/42", {"plan": "\\u0000"}).status_code == 200
    assert spool.pending_count() == 1
    drain(spool)
    assert people(cast.acme)["42"].attributes == {"plan": "\\u0000"}
