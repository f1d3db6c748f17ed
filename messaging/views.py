"""The dashboard's messaging pages: broadcasts, the delivery log, deliveries and topics."""

from dataclasses import dataclass
from datetime import timedelta
from html import escape

from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db.models import Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from accounts.access import editor_required, teammate_required
from messaging import access, actions
from messaging.charts import broadcast_chart
from messaging.forms import (
    BroadcastForm,
    DeliveryFilterForm,
    PreviewForm,
    ScheduleForm,
    TestSendForm,
    TopicForm,
)
from messaging.models import Broadcast, Delivery, Topic
from messaging.render import Recipient, build_message, compile_broadcast
from messaging.sending import account_key

PAGE_SIZE = 50
CURSOR_SALT = "ferry.messaging.deliveries"
# The latest broadcasts offered in the log's filter (older ones: from their own page).
FILTER_BROADCASTS = 20
ONE_DAY = timedelta(days=1)
MAX_ID = 2**63 - 1
LOG_FIELDS = [
    "id", "email", "state", "reason", "is_test", "created_at", "sent_at", "broadcast_id",
    "broadcast__name",
]  # fmt: skip
STATE_LABELS = dict(Delivery.State.choices)


@teammate_required
def broadcast_list(request: HttpRequest) -> HttpResponse:
    broadcasts = Broadcast.objects.select_related("segment")[:200]
    return render(request, "messaging/broadcast_list.html", {"broadcasts": broadcasts})


@editor_required
def broadcast_new(request: HttpRequest) -> HttpResponse:
    form = BroadcastForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        broadcast = actions.create_broadcast(request.user, form.cleaned_data)
        messages.success(request, "Broadcast saved as a draft. Preview it, send a test, then send.")
        return redirect("broadcast", broadcast_id=broadcast.pk)
    return render(request, "messaging/broadcast_form.html", {"form": form})


