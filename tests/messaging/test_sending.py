"""Sending a broadcast through a real SMTP server: what arrives, who is skipped, and what
happens after a crash."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import links, sending
from messaging.models import Broadcast, Delivery, DeliveryEvent, Topic, TopicOptOut
from segments.models import Suppression
from tests.conftest import client_for
from tests.messaging.conftest import make_broadcast, make_person, make_segment

pytestmark = pytest.mark.django_db


def schedule(account, broadcast: Broadcast) -> Broadcast:
    with account:
        broadcast.state = Broadcast.State.SCHEDULED
        broadcast.send_at = timezone.now()
        broadcast.save()
    return broadcast


def send_all(account) -> int:
    with account:
        return sum(
            sending.send_broadcast(broadcast) for broadcast in Broadcast.objects.due(timezone.now())
        )


def test_each_member_gets_one_message_with_their_values_and_unsubscribe_headers(
    cast, readers, mailbox
):
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    assert send_all(cast.acme) == 3

    assert len(mailbox.received) == 3
    ann = mailbox.to("ann@example.com")
    assert ann.message["Subject"] == "Hello Ann"
    assert ann.message["From"] == "Acme <news@acme.example>"
    assert ann.message["To"] == "ann@example.com"
    assert ann.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = ann.message["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith("http://localhost:8000/email/unsubscribe/")
    html, text = ann.part("text/html"), ann.part("text/plain")
    assert "<h1>News for Ann</h1>" in html and "<strong>pro</strong>" in html
    assert "Your plan: **pro**" in text and unsubscribe_url in text
    assert "/email/click/" in html and "https://acme.example/news" not in html
    assert "/email/open/" in html and unsubscribe_url in html
    # Values are escaped in HTML, not in the text part or the subject.
    bob = mailbox.to("bob@example.com")
    assert "News for &lt;Bob&gt;" in bob.part("text/html")
    assert bob.message["Subject"] == "Hello <Bob>"
    assert mailbox.to("cat@example.com").message["Subject"] == "Hello there"

    with cast.acme:
        deliveries = {d.email: d for d in Delivery.objects.filter(broadcast=broadcast)}
        broadcast.refresh_from_db()
        sent_events = DeliveryEvent.objects.filter(kind="sent").count()
    assert {d.state for d in deliveries.values()} == {"sent"}
    assert deliveries["ann@example.com"].message_id == ann.message["Message-ID"]
    assert links.parse_message_id(ann.message["Message-ID"]) == (
        str(cast.acme.pk), deliveries["ann@example.com"].pk,
    )  # fmt: skip
    assert deliveries["ann@example.com"].values == {"first_name": "Ann", "plan": "pro"}
    assert (broadcast.state, broadcast.recipients, broadcast.sent) == ("sent", 3, 3)
    assert sent_events == 3


def test_unsubscribed_suppressed_opted_out_and_addressless_people_are_skipped_and_recorded(
    cast, readers, mailbox
):
    with cast.acme:
        topic = Topic.objects.create(name="Product news")
        Suppression.objects.create(kind="email", value="bob@example.com")
        TopicOptOut.objects.create(person=readers[2], topic=topic)
    gone = make_person(cast.acme, "dan-4", "dan@example.com")
    with cast.acme:
        gone.unsubscribed = True
        gone.save()
    nobody = make_person(cast.acme, "eve-5", None)
    segment = make_segment(cast.acme, [*readers, gone, nobody])
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, segment, topic=topic))
    send_all(cast.acme)

    assert [r.recipients for r in mailbox.received] == [["ann@example.com"]]
    with cast.acme:
        reasons = {
            d.person.customer_id: (d.state, d.reason)
            for d in Delivery.objects.filter(broadcast=broadcast).select_related("person")
        }
        broadcast.refresh_from_db()
        skipped_events = DeliveryEvent.objects.filter(kind="skipped").count()
    assert reasons == {
        "ann-1": ("sent", ""),
        "bob-2": ("skipped", "suppressed"),
        "cat-3": ("skipped", "opted out of the topic"),
        "dan-4": ("skipped", "unsubscribed"),
        "eve-5": ("skipped", "no email address"),
    }
    assert (broadcast.recipients, broadcast.sent, broadcast.skipped) == (5, 1, 4)
    assert skipped_events == 4


def test_someone_who_unsubscribes_after_queueing_is_skipped_at_sending(cast, readers, mailbox):
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    with cast.acme:
        sending.queue_recipients(broadcast, timezone.now())
        readers[0].unsubscribed = True
        readers[0].save()
    send_all(cast.acme)
    assert sorted(r.recipients[0] for r in mailbox.received) == [
        "bob@example.com", "cat@example.com",
    ]  # fmt: skip
    with cast.acme:
        assert Delivery.objects.get(person=readers[0]).reason == "unsubscribed"


def test_queueing_twice_adds_nobody(cast, readers, mailbox):
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    with cast.acme:
        sending.queue_recipients(broadcast, timezone.now())
        Broadcast.objects.filter(pk=broadcast.pk).update(state=Broadcast.State.SCHEDULED)
        sending.queue_recipients(broadcast, timezone.now())
        assert Delivery.objects.filter(broadcast=broadcast).count() == 3
    send_all(cast.acme)
    assert len(mailbox.received) == 3


def test_after_a_crash_mid_batch_nobody_is_sent_twice_and_the_rest_is_sent(
    cast, readers, mailbox, settings
):
    more = [make_person(cast.acme, f"p-{n}", f"p{n}@example.com") for n in range(5)]
    broadcast = schedule(
        cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, [*readers, *more]))
    )
    with cast.acme:
        sending.queue_recipients(broadcast, timezone.now())
        broadcast.refresh_from_db()
        # A sender claims three and dies before recording what it sent.
        claimed = sending.claim(broadcast, 3, timezone.now())
    assert len(claimed) == 3

    send_all(cast.acme)
    in_doubt = {c.email for c in claimed}
    assert len(mailbox.received) == 5
    assert not in_doubt & {r.recipients[0] for r in mailbox.received}
    with cast.acme:
        broadcast.refresh_from_db()
        assert broadcast.state == "sending"  # the claims are still open
        # Once the claims are older than the timeout they fail, saying why; never resent.
        later = timezone.now() + timedelta(seconds=settings.MESSAGING_CLAIM_TIMEOUT + 1)
        assert sending.give_up_stale_claims(later) == 3
        sending.finish_if_done(broadcast, later)
        failed = Delivery.objects.filter(broadcast=broadcast, state="failed")
        assert {d.email for d in failed} == in_doubt
        assert "not sent again" in failed[0].reason
        broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.sent, broadcast.failed) == ("sent", 5, 3)
    assert len(mailbox.received) == 5


def test_a_refused_recipient_fails_with_the_servers_reply_and_the_rest_are_sent(
    cast, readers, mailbox
):
    mailbox.refuse.add("bob@example.com")
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    send_all(cast.acme)
    assert len(mailbox.received) == 2
    with cast.acme:
        bob = Delivery.objects.get(email="bob@example.com")
        broadcast.refresh_from_db()
    assert bob.state == "failed" and "550" in bob.reason and bob.failed_at
    assert (broadcast.sent, broadcast.failed, broadcast.state) == (2, 1, "sent")


def test_a_recipient_refused_for_now_is_tried_again_later_and_the_rest_are_sent(
    cast, readers, mailbox
):
    mailbox.greylist.add("bob@example.com")
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    before = timezone.now()
    send_all(cast.acme)
    assert len(mailbox.received) == 2  # the others went out at once
    with cast.acme:
        bob = Delivery.objects.get(email="bob@example.com")
        broadcast.refresh_from_db()
        [deferred] = DeliveryEvent.objects.filter(delivery=bob)
    assert (bob.state, bob.attempts, bob.failed_at, bob.message_id) == ("queued", 1, None, None)
    assert (
        "450" in bob.reason and deferred.kind == "deferred" and "450" in deferred.detail["reason"]
    )
    # Not again until its time (MESSAGING_RETRY_SECONDS, 5 minutes), and not finished meanwhile.
    assert timedelta(minutes=5) <= bob.retry_at - before < timedelta(minutes=6)
    assert send_all(cast.acme) == 0
    assert (broadcast.state, broadcast.sent, broadcast.failed) == ("sending", 2, 0)
    page = client_for(cast.acme, cast.vic).get(f"/deliveries/{bob.pk}/").content.decode()
    assert "Refused for now</dt><dd>1 time; tried again after" in page

    mailbox.greylist.clear()
    with cast.acme:
        Delivery.objects.filter(pk=bob.pk).update(retry_at=timezone.now())
    assert send_all(cast.acme) == 1
    assert mailbox.to("bob@example.com")
    with cast.acme:
        broadcast.refresh_from_db()
        assert Delivery.objects.get(pk=bob.pk).state == "sent"
    assert (broadcast.state, broadcast.sent, broadcast.failed) == ("sent", 3, 0)


def test_a_recipient_refused_for_now_too_many_times_fails_with_the_count(
    cast, readers, mailbox, settings
):
    settings.MESSAGING_RETRY_SECONDS, settings.MESSAGING_MAX_ATTEMPTS = 0, 3
    mailbox.greylist.add("bob@example.com")
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    for _ in range(4):
        send_all(cast.acme)
    with cast.acme:
        bob = Delivery.objects.get(email="bob@example.com")
        broadcast.refresh_from_db()
        kinds = list(DeliveryEvent.objects.filter(delivery=bob).order_by("pk")
                     .values_list("kind", flat=True))  # fmt: skip
    assert (bob.state, bob.attempts) == ("failed", 3) and bob.failed_at
    assert bob.reason.startswith("refused 3 times, the last: bob@example.com: 450")
    assert kinds == ["deferred", "deferred", "failed"]
    assert (broadcast.state, broadcast.sent, broadcast.failed) == ("sent", 2, 1)


def test_when_the_server_gives_up_mid_batch_the_rest_and_the_batch_claimed_ahead_are_queued(
    cast, mailbox, settings
):
    settings.MESSAGING_SMTP_CONNECTIONS = 1
    people = [make_person(cast.acme, f"p-{n}", f"p{n}@example.com") for n in range(6)]
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, people)))
    # Batches of two: [p0, p1] is sent while [p2, p3] is claimed; p2 is deferred while
    # [p4, p5] has been claimed ahead.
    mailbox.defer.add("p2@example.com")
    with cast.acme, pytest.raises(sending.ConnectionBroke):
        sending.send_broadcast(Broadcast.objects.get(pk=broadcast.pk), batch_size=2)
    with cast.acme:
        states = dict(Delivery.objects.filter(broadcast=broadcast).values_list("email", "state"))
    assert {r.recipients[0] for r in mailbox.received} == {"p0@example.com", "p1@example.com"}
    assert states == {
        "p0@example.com": "sent", "p1@example.com": "sent", "p2@example.com": "queued",
        "p3@example.com": "queued", "p4@example.com": "queued", "p5@example.com": "queued",
    }  # fmt: skip

    mailbox.defer.clear()
    assert send_all(cast.acme) == 4
    assert sorted(r.recipients[0] for r in mailbox.received) == [
        f"p{n}@example.com" for n in range(6)
    ]
    with cast.acme:
        broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.sent) == ("sent", 6)


def test_a_limit_stops_claiming_ahead(cast, mailbox):
    people = [make_person(cast.acme, f"p-{n}", f"p{n}@example.com") for n in range(5)]
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, people)))
    with cast.acme:
        sent = sending.send_broadcast(Broadcast.objects.get(pk=broadcast.pk), limit=2, batch_size=2)
        states = list(Delivery.objects.filter(broadcast=broadcast).values_list("state", flat=True))
    assert sent == 2 and len(mailbox.received) == 2
    assert sorted(states) == ["queued", "queued", "queued", "sent", "sent"]


def test_an_smtp_server_that_is_down_leaves_the_messages_queued(cast, readers, settings):
    from tests.conftest import free_port

    settings.MAILERS = {
        **settings.MAILERS,
        "broadcasts": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        },
    }
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    with pytest.raises(OSError):
        send_all(cast.acme)
    with cast.acme:
        states = set(Delivery.objects.filter(broadcast=broadcast).values_list("state", flat=True))
    assert states == {"queued"}


def test_a_broadcast_scheduled_for_later_waits(cast, readers, mailbox):
    broadcast = make_broadcast(cast.acme, make_segment(cast.acme, readers))
    with cast.acme:
        broadcast.state = Broadcast.State.SCHEDULED
        broadcast.send_at = timezone.now() + timedelta(hours=1)
        broadcast.save()
    assert send_all(cast.acme) == 0
    assert mailbox.received == []


def test_the_throttle_spaces_messages_out(cast):
    throttle = sending.Throttle(rate=100)
    started = time.monotonic()
    for _ in range(5):
        throttle.wait(10)
    assert time.monotonic() - started >= 0.45


def test_the_worker_round_sends_in_every_account_and_only_there(cast, readers, mailbox):
    acme_broadcast = schedule(
        cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers))
    )
    gina = make_person(cast.globex, "g-1", "gina@globex.example", first_name="Gina")
    schedule(cast.globex, make_broadcast(cast.globex, make_segment(cast.globex, [gina])))
    assert sending.send_due_broadcasts() == 4
    assert mailbox.to("gina@globex.example").message["Subject"] == "Hello Gina"
    with cast.acme:
        assert Delivery.objects.filter(broadcast=acme_broadcast).count() == 3
        assert not Delivery.objects.filter(email="gina@globex.example").exists()


def test_values_cannot_add_headers_and_non_ascii_is_encoded(cast, mailbox):
    zoe = make_person(
        cast.acme, "zoe-1", "zoe@example.com", first_name="Zoë\r\nBcc: evil@example.com"
    )
    odd = make_person(cast.acme, "odd-2", "jörg@exämple.com", first_name="Jörg")
    broadcast = schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, [zoe, odd])))
    send_all(cast.acme)
    assert [r.recipients for r in mailbox.received] == [["zoe@example.com"]]
    received = mailbox.to("zoe@example.com")
    assert received.message["Subject"] == "Hello Zoë  Bcc: evil@example.com"
    assert received.message.get_all("Bcc") is None
    assert "News for Zoë" in received.part("text/html")
    with cast.acme:
        refused = Delivery.objects.get(broadcast=broadcast, person=odd)
    assert refused.state == "failed" and "not an address" in refused.reason
