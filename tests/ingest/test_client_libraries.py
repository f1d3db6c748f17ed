"""Existing client libraries, unchanged, against Ferry over real HTTPS."""

import pytest
from customerio import CustomerIO
from segment.analytics import Client as SegmentClient

from tests.ingest.conftest import drain, events, people

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def trust_ferry(ingest_server, monkeypatch):
    # Both libraries use requests, which reads the CA bundle from the environment.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ingest_server["ca"])


def test_the_customerio_library_identifies_tracks_and_batches(
    cast, committed_keys, ingest_server, server_spool, trust_ferry
):
    key = committed_keys["acme"]
    client = CustomerIO(
        key.site_id, key.api_key, host="127.0.0.1", port=int(ingest_server["port"]), retries=0
    )
    client.identify(id="42", email="Bob@Example.com", plan="basic")
    client.track(customer_id="42", name="purchase", data={"price": 23.45}, id="01HCIO")
    client.pageview("42", "https://example.com/pricing", referrer="ad")
    client.track_anonymous("anon-9", "viewed", data={"page": "home"})
    client.batch([
        {"type": "person", "identifiers": {"id": "43"}, "action": "identify", "attributes": {"plan": "pro"}},
        {"type": "person", "identifiers": {"id": "43"}, "action": "event", "name": "signup", "attributes": {}},
    ])  # fmt: skip
    client.delete("43")
    drain(server_spool)

    acme = people(cast.acme)
    assert acme["42"].email == "bob@example.com"
    assert acme["42"].attributes["plan"] == "basic"
    assert "43" not in acme
    assert sorted((e.kind, e.name) for e in events(cast.acme)) == [
        ("event", "purchase"), ("event", "viewed"), ("page", "https://example.com/pricing"),
    ]  # fmt: skip
    assert people(cast.globex) == {}


def test_the_customerio_library_reports_bad_credentials(
    cast, committed_keys, ingest_server, server_spool, trust_ferry
):
    from customerio import CustomerIOException

    key = committed_keys["acme"]
    client = CustomerIO(
        key.site_id, "wrong", host="127.0.0.1", port=int(ingest_server["port"]), retries=0
    )
    with pytest.raises(CustomerIOException, match="401"):
        client.identify(id="42", plan="basic")
    assert server_spool.pending_count() == 0


def test_the_segment_library_sends_batches_with_the_write_key_in_the_body(
    cast, committed_keys, ingest_server, server_spool, trust_ferry
):
    errors = []
    client = SegmentClient(
        committed_keys["globex"].write_key, host=f"https://127.0.0.1:{ingest_server['port']}",
        sync_mode=True, max_retries=0, on_error=lambda error, batch: errors.append(error),
    )  # fmt: skip
    client.identify("u1", {"email": "peter@initech.com", "plan": "premium"})
    client.track("u1", "User Registered", {"plan": "Pro Annual"})
    client.page("u1", "Docs", "Home", {"url": "https://example.com"})
    client.screen("u1", "Settings")
    client.group("u1", "acme-co", {"name": "Acme"})
    client.alias("anon-1", "u1")
    client.flush()
    assert errors == []
    drain(server_spool)
    globex = people(cast.globex)
    assert globex["u1"].attributes == {"email": "peter@initech.com", "plan": "premium"}
    assert [e.name for e in events(cast.globex)] == ["User Registered", "Home", "Settings", "group"]
    assert people(cast.acme) == {}
