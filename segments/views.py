"""The customer dashboard: the overview, people, their profiles, exports and the audit log."""

import csv
from collections.abc import Iterator
from datetime import timedelta

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import editor_required, team_manager_required, teammate_required
from accounts.models import AuditEntry, Invitation, User
from messaging.models import Delivery
from segments import actions, segment_views
from segments.access import get_person
from segments.attributes import attribute_type, display
from segments.charts import bar_chart
from segments.keyset import page_by_time
from segments.membership import history_of
from segments.models import (
    ActivitySummary,
    Event,
    EventDay,
    Membership,
    Person,
    Segment,
)
from segments.people_forms import (
    AttributeForm,
    PeopleFilterForm,
    SegmentMembershipForm,
    TimelineFilterForm,
)

PAGE_SIZE = 50
COUNT_CAP = 10_000
COUNT_CACHE_SECONDS = 60


def segment_context(shown: Person) -> dict:
    """The profile's segments: the person's memberships and history, and the manual segments
    to add them to, from one read of the account's segments (the page's query budget is ten).
    Memberships are found by probing each segment's primary-key range (there is no index by
    person)."""
    segments = {segment.pk: segment for segment in Segment.objects.order_by("name")}
    memberships = list(Membership.objects.filter(segment_id__in=list(segments), person=shown))
    for membership in memberships:
        membership.segment = segments[membership.segment_id]
    memberships.sort(key=lambda membership: membership.segment.name)
    return {
        "memberships": memberships,
        "membership_changes": history_of(shown, segments=segments),
        "manual_segments": [segment for segment in segments.values() if segment.is_manual],
    }


def people_count() -> int:
    # Cache keys carry the account's schema (django_tenants.cache.make_key).
    return cache.get_or_set("people:count", Person.objects.count, COUNT_CACHE_SECONDS)


@teammate_required
def dashboard(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    days = {
        row.day: row.count for row in EventDay.objects.filter(day__gt=today - timedelta(days=30))
    }
    series = [
        (today - timedelta(days=n), days.get(today - timedelta(days=n), 0))
        for n in range(29, -1, -1)
    ]
    context = {
        "people_count": people_count(),
        "events_today": days.get(today, 0),
        "events_chart": bar_chart(series),
        "teammate_count": User.objects.filter(is_active=True).count(),
        "pending_invitations": Invitation.objects.pending().count(),
    }
    return render(request, "segments/dashboard.html", context)


def filter_form(request: HttpRequest, segments: list[Segment] | None = None) -> PeopleFilterForm:
    if segments is None:
        segments = list(Segment.objects.order_by("name"))
    return PeopleFilterForm(request.GET, segments=segments)


def filtered_people(form: PeopleFilterForm):
    people = Person.objects.all()
    if not form.is_valid():
        return people, False
    data = form.cleaned_data
    people = people.search(data["q"]).subscription(data["subscription"])
    if data["attribute"]:
        people = people.with_attribute(data["attribute"], data["value"])
    if data["segment"]:
        people = people.filter(memberships__segment_id=data["segment"])
    filtered = bool(data["q"] or data["attribute"] or data["subscription"] or data["segment"])
    return people, filtered


@teammate_required
def people(request: HttpRequest) -> HttpResponse:
    segments = list(Segment.objects.order_by("name"))
    form = filter_form(request, segments)
    queryset, filtered = filtered_people(form)
    newest_first = request.GET.get("sort", "newest") != "oldest"
    page = page_by_time(queryset, "created_at", request.GET.get("after"), PAGE_SIZE, newest_first)
    if filtered:
        matches = queryset.order_by()[: COUNT_CAP + 1].count()
    else:
        matches = people_count()
    query = request.GET.copy()
    query.pop("after", None)
    context = {
        "form": form,
        "page": page,
        "matches": min(matches, COUNT_CAP),
        "more_than_cap": matches > COUNT_CAP,
        "query": query.urlencode(),
        "manual_segments": [segment for segment in segments if segment.is_manual],
    }
    template = "segments/people.html#people-results" if request.htmx else "segments/people.html"
    return render(request, template, context)


@teammate_required
def person(request: HttpRequest, person_id: int) -> HttpResponse:
    shown = get_person(request, person_id)
    timeline_form = TimelineFilterForm(request.GET)
    events = Event.objects.filter(person=shown)
    if timeline_form.is_valid() and timeline_form.cleaned_data["name"]:
        events = events.filter(name=timeline_form.cleaned_data["name"])
    timeline = page_by_time(events, "timestamp", request.GET.get("after"), PAGE_SIZE)
    if request.htmx and request.GET.get("part") == "timeline":
        return render(request, "segments/person.html#timeline", {"shown": shown, "timeline": timeline,
                                                                  "timeline_form": timeline_form})  # fmt: skip
    attributes = [
        {"name": name, "value": display(name, value), "type": attribute_type(name, value)}
        for name, value in sorted(shown.attributes.items())
    ]
    context = {
        "shown": shown,
        "attributes": attributes,
        "summaries": ActivitySummary.objects.filter(person=shown).order_by("-last_at"),
        "timeline": timeline,
        "timeline_form": timeline_form,
        "attribute_form": AttributeForm(prefix="attribute"),
        **segment_context(shown),
        "deliveries": Delivery.objects.filter(person=shown)
        .select_related("broadcast")
        .order_by("-id")[:20],
    }
    return render(request, "segments/person.html", context)


@require_POST
@editor_required
def set_attribute(request: HttpRequest, person_id: int) -> HttpResponse:
    shown = get_person(request, person_id)
    form = AttributeForm(request.POST, prefix="attribute")
    if form.is_valid():
        actions.set_attribute(
            shown, request.user, form.cleaned_data["name"], form.cleaned_data["parsed"]
        )
        messages.success(request, f"Attribute “{form.cleaned_data['name']}” saved.")
    else:
        problems = "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
        )
        messages.error(request, f"Not saved. {problems}")
    return redirect("person", person_id=shown.pk)


