"""What a recipient's links do: one-click unsubscribe (RFC 8058), the confirmation page, the
preferences page, the open pixel and click redirects. All but preferences need no database."""

import time

import pytest
from django.core import signing

from messaging import links
from messaging.models import Broadcast, Delivery, DeliveryEvent, Topic, TopicOptOut
from segments.models import Membership, Person, Segment
from tests.conftest import FerryClient
from tests.messaging.conftest import drain, make_person, sent_delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(cast) -> Person:
    return make_person(cast.acme, "ann-1", "ann@example.com", first_name="Ann")


def public() -> FerryClient:
    return FerryClient(HTTP_HOST="localhost")


def token(salt: str, account, delivery: Delivery, url: str = "") -> str:
    return links.sign(salt, str(account.pk), delivery.pk, url)


def reload(account, model, pk):
    with account:
        return model.objects.get(pk=pk)


def test_the_one_click_post_needs_no_database_and_unsubscribes_once_drained(
    cast, ann, spool, django_assert_num_queries
):
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/unsubscribe/{token(links.UNSUBSCRIBE_SALT, cast.acme, delivery)}/"
    with django_assert_num_queries(0):
        response = public().post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert spool.pending_count() == 1
    assert reload(cast.acme, Person, ann.pk).unsubscribed is False  # not yet applied

    drain(spool)
    person = reload(cast.acme, Person, ann.pk)
    delivery = reload(cast.acme, Delivery, delivery.pk)
    broadcast = reload(cast.acme, Broadcast, delivery.broadcast_id)
    assert person.unsubscribed and person.attributes["unsubscribed"] is True
    assert delivery.state == "unsubscribed" and delivery.unsubscribed_at
    assert broadcast.unsubscribed == 1
    with cast.acme:
        event = DeliveryEvent.objects.get(kind="unsubscribed")
    assert event.detail["source"] == "one-click"


