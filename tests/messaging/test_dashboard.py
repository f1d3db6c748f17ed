"""The dashboard's messaging pages: compose, preview, test, send, cancel, the delivery log,
a delivery's page, topics, and the person profile's messages."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEntry
from messaging import sending
from messaging.models import Broadcast, Delivery, DeliveryEvent, Topic
from tests.conftest import client_for
from tests.messaging.conftest import make_broadcast, make_person, make_segment, sent_delivery

pytestmark = pytest.mark.django_db


def compose(chosen, **changes) -> dict:
    return {
        "name": "Launch", "subject": "Hi {{ customer.first_name }}",
        "from_email": "Acme <news@acme.example>", "reply_to": "", "segment": chosen.pk,
        "topic": "", "body_format": "markdown", "body": "Hello **{{ customer.first_name }}**",
        "text_body": "", **changes,
    }  # fmt: skip


def test_a_member_composes_a_draft_and_it_is_audited(cast, readers):
    segment = make_segment(cast.acme, readers)
    response = client_for(cast.acme, cast.mia).post("/broadcasts/new/", compose(segment))
    assert response.status_code == 302
    with cast.acme:
        broadcast = Broadcast.objects.get()
        entry = AuditEntry.objects.get()
    assert (broadcast.state, broadcast.segment_id, broadcast.created_by) == (
        "draft", segment.pk, "mia@acme.example",
    )  # fmt: skip
    assert (entry.action, entry.target) == ("broadcast.created", "Launch")
    assert response["Location"] == f"/broadcasts/{broadcast.pk}/"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "Hi {{ first_name }}"}, "subject"),
        ({"body": "{{ customer.name | upcase }}"}, "body"),
        ({"from_email": "not an address"}, "from_email"),
        ({"segment": ""}, "segment"),
        ({"body": ""}, "body"),
    ],
)
def test_bad_drafts_are_refused_with_the_reason_and_keep_what_was_typed(
    cast, readers, change, field
):
    segment = make_segment(cast.acme, readers)
    response = client_for(cast.acme, cast.mia).post("/broadcasts/new/", compose(segment, **change))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert b"Launch" in response.content  # the name typed is still there
    with cast.acme:
        assert not Broadcast.objects.exists()


def test_viewers_see_broadcasts_and_change_nothing(cast, readers):
    segment = make_segment(cast.acme, readers)
    broadcast = make_broadcast(cast.acme, segment)
    client = client_for(cast.acme, cast.vic)
    assert client.get("/broadcasts/").status_code == 200
    page = client.get(f"/broadcasts/{broadcast.pk}/")
    assert page.status_code == 200 and b"send-form" not in page.content
    for url in ("/broadcasts/new/", f"/broadcasts/{broadcast.pk}/edit/"):
        assert client.post(url, compose(segment)).status_code == 403
    for action in ("send", "test", "cancel"):
        assert (
            client.post(f"/broadcasts/{broadcast.pk}/{action}/", {"when": "now"}).status_code == 403
        )
    with cast.acme:
        assert Broadcast.objects.get().state == "draft"
        assert not Delivery.objects.exists()


def test_the_preview_shows_the_message_as_a_given_person(cast, readers):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    client = client_for(cast.acme, cast.vic)
    page = client.get(f"/broadcasts/{broadcast.pk}/?person=bob@example.com")
    preview = page.context["preview"]
    assert preview.subject == "Hello <Bob>" and "News for &lt;Bob&gt;" in preview.html
    assert "Your plan: **free**" in preview.text
    fragment = client.get(
        f"/broadcasts/{broadcast.pk}/preview/?person=ann-1", HTTP_HX_REQUEST="true"
    )
    assert fragment.status_code == 200 and b'id="preview"' in fragment.content
    assert b"<html" not in fragment.content and b"Hello Ann" in fragment.content
    # An address is found whatever its case, stored or asked.
    make_person(cast.acme, "dee-4", "Dee.Doe@Example.com", first_name="Dee")
    shown = client.get(f"/broadcasts/{broadcast.pk}/?person=dee.doe@EXAMPLE.com")
    assert shown.context["preview"].subject == "Hello Dee"
    missing = client.get(f"/broadcasts/{broadcast.pk}/?person=nobody@example.com")
    assert (
        missing.context["preview_missing"] and missing.context["preview"].subject == "Hello there"
    )


def test_a_test_send_goes_through_smtp_with_the_previewed_persons_values(cast, readers, mailbox):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    response = client_for(cast.acme, cast.mia).post(
        f"/broadcasts/{broadcast.pk}/test/",
        {"email": "mia@acme.example", "person": "ann@example.com"},
    )
    assert response.status_code == 302
    received = mailbox.to("mia@acme.example")
    assert received.message["Subject"] == "Hello Ann"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with cast.acme:
        test = Delivery.objects.get()
        broadcast.refresh_from_db()
        assert AuditEntry.objects.get().action == "broadcast.test_sent"
    assert (
        test.is_test and test.state == "sent" and test.message_id == received.message["Message-ID"]
    )
    assert (broadcast.state, broadcast.sent) == ("draft", 0)  # tests count nowhere


def test_send_now_schedules_and_the_worker_sends(cast, readers, mailbox):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    client = client_for(cast.acme, cast.alice)
    assert client.post(f"/broadcasts/{broadcast.pk}/send/", {"when": "now"}).status_code == 302
    with cast.acme:
        broadcast.refresh_from_db()
        assert broadcast.state == "scheduled" and broadcast.send_at <= timezone.now()
    sending.send_due_broadcasts()
    assert len(mailbox.received) == 3
    page = client.get(f"/broadcasts/{broadcast.pk}/")
    assert page.context["broadcast"].state == "sent" and b"recipients" in page.content
    assert page.context["chart"] is not None
    assert b"<polyline" in page.content


def test_the_chart_table_gives_each_hour_its_counts_in_the_order_of_the_lines(cast, readers):
    from messaging.models import BroadcastHour

    broadcast = make_broadcast(cast.acme, None, state="sent")
    first = datetime(2026, 11, 1, 10, tzinfo=UTC)
    with cast.acme:
        BroadcastHour.objects.bulk_create([
            BroadcastHour(broadcast=broadcast, hour=first, kind="sent", count=7),
            BroadcastHour(broadcast=broadcast, hour=first, kind="opened", count=3),
            BroadcastHour(broadcast=broadcast, hour=first + timedelta(hours=2), kind="opened", count=2),
        ])  # fmt: skip
    page = client_for(cast.acme, cast.vic).get(f"/broadcasts/{broadcast.pk}/")
    chart = page.context["chart"]
    assert [line.kind for line in chart.lines] == ["sent", "opened"]
    assert chart.rows == [("1 Nov 10:00", [7, 3]), ("1 Nov 12:00", [0, 2])]
    assert b"<td>1 Nov 12:00</td><td>0</td><td>2</td>" in page.content


def test_send_later_refuses_a_time_in_the_past(cast, readers):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    client = client_for(cast.acme, cast.alice)
    past = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        f"/broadcasts/{broadcast.pk}/send/", {"when": "later", "send_at": past}, follow=True
    )
    assert b"That time has passed" in response.content
    future = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    client.post(f"/broadcasts/{broadcast.pk}/send/", {"when": "later", "send_at": future})
    with cast.acme:
        broadcast.refresh_from_db()
    assert broadcast.state == "scheduled" and broadcast.send_at > timezone.now()


def test_cancelling_a_broadcast_being_sent_skips_what_is_not_yet_sent(cast, readers, mailbox):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    with cast.acme:
        broadcast.state, broadcast.send_at = "scheduled", timezone.now()
        broadcast.save()
        sending.queue_recipients(broadcast, timezone.now())
    client_for(cast.acme, cast.alice).post(f"/broadcasts/{broadcast.pk}/cancel/")
    sending.send_due_broadcasts()
    assert mailbox.received == []
    with cast.acme:
        broadcast.refresh_from_db()
        reasons = set(Delivery.objects.values_list("reason", flat=True))
    assert (broadcast.state, broadcast.skipped) == ("cancelled", 3)
    assert reasons == {"the broadcast was cancelled"}


def test_a_sent_broadcast_can_no_longer_be_edited(cast, readers):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers), state="sent")
    client = client_for(cast.acme, cast.alice)
    client.post(
        f"/broadcasts/{broadcast.pk}/edit/",
        compose(make_segment(cast.acme, readers), subject="Changed"),
    )
    with cast.acme:
        assert Broadcast.objects.get(pk=broadcast.pk).subject != "Changed"


def many_deliveries(cast, readers, count: int = 60) -> Broadcast:
    broadcast = make_broadcast(cast.acme, None, state="sent")
    start = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    with cast.acme:
        Delivery.objects.bulk_create(
            Delivery(broadcast=broadcast, email=f"p{n}@example.com", state="opened" if n % 3 else "sent",
                     created_at=start + timedelta(minutes=n))
            for n in range(count)
        )  # fmt: skip
    return broadcast


def test_the_delivery_log_pages_newest_first_with_a_cursor(cast, readers):
    many_deliveries(cast, readers)
    client = client_for(cast.acme, cast.vic)
    first = client.get("/deliveries/")
    assert len(first.context["rows"]) == 50 and first.context["next_cursor"]
    rest = client.get(f"/deliveries/?after={first.context['next_cursor']}")
    assert len(rest.context["rows"]) == 10 and rest.context["next_cursor"] is None
    assert rest.context["rows"][0].pk < first.context["rows"][-1].pk


def test_the_delivery_log_filters_by_state_broadcast_person_and_date(cast, readers):
    broadcast = many_deliveries(cast, readers)
    ann_delivery = sent_delivery(cast.acme, readers[0])
    client = client_for(cast.acme, cast.vic)
    opened = client.get("/deliveries/?state=opened").context["rows"]
    assert len(opened) == 40 and {d.state for d in opened} == {"opened"}
    by_broadcast = client.get(f"/deliveries/?broadcast={ann_delivery.broadcast_id}").context["rows"]
    assert [d.pk for d in by_broadcast] == [ann_delivery.pk]
    assert [d.pk for d in client.get("/deliveries/?person=ann@example.com").context["rows"]] == [
        ann_delivery.pk
    ]
    assert [d.pk for d in client.get("/deliveries/?person=ann-1").context["rows"]] == [
        ann_delivery.pk
    ]
    assert client.get("/deliveries/?person=nobody@example.com").context["rows"] == []
    today = timezone.now().date()
    recent = client.get(f"/deliveries/?since={today.isoformat()}").context["rows"]
    assert [d.pk for d in recent] == [ann_delivery.pk]
    that_day = client.get(
        f"/deliveries/?broadcast={broadcast.pk}&since=2026-11-01&until=2026-11-01"
    )
    assert len(that_day.context["rows"]) == 50 and that_day.context["next_cursor"]
    assert client.get("/deliveries/?until=2026-10-31").context["rows"] == []
    assert client.get("/deliveries/?since=2026-11-02&until=2026-11-02").context["rows"] == []
    bad = client.get(f"/deliveries/?since={today}&until={today - timedelta(days=3)}")
    assert bad.status_code == 200 and "until" in bad.context["form"].errors
    fragment = client.get("/deliveries/?state=sent", HTTP_HX_REQUEST="true")
    assert b'id="deliveries"' in fragment.content and b"<html" not in fragment.content


def test_the_log_filters_by_a_broadcast_older_than_the_ones_it_offers(cast, readers):
    old = make_broadcast(cast.acme, None, name="The old one", state="sent")
    ann_delivery = sent_delivery(cast.acme, readers[0], old)
    with cast.acme:
        Broadcast.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=90))
    for n in range(25):
        make_broadcast(cast.acme, None, name=f"Newer {n}")
    client = client_for(cast.acme, cast.vic)
    offered = client.get("/deliveries/").context["broadcast_choices"]
    assert len(offered) == 20 and old.pk not in {pk for pk, _ in offered}
    page = client.get(f"/deliveries/?broadcast={old.pk}")
    assert [row.pk for row in page.context["rows"]] == [ann_delivery.pk]
    assert f'<option value="{old.pk}" selected>The old one</option>'.encode() in page.content
    assert client.get("/deliveries/?broadcast=999999").context["rows"] == []


def test_an_end_date_after_the_last_delivery_keeps_everything_up_to_it(cast, readers):
    many_deliveries(cast, readers)
    client = client_for(cast.acme, cast.vic)
    rows = client.get("/deliveries/?since=2026-11-01&until=2099-01-01").context["rows"]
    assert len(rows) == 50


def test_every_filter_combination_is_one_query_for_the_rows(
    cast, readers, django_assert_max_num_queries
):
    broadcast = many_deliveries(cast, readers)
    sent_delivery(cast.acme, readers[0])
    client = client_for(cast.acme, cast.vic)
    client.get("/deliveries/")
    with django_assert_max_num_queries(10) as plain:
        client.get("/deliveries/")
    everything = (
        f"/deliveries/?state=opened&broadcast={broadcast.pk}&person=ann@example.com"
        "&since=2026-11-01&until=2026-11-02"
    )
    with django_assert_max_num_queries(10) as filtered:
        response = client.get(everything)
    assert response.status_code == 200
    assert len(filtered.captured_queries) == len(plain.captured_queries)


def test_the_delivery_page_shows_the_message_headers_and_events(cast, readers, mailbox):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    with cast.acme:
        broadcast.state, broadcast.send_at = "scheduled", timezone.now()
        broadcast.save()
    sending.send_due_broadcasts()
    with cast.acme:
        delivery = Delivery.objects.get(email="ann@example.com")
        DeliveryEvent.objects.create(
            delivery=delivery, person=delivery.person, broadcast=broadcast, kind="opened",
            at=timezone.now(), detail={"source": "pixel"},
        )  # fmt: skip
    page = client_for(cast.acme, cast.vic).get(f"/deliveries/{delivery.pk}/")
    assert page.status_code == 200
    headers = dict(page.context["message"]["headers"])
    sent = mailbox.to("ann@example.com").message
    assert headers["Message-ID"] == sent["Message-ID"]
    assert headers["Subject"] == sent["Subject"] == "Hello Ann"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "News for Ann" in page.context["message"]["html"]
    assert [e.kind for e in page.context["events"]] == ["sent", "opened"]
    assert b"srcdoc=" in page.content and b"sandbox" in page.content


def test_the_person_profile_lists_their_deliveries(cast, readers):
    delivery = sent_delivery(cast.acme, readers[0])
    page = client_for(cast.acme, cast.vic).get(f"/people/{readers[0].pk}/")
    assert list(page.context["deliveries"]) == [delivery]
    assert f'href="/deliveries/{delivery.pk}/"'.encode() in page.content


def test_topics_are_created_by_editors_and_audited(cast):
    client_for(cast.acme, cast.mia).post("/topics/", {"name": "Product news", "description": ""})
    assert client_for(cast.acme, cast.vic).post("/topics/", {"name": "Tips"}).status_code == 403
    duplicate = client_for(cast.acme, cast.mia).post("/topics/", {"name": "product NEWS"})
    assert "name" in duplicate.context["form"].errors
    with cast.acme:
        topic = Topic.objects.get()
        assert AuditEntry.objects.get().action == "topic.created"
    client_for(cast.acme, cast.mia).post(f"/topics/{topic.pk}/delete/")
    with cast.acme:
        assert not Topic.objects.exists()


def test_another_accounts_rows_are_not_found(cast, readers):
    gina = make_person(cast.globex, "g-1", "gina@globex.example")
    globex_broadcast = make_broadcast(cast.globex, make_segment(cast.globex, [gina]))
    globex_delivery = sent_delivery(cast.globex, gina)
    with cast.globex:
        topic = Topic.objects.create(name="Globex news")
    client = client_for(cast.acme, cast.alice)
    for url in (
        f"/broadcasts/{globex_broadcast.pk}/", f"/broadcasts/{globex_broadcast.pk}/edit/",
        f"/deliveries/{globex_delivery.pk}/",
    ):  # fmt: skip
        assert client.get(url).status_code == 404
    for url in (
        f"/broadcasts/{globex_broadcast.pk}/send/", f"/broadcasts/{globex_broadcast.pk}/test/",
        f"/broadcasts/{globex_broadcast.pk}/cancel/", f"/topics/{topic.pk}/delete/",
    ):  # fmt: skip
        assert client.post(url, {"when": "now", "email": "x@example.com"}).status_code == 404
    assert client.get("/deliveries/").context["rows"] == []
    with cast.globex:
        assert Broadcast.objects.get(pk=globex_broadcast.pk).state == "draft"
        assert Topic.objects.exists()


def test_another_accounts_session_is_anonymous_here(cast, readers):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    charlie = client_for(cast.globex, cast.charlie)
    charlie.defaults["HTTP_HOST"] = cast.acme.host
    for url in ("/broadcasts/", f"/broadcasts/{broadcast.pk}/", "/deliveries/", "/topics/"):
        response = charlie.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    assert charlie.post(f"/broadcasts/{broadcast.pk}/send/", {"when": "now"}).status_code == 302
    with cast.acme:
        assert Broadcast.objects.get().state == "draft"


def test_dashboard_pages_are_not_served_on_the_public_side(cast):
    from tests.conftest import FerryClient

    client = FerryClient(HTTP_HOST="localhost")
    assert client.get("/broadcasts/").status_code == 404
    assert client.get("/deliveries/").status_code == 404
