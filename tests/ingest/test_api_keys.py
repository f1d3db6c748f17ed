"""The dashboard's API keys page: create, rotate, revoke; secrets shown once."""

import pytest

from accounts.models import ApiKey
from tests.conftest import client_for
from tests.ingest.conftest import api_client, send

pytestmark = pytest.mark.django_db


def create(client, name="Backend"):
    return client.post("/settings/api-keys/new/", {"name": name})


def test_an_owner_creates_a_key_and_sees_its_secrets_once(cast, spool):
    client = client_for(cast.acme, cast.alice)
    response = create(client)
    assert response.status_code == 200
    key = ApiKey.objects.get(account=cast.acme)
    secret = response.context["issued"].api_key
    assert secret.encode() in response.content
    assert key.api_key_hash != secret and secret not in key.api_key_hash
    listing = client.get("/settings/api-keys/")
    assert key.site_id.encode() in listing.content
    assert secret.encode() not in listing.content
    assert key.created_by == "alice@acme.example"


def test_the_issued_secrets_work_against_the_api(cast, spool):
    issued = create(client_for(cast.acme, cast.adam)).context["issued"]
    assert send(api_client(issued), "put", "/api/v1/customers/1", {}).status_code == 200


@pytest.mark.parametrize("who", ["mia", "vic"])
def test_members_and_viewers_cannot_create_rotate_or_revoke(cast, spool, who):
    key, _ = ApiKey.issue(cast.acme, "Existing")
    client = client_for(cast.acme, getattr(cast, who))
    assert client.get("/settings/api-keys/").status_code == 200
    assert create(client).status_code == 403
    assert client.post(f"/settings/api-keys/{key.pk}/rotate/").status_code == 403
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 403
    assert ApiKey.objects.filter(account=cast.acme).count() == 1


def test_rotating_replaces_the_secrets_at_once(cast, spool):
    key, old = ApiKey.issue(cast.acme, "Backend")
    assert send(api_client(old), "put", "/api/v1/customers/1", {}).status_code == 200
    response = client_for(cast.acme, cast.alice).post(f"/settings/api-keys/{key.pk}/rotate/")
    new = response.context["issued"]
    assert new.site_id == old.site_id and new.api_key != old.api_key
    from ingest.credentials import forget_cached_credentials

    forget_cached_credentials()  # another process would forget it within 30 seconds
    assert send(api_client(old), "put", "/api/v1/customers/1", {}).status_code == 401
    assert send(api_client(new), "put", "/api/v1/customers/1", {}).status_code == 200


def test_a_revoked_key_is_refused(cast, spool):
    key, issued = ApiKey.issue(cast.acme, "Backend")
    response = client_for(cast.acme, cast.alice).post(f"/settings/api-keys/{key.pk}/revoke/")
    assert response.status_code == 302
    from ingest.credentials import forget_cached_credentials

    forget_cached_credentials()
    assert send(api_client(issued), "put", "/api/v1/customers/1", {}).status_code == 401


def test_another_accounts_key_cannot_be_seen_rotated_or_revoked(cast, spool):
    key, _ = ApiKey.issue(cast.globex, "Globex backend")
    client = client_for(cast.acme, cast.alice)
    assert key.site_id.encode() not in client.get("/settings/api-keys/").content
    assert client.post(f"/settings/api-keys/{key.pk}/rotate/").status_code == 404
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.is_active


def test_a_key_needs_a_name(cast, spool):
    response = create(client_for(cast.acme, cast.alice), name="  ")
    assert response.status_code == 200
    assert (
        b"This field is required" in response.content or b"Give the key a name" in response.content
    )
    assert not ApiKey.objects.exists()


def test_the_page_shows_the_tracker_snippet(cast, spool):
    ApiKey.issue(cast.acme, "Web")
    response = client_for(cast.acme, cast.vic).get("/settings/api-keys/")
    assert b"/static/ferry/tracker.js" in response.content
    assert ApiKey.objects.get().tracker_key.encode() in response.content


def test_the_create_api_key_command_prints_json(cast, spool):
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_key", "acme", "--name", "CLI", "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert {"site_id", "api_key", "write_key", "tracker_key"} <= printed.keys()
    assert send(api_client(_Issued(printed)), "put", "/api/v1/customers/1", {}).status_code == 200


class _Issued:
    def __init__(self, printed: dict) -> None:
        self.site_id, self.api_key = printed["site_id"], printed["api_key"]