@editor_required
def broadcast_edit(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    broadcast = access.get_broadcast(request, broadcast_id)
    if not broadcast.is_editable:
        messages.error(request, "A broadcast that has started sending can no longer change.")
        return redirect("broadcast", broadcast_id=broadcast.pk)
    initial = {
        "name": broadcast.name, "subject": broadcast.subject, "from_email": broadcast.from_email,
        "reply_to": broadcast.reply_to, "segment": broadcast.segment_id,
        "topic": broadcast.topic_id, "body_format": broadcast.body_format,
        "body": broadcast.body, "text_body": broadcast.text_body,
    }  # fmt: skip
    form = BroadcastForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        actions.update_broadcast(broadcast, request.user, form.cleaned_data)
        messages.success(request, "Broadcast saved.")
        return redirect("broadcast", broadcast_id=broadcast.pk)
    return render(request, "messaging/broadcast_form.html", {"form": form, "broadcast": broadcast})


def preview_context(request: HttpRequest, broadcast: Broadcast) -> dict:
    form = PreviewForm(request.GET)
    wanted = form.data.get("person", "").strip() if form.is_valid() else ""
    person = actions.find_person(wanted) if wanted else actions.sample_person(broadcast)
    return {
        "preview_form": form,
        "preview": actions.preview(broadcast, person),
        "preview_missing": bool(wanted) and person is None,
    }


@teammate_required
def broadcast_detail(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    broadcast = access.get_broadcast(request, broadcast_id)
    context = {
        "broadcast": broadcast,
        "chart": broadcast_chart(broadcast),
        "schedule_form": ScheduleForm(),
        "test_form": TestSendForm(initial={"email": request.user.email}),
        "recent": broadcast.deliveries.filter(is_test=False).order_by("-id")[:10],
        "tests": broadcast.deliveries.filter(is_test=True).order_by("-id")[:5],
        **preview_context(request, broadcast),
    }
    return render(request, "messaging/broadcast_detail.html", context)


@teammate_required
def broadcast_preview(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    broadcast = access.get_broadcast(request, broadcast_id)
    if not request.htmx:
        return redirect(f"/broadcasts/{broadcast.pk}/?{request.GET.urlencode()}#preview")
    context = {"broadcast": broadcast, **preview_context(request, broadcast)}
    return render(request, "messaging/broadcast_detail.html#preview", context)


@require_POST
@editor_required
def broadcast_test(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    broadcast = access.get_broadcast(request, broadcast_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not sent: give a valid email address for the test.")
        return redirect("broadcast", broadcast_id=broadcast.pk)
    person = actions.find_person(form.cleaned_data["person"]) or actions.sample_person(broadcast)
    delivery = actions.send_test(broadcast, request.user, form.cleaned_data["email"], person)
    if delivery.state == Delivery.State.SENT:
        messages.success(request, f"Test sent to {delivery.email}.")
    else:
        messages.error(request, f"The test to {delivery.email} failed: {delivery.reason}")
    return redirect("broadcast", broadcast_id=broadcast.pk)


@require_POST
@editor_required
def broadcast_schedule(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    broadcast = access.get_broadcast(request, broadcast_id)
    form = ScheduleForm(request.POST)
    if not broadcast.is_editable:
        messages.error(request, "This broadcast has already been sent.")
    elif broadcast.segment_id is None:
        messages.error(request, "Not scheduled: choose a segment first (its segment was deleted).")
    elif not form.is_valid():
        problems = "; ".join(" ".join(errors) for errors in form.errors.values())
        messages.error(request, f"Not scheduled. {problems}")
    else:
        send_at = form.cleaned_data["send_at"] if form.cleaned_data["when"] == "later" else None
        actions.schedule_broadcast(broadcast, request.user, send_at)
        if send_at:
            messages.success(request, f"Scheduled for {send_at:%-d %b %Y, %H:%M} UTC.")
        else:
            messages.success(request, "Sending has started; this page shows the progress.")
    return redirect("broadcast", broadcast_id=broadcast.pk)


@require_POST
@editor_required
def broadcast_cancel(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    broadcast = access.get_broadcast(request, broadcast_id)
    was = broadcast.state
    skipped = actions.cancel_broadcast(broadcast, request.user)
    if was == Broadcast.State.SCHEDULED:
        messages.success(request, "Unscheduled; the broadcast is a draft again.")
    elif was == Broadcast.State.SENDING:
        messages.success(request, f"Stopped. {skipped:,} messages not yet sent were skipped.")
    else:
        messages.error(request, "There was nothing to cancel.")
    return redirect("broadcast", broadcast_id=broadcast.pk)


def filtered_deliveries(form: DeliveryFilterForm):
    """The log's rows, newest first. The person and the dates become subqueries of the page's
    one query (PostgreSQL runs each once), so every filter costs no extra round trip."""
    deliveries = Delivery.objects.all()
    if not form.is_valid():
        return deliveries
    data = form.cleaned_data
    if data["state"]:
        deliveries = deliveries.filter(state=data["state"])
    if data["broadcast"]:
        deliveries = deliveries.filter(broadcast_id=data["broadcast"])
    if data["person"]:
        person = actions.people_matching(data["person"]).order_by("pk").values("pk")[:1]
        deliveries = deliveries.filter(person_id=Subquery(person))
    # Ids grow with the time deliveries are queued: a date becomes an id bound with one
    # probe of the created_at index, and every page stays an index range on ids.
    if data["since"]:
        deliveries = deliveries.filter(id__gte=first_id_from(form.day_start(data["since"])))
    if data["until"]:
        after = first_id_from(form.day_start(data["until"]) + ONE_DAY)
        deliveries = deliveries.filter(id__lt=Coalesce(after, Value(MAX_ID)))
    return deliveries


def first_id_from(moment) -> Subquery:
    """The first delivery queued at or after `moment` (none: NULL, which matches nothing)."""
    return Subquery(
        Delivery.objects.filter(created_at__gte=moment).order_by("created_at").values("id")[:1]
    )


@dataclass
class LogRow:
    """One line of the delivery log, its text ready: the log renders 50 of them per page, and
    template filters and URL tags per cell cost more than the page's queries."""

    pk: int
    email: str
    state: str
    state_label: str
    reason: str
    is_test: bool
    url: str
    broadcast_url: str
    broadcast_name: str
    queued_iso: str
    queued: str
    sent: str

    def as_tr(self) -> SafeString:
        """The row's HTML, written here: 50 rows of template lookups and autoescaping took
        longer than everything else on the page (a template loop: 3 ms a page, this: 0.2)."""
        test = ' <span class="badge">test</span>' if self.is_test else ""
        reason = f'<br><span class="muted">{escape(self.reason)}</span>' if self.reason else ""
        broadcast = (
            f'<a href="{self.broadcast_url}">{escape(self.broadcast_name)}</a>'
            if self.broadcast_url
            else "—"
        )
        return mark_safe(
            f'<tr><td><a href="{self.url}">{escape(self.email)}</a>{test}</td>'
            f'<td><span class="badge state-{escape(self.state)}">{escape(self.state_label)}</span>'
            f"{reason}</td><td>{broadcast}</td>"
            f'<td><time datetime="{self.queued_iso}">{self.queued}</time></td>'
            f"<td>{self.sent or '—'}</td></tr>"
        )


def log_rows(values: list[dict]) -> list[LogRow]:
    delivery_url = reverse("delivery", args=[0]).removesuffix("0/")
    broadcast_url = reverse("broadcast", args=[0]).removesuffix("0/")
    rows = []
    for row in values:
        queued, sent, broadcast = row["created_at"], row["sent_at"], row["broadcast_id"]
        rows.append(LogRow(
            pk=row["id"], email=row["email"] or "(no email)", state=row["state"],
            state_label=STATE_LABELS.get(row["state"], row["state"]),
            reason=Truncator(row["reason"]).chars(60), is_test=row["is_test"],
            url=f"{delivery_url}{row['id']}/",
            broadcast_url=f"{broadcast_url}{broadcast}/" if broadcast else "",
            broadcast_name=row["broadcast__name"] or "",
            queued_iso=queued.isoformat(), queued=f"{queued.day} {queued:%b %Y, %H:%M}",
            sent=f"{sent.day} {sent:%b %Y, %H:%M:%S}" if sent else "",
        ))  # fmt: skip
    return rows


def page_of(deliveries, cursor: str | None) -> tuple[list[LogRow], str | None]:
    if cursor:
        try:
            deliveries = deliveries.filter(id__lt=int(signing.loads(cursor, salt=CURSOR_SALT)))
        except (signing.BadSignature, ValueError, TypeError):
            pass
    values = list(deliveries.order_by("-id").values(*LOG_FIELDS)[: PAGE_SIZE + 1])
    next_cursor = None
    if len(values) > PAGE_SIZE:
        values = values[:PAGE_SIZE]
        next_cursor = signing.dumps(values[-1]["id"], salt=CURSOR_SALT)
    return log_rows(values), next_cursor


@teammate_required
def delivery_log(request: HttpRequest) -> HttpResponse:
    form = DeliveryFilterForm(request.GET)
    rows, next_cursor = page_of(filtered_deliveries(form), request.GET.get("after"))
    query = request.GET.copy()
    query.pop("after", None)
    context = {"form": form, "rows": rows, "next_cursor": next_cursor, "query": query.urlencode()}
    if request.htmx:
        return render(request, "messaging/delivery_list.html#deliveries", context)
    chosen = form.cleaned_data.get("broadcast") if form.is_valid() else None
    latest = Broadcast.objects.values("pk")[:FILTER_BROADCASTS]
    offered = Q(pk__in=latest) | Q(pk=chosen) if chosen else Q(pk__in=latest)
    choices = Broadcast.objects.filter(offered)
    context |= {
        "state_choices": DeliveryFilterForm.base_fields["state"].choices,
        "broadcast_choices": list(choices.values_list("pk", "name")),
        "chosen_broadcast": chosen,
        "filters": {name: request.GET.get(name, "") for name in form.fields},
    }
    return render(request, "messaging/delivery_list.html", context)


@teammate_required
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = access.get_delivery(request, delivery_id)
    context = {
        "delivery": delivery,
        "events": delivery.events.order_by("at", "id"),
        "message": rendered_message(delivery),
    }
    return render(request, "messaging/delivery_detail.html", context)


def rendered_message(delivery: Delivery) -> dict | None:
    """The message as it was sent: the broadcast's content (fixed once sending starts), the
    values recorded at sending, the recorded Message-ID. Signed links are issued afresh."""
    if delivery.broadcast is None or not delivery.message_id:
        return None
    compiled = compile_broadcast(delivery.broadcast, account_key())
    values = delivery.values or {}
    recipient = Recipient(account_key(), delivery.pk, delivery.email, values)
    message = build_message(compiled, recipient, delivery.message_id)
    mime = message.message().parsed()
    if delivery.sent_at:
        mime.replace_header("Date", delivery.sent_at.strftime("%a, %d %b %Y %H:%M:%S +0000"))
    return {
        "headers": [(name, str(value)) for name, value in mime.items()],
        "text": message.body,
        "html": message.alternatives[0].content if message.alternatives else "",
    }


@teammate_required
def topics(request: HttpRequest) -> HttpResponse:
    form = TopicForm(request.POST or None)
    if request.method == "POST":
        if not request.user.can_edit:
            raise PermissionDenied
        if form.is_valid():
            actions.create_topic(
                request.user, form.cleaned_data["name"], form.cleaned_data["description"]
            )
            messages.success(request, f"Topic “{form.cleaned_data['name']}” created.")
            return redirect("topics")
    return render(request, "messaging/topics.html", {"form": form, "topics": Topic.objects.all()})


@require_POST
@editor_required
def topic_delete(request: HttpRequest, topic_id: int) -> HttpResponse:
    topic = access.get_topic(request, topic_id)
    actions.delete_topic(topic, request.user)
    messages.success(request, f"Topic “{topic.name}” deleted.")
    return redirect("topics")