def test_the_get_shows_a_confirmation_and_changes_nothing(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/unsubscribe/{token(links.UNSUBSCRIBE_SALT, cast.acme, delivery)}/"
    response = public().get(url)
    assert response.status_code == 200
    assert b"Unsubscribe?" in response.content and b'name="confirm"' in response.content
    assert spool.pending_count() == 0

    confirmed = public().post(url, {"confirm": "1"})
    assert confirmed.status_code == 200 and b"You are unsubscribed" in confirmed.content
    drain(spool)
    assert reload(cast.acme, Person, ann.pk).unsubscribed


def test_a_post_that_is_neither_one_click_nor_confirmed_is_refused(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/unsubscribe/{token(links.UNSUBSCRIBE_SALT, cast.acme, delivery)}/"
    assert public().post(url, {"List-Unsubscribe": "maybe"}).status_code == 400
    assert spool.pending_count() == 0


def test_forged_expired_and_other_purpose_tokens_are_refused(cast, ann, spool, settings):
    delivery = sent_delivery(cast.acme, ann)
    good = token(links.UNSUBSCRIBE_SALT, cast.acme, delivery)
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    open_token = token(links.OPEN_SALT, cast.acme, delivery)
    for bad in (forged, open_token, "nonsense"):
        assert (
            public()
            .post(f"/email/unsubscribe/{bad}/", {"List-Unsubscribe": "One-Click"})
            .status_code
            == 404
        )
    settings.MESSAGING_UNSUBSCRIBE_MAX_AGE = 0
    time.sleep(1.1)
    assert (
        public().post(f"/email/unsubscribe/{good}/", {"List-Unsubscribe": "One-Click"}).status_code
        == 404
    )
    assert spool.pending_count() == 0


def test_unsubscribing_is_counted_once_when_the_spool_replays_it(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/unsubscribe/{token(links.UNSUBSCRIBE_SALT, cast.acme, delivery)}/"
    public().post(url, {"List-Unsubscribe": "One-Click"})
    items = spool.claim(10, 0)  # leased and lost: the lease expires at once
    assert len(items) == 1
    drain(spool)
    import json

    from ingest.apply import apply_items

    with cast.acme:
        apply_items([json.loads(items[0].payload)])  # applied a second time
        assert DeliveryEvent.objects.filter(kind="unsubscribed").count() == 1
        assert Broadcast.objects.get(pk=delivery.broadcast_id).unsubscribed == 1


def test_the_open_pixel_records_an_open_and_always_answers_a_gif(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    response = public().get(
        f"/email/open/{token(links.OPEN_SALT, cast.acme, delivery)}/o.gif",
        HTTP_USER_AGENT="Mail/1.0",
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert public().get("/email/open/forged/o.gif").status_code == 200
    drain(spool)
    delivery = reload(cast.acme, Delivery, delivery.pk)
    assert delivery.state == "opened" and delivery.opened_at
    with cast.acme:
        event = DeliveryEvent.objects.get(kind="opened")
        assert Broadcast.objects.get(pk=delivery.broadcast_id).opened == 1
    assert event.detail == {"source": "pixel", "user_agent": "Mail/1.0"}


def test_a_second_open_is_an_event_but_not_another_opener(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/open/{token(links.OPEN_SALT, cast.acme, delivery)}/o.gif"
    public().get(url)
    public().get(url)
    drain(spool)
    with cast.acme:
        assert DeliveryEvent.objects.filter(kind="opened").count() == 2
        assert Broadcast.objects.get(pk=delivery.broadcast_id).opened == 1


def test_a_click_redirects_to_the_signed_url_and_is_recorded(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    target = "https://acme.example/news?a=1&b=2"
    response = public().get(f"/email/click/{token(links.CLICK_SALT, cast.acme, delivery, target)}/")
    assert response.status_code == 302 and response["Location"] == target
    drain(spool)
    delivery = reload(cast.acme, Delivery, delivery.pk)
    assert delivery.state == "clicked" and delivery.clicked_at
    with cast.acme:
        assert DeliveryEvent.objects.get(kind="clicked").detail["url"] == target


def test_links_are_the_tokens_django_signing_makes_and_follow_the_secret_key(settings):
    target = "https://acme.example/news?a=1&b=\u00e9"
    for salt in (links.UNSUBSCRIBE_SALT, links.CLICK_SALT):
        for url in ("", target):
            data = {"a": "7", "d": 12345, **({"u": url} if url else {})}
            token = links.sign(salt, "7", 12345, url)
            assert token == signing.dumps(data, salt=salt)
            assert links.read(salt, token, 60) == links.LinkTarget("7", 12345, url)
    before = links.sign(links.OPEN_SALT, "7", 1)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert links.read(links.OPEN_SALT, before, 60) is None
    assert links.read(links.OPEN_SALT, links.sign(links.OPEN_SALT, "7", 1), 60) is not None


def test_a_forged_click_goes_nowhere_and_an_expired_one_still_redirects_unrecorded(
    cast, ann, spool, settings
):
    delivery = sent_delivery(cast.acme, ann)
    made_up = signing.dumps(
        {"a": str(cast.acme.pk), "d": delivery.pk, "u": "https://evil.example"}, salt="other"
    )
    assert public().get(f"/email/click/{made_up}/").status_code == 404
    genuine = token(links.CLICK_SALT, cast.acme, delivery, "https://acme.example/")
    settings.MESSAGING_TRACKING_MAX_AGE = 0
    time.sleep(1.1)
    response = public().get(f"/email/click/{genuine}/")
    assert response.status_code == 302 and response["Location"] == "https://acme.example/"
    assert spool.pending_count() == 0


def test_the_preferences_page_opts_out_of_topics_and_resubscribes(cast, ann, spool):
    with cast.acme:
        news = Topic.objects.create(name="Product news")
        tips = Topic.objects.create(name="Tips")
        ann.unsubscribed = True
        ann.save()
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/preferences/{token(links.PREFERENCES_SALT, cast.acme, delivery)}/"
    page = public().get(url)
    assert page.status_code == 200
    assert b"Product news" in page.content and b"Tips" in page.content
    saved = public().post(url, {"subscribed": "on", "topic": [str(tips.pk)]})
    assert saved.status_code == 200 and b"saved" in saved.content
    with cast.acme:
        person = Person.objects.get(pk=ann.pk)
        opted_out = set(
            TopicOptOut.objects.filter(person=person).values_list("topic_id", flat=True)
        )
    assert person.unsubscribed is False and person.attributes["unsubscribed"] is False
    assert opted_out == {news.pk}


def test_unsubscribing_on_the_preferences_page_moves_the_person_out_of_subscribed_segments(
    cast, ann, spool
):
    from tests.segments.conftest import members, rule_segment

    with cast.acme:
        subscribed = rule_segment("Subscribed", {"type": "subscription", "state": "subscribed"})
        assert members(subscribed) == {"ann-1"}
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/preferences/{token(links.PREFERENCES_SALT, cast.acme, delivery)}/"
    assert public().post(url, {}).status_code == 200  # "subscribed" unticked
    with cast.acme:
        assert Person.objects.get(pk=ann.pk).unsubscribed is True
        assert members(subscribed) == set()
    public().post(url, {"subscribed": "on"})
    with cast.acme:
        assert members(subscribed) == {"ann-1"}


def test_the_preferences_page_takes_the_accounts_writer_lock(cast, ann, spool):
    # The drain holds it while it reads, changes and writes people: a save that did not wait
    # for it could be overwritten by a batch read before it, subscription and all.
    from tests.threads import advisory_locks_held

    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/preferences/{token(links.PREFERENCES_SALT, cast.acme, delivery)}/"
    assert advisory_locks_held() == 0
    assert public().post(url, {}).status_code == 200
    assert advisory_locks_held() == 1  # held until the (test's) transaction ends, as in the drain


def test_a_topic_opt_out_from_the_preferences_page_is_honoured_by_the_next_send(cast, ann, spool):
    from django.utils import timezone

    from messaging import sending

    with cast.acme:
        news = Topic.objects.create(name="Product news")
    delivery = sent_delivery(cast.acme, ann)
    url = f"/email/preferences/{token(links.PREFERENCES_SALT, cast.acme, delivery)}/"
    public().post(url, {"subscribed": "on"})  # no topic ticked
    with cast.acme:
        segment = Segment.objects.create(name="All", kind="manual")
        Membership.objects.create(segment=segment, person=ann, entered_at=timezone.now())
        broadcast = Broadcast.objects.create(
            name="News",
            subject="News",
            from_email="a@acme.example",
            body="x",
            segment=segment,
            topic=news,
            state="scheduled",
            send_at=timezone.now(),
        )
        sending.queue_recipients(broadcast, timezone.now())
        skipped = Delivery.objects.get(broadcast=broadcast)
    assert (skipped.state, skipped.reason) == ("skipped", "opted out of the topic")


def test_the_preferences_link_of_another_account_names_only_that_accounts_delivery(cast, ann):
    gina = make_person(cast.globex, "g-1", "gina@globex.example")
    globex_delivery = sent_delivery(cast.globex, gina)
    url = f"/email/preferences/{token(links.PREFERENCES_SALT, cast.globex, globex_delivery)}/"
    public().post(url, {})  # unsubscribes gina, in globex
    assert reload(cast.globex, Person, gina.pk).unsubscribed
    assert not reload(cast.acme, Person, ann.pk).unsubscribed
