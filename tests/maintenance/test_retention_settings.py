"""The account's retention page: everyone reads, owners and admins shorten, all audited."""

import pytest

from accounts.models import AuditEntry
from maintenance.models import RetentionPolicy
from tests.conftest import client_for
from tests.ingest.conftest import basic

pytestmark = pytest.mark.django_db
URL = "/settings/retention/"


@pytest.fixture(autouse=True)
def defaults(settings):
    settings.RETENTION_DEFAULT_DAYS = {"events": 365, "deliveries": 180, "dead_letters": 30}


def post(client, events="", deliveries="", dead_letters=""):
    data = {"events_days": events, "deliveries_days": deliveries, "dead_letters_days": dead_letters}
    return client.post(URL, data)


def test_every_teammate_reads_the_policy(cast):
    for user in (cast.alice, cast.mia, cast.vic):
        response = client_for(cast.acme, user).get(URL)
        assert response.status_code == 200
        assert b'id="kept-events">365 days' in response.content
    assert b"Save retention" not in client_for(cast.acme, cast.vic).get(URL).content


def test_an_admin_shortens_retention_and_it_is_audited(cast):
    response = post(client_for(cast.acme, cast.adam), events="90", dead_letters="7")
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get(account=cast.acme)
    assert (policy.days("events"), policy.days("deliveries"), policy.days("dead_letters")) == (
        90, 180, 7,
    )  # fmt: skip
    with cast.acme:
        entry = AuditEntry.objects.get(action="retention.changed")
    assert entry.actor == "adam@acme.example"
    assert entry.detail == {
        "events_days": {"old": None, "new": 90},
        "dead_letters_days": {"old": None, "new": 7},
    }
    page = client_for(cast.acme, cast.adam).get(URL)
    assert b'id="kept-events">90 days' in page.content


def test_longer_than_the_ceiling_is_refused_with_a_clear_error_and_nothing_changes(cast):
    RetentionPolicy.objects.create(account=cast.acme, events_days=60)
    response = post(client_for(cast.acme, cast.alice), events="400", deliveries="0")
    assert response.status_code == 200
    assert b"At most 365 days: that is as long as this account may keep it." in response.content
    assert b"At least 1 day." in response.content
    assert RetentionPolicy.objects.get(account=cast.acme).events_days == 60
    with cast.acme:
        assert not AuditEntry.objects.exists()


def test_members_and_viewers_change_nothing(cast):
    for user in (cast.mia, cast.vic):
        assert post(client_for(cast.acme, user), events="10").status_code == 403
    assert not RetentionPolicy.objects.exists()


def test_another_accounts_teammates_sessions_and_keys_reach_nothing(cast, acme_key):
    RetentionPolicy.objects.create(account=cast.acme, events_days=45)
    # Charlie on his own host sees and changes globex only.
    charlie = client_for(cast.globex, cast.charlie)
    assert b'id="kept-events">365 days' in charlie.get(URL).content
    assert post(charlie, events="5").status_code == 302
    assert RetentionPolicy.objects.get(account=cast.acme).events_days == 45
    assert RetentionPolicy.objects.get(account=cast.globex).events_days == 5
    # Charlie's session on acme's host is nobody there.
    stranger = client_for(cast.acme)
    stranger.cookies = charlie.cookies
    assert stranger.get(URL).status_code == 302
    assert post(stranger, events="1").status_code == 302
    # An API key is no login; the public side has no such page.
    key = basic(acme_key.site_id, acme_key.api_key)
    assert client_for(None).get(URL, HTTP_AUTHORIZATION=key).status_code == 404
    assert (
        client_for(cast.acme).post(URL, {"events_days": "1"}, HTTP_AUTHORIZATION=key).status_code
        == 302
    )
    assert RetentionPolicy.objects.get(account=cast.acme).events_days == 45
    with cast.acme:
        assert not AuditEntry.objects.exists()