@require_POST
@editor_required
def delete_attribute(request: HttpRequest, person_id: int, name: str) -> HttpResponse:
    shown = get_person(request, person_id)
    if name in shown.attributes:
        actions.delete_attribute(shown, request.user, name)
        messages.success(request, f"Attribute “{name}” deleted.")
    return redirect("person", person_id=shown.pk)


@require_POST
@editor_required
def delete_person(request: HttpRequest, person_id: int) -> HttpResponse:
    shown = get_person(request, person_id)
    suppress = request.POST.get("suppress") == "1"
    label = shown.label
    actions.delete_person(shown, request.user, suppress=suppress)
    verb = "deleted and suppressed" if suppress else "deleted"
    messages.success(request, f"{label} was {verb}, with their events and memberships.")
    return redirect("people")


class Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def export_rows(account, queryset) -> Iterator[str]:
    # Streamed after the view returns: say which schema the rows come from, not assume it.
    with account:
        yield from _export_rows(queryset)


def _export_rows(queryset) -> Iterator[str]:
    writer = csv.writer(Echo())
    # Attribute columns from a sample of the people exported; others still come, in "other".
    sample = queryset.order_by("-id").values_list("attributes", flat=True)[:1000]
    names = sorted({name for attributes in sample for name in attributes})
    yield writer.writerow(
        ["id", "customer_id", "email", "unsubscribed", "created_at", *names, "other"]
    )
    for row in queryset.order_by("id").iterator(chunk_size=2000):
        extra = {k: v for k, v in row.attributes.items() if k not in names}
        yield writer.writerow([
            row.pk, row.customer_id or "", row.email or "", row.unsubscribed, row.created_at.isoformat(),
            *[row.attributes.get(name, "") for name in names], extra or "",
        ])  # fmt: skip


@teammate_required
def export_people(request: HttpRequest) -> StreamingHttpResponse:
    queryset, _ = filtered_people(filter_form(request))
    response = StreamingHttpResponse(
        export_rows(request.account, queryset), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="people-{request.account.slug}-{stamp}.csv"'
    )
    AuditEntry.record(request.user, "people.exported", request.GET.urlencode())
    return response


@team_manager_required
def audit_log(request: HttpRequest) -> HttpResponse:
    page = page_by_time(AuditEntry.objects.all(), "created_at", request.GET.get("after"), PAGE_SIZE)
    return render(request, "segments/audit.html", {"page": page})


@require_POST
@editor_required
def change_segment_membership(request: HttpRequest) -> HttpResponse:
    """The people list's selection or a profile's form, handed to the segment's own view with
    the segment the person chose (the form cannot put it in its URL without JavaScript)."""
    form = SegmentMembershipForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a segment and whether to add or remove.")
        return redirect(request.POST.get("next") or "people")
    return segment_views.segment_members(request, form.cleaned_data["segment"])
