"""Segment pages: the list, a segment's page, the rule editor and manual membership."""

from datetime import UTC, date, datetime, timedelta

from django.contrib import messages
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.access import editor_required, teammate_required
from segments import membership, segment_actions
from segments.compiler import compile_rule, count_matching, estimate_matching
from segments.forms import (
    EDITOR_CHOICES,
    NEW_RULE,
    MembersForm,
    SegmentDetailsForm,
    UploadForm,
    apply_edit,
    editor_nodes,
    rule_from_post,
)
from segments.models import MembershipChange, Person, Segment, SegmentSize
from segments.rules import InvalidRule, Node, RuleError, parse_rule

SAMPLE_SIZE = 10
CHART_DAYS = 30


# --- Access: a dashboard request runs on its own account's schema alone, so an id from another
# account finds nothing; the role checks are the decorators.


def get_segment(request: HttpRequest, segment_id: int) -> Segment:
    return get_object_or_404(Segment, pk=segment_id)


def get_manual_segment(request: HttpRequest, segment_id: int) -> Segment:
    """Only a manual segment's members are changed by hand; a rule decides the others'."""
    return get_object_or_404(Segment, pk=segment_id, kind=Segment.Kind.MANUAL)


# --- Pages ----------------------------------------------------------------------------------


@teammate_required
def segment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "segments/segment_list.html", {"segments": Segment.objects.all()})


@teammate_required
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = get_segment(request, segment_id)
    changes = membership.recent_changes(segment)
    # In membership order (an index scan), not by entry time: that would sort every member.
    members = segment.memberships.select_related("person")[:20]
    context = {
        "segment": segment,
        "chart": size_chart(segment),
        "changes": changes,
        "members": members,
        "versions": segment.versions.all()[:10],
        "members_form": MembersForm(),
        "upload_form": UploadForm(),
    }
    return render(request, "segments/segment_detail.html", context)


def size_chart(segment: Segment, days: int = CHART_DAYS, width: int = 600, height: int = 120):
    """The last `days` days of sizes, each day carrying the last known size forward."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    rows = SegmentSize.objects.filter(segment=segment, day__lte=today).order_by("day")
    earlier = rows.filter(day__lt=first).last()
    known = {row.day: row.size for row in rows.filter(day__gte=first)}
    size = earlier.size if earlier else 0
    series: list[tuple[date, int]] = []
    for n in range(days):
        day = first + timedelta(days=n)
        size = known.get(day, size)
        series.append((day, size))
    top = max((s for _, s in series), default=0) or 1
    step = width / max(days - 1, 1)
    points = " ".join(
        f"{round(n * step, 1)},{round(height - 4 - (s / top) * (height - 8), 1)}"
        for n, (_, s) in enumerate(series)
    )
    return {
        "width": width, "height": height, "points": points, "top": top, "series": series,
        "first": series[0][0], "last": series[-1][0],
    }  # fmt: skip


# --- The rule editor ------------------------------------------------------------------------


def validate(tree: dict, segment: Segment | None) -> tuple[Node | None, list[RuleError]]:
    try:
        return parse_rule(tree, segment_actions.rule_context(segment)), []
    except InvalidRule as invalid:
        return None, invalid.errors


def preview(rule: Node, estimate_first: bool = False) -> dict:
    """The live count and a few matching people, as the rule stands in the editor.

    With `estimate_first` (htmx, as the user edits) a large account gets an estimate from a
    sample at once, labelled as one, and the fragment asks for the exact count next."""
    now = datetime.now(UTC)
    estimate = estimate_matching(rule, now) if estimate_first else None
    if estimate:
        count, ids = estimate.count, estimate.matching[:SAMPLE_SIZE]
    else:
        count = count_matching(rule, now)
        with connection.cursor() as cursor:
            sample = compile_rule(rule, now)
            cursor.execute(f"{sample.sql} LIMIT {SAMPLE_SIZE}", sample.params)
            ids = [row[0] for row in cursor.fetchall()]
    people = Person.objects.filter(pk__in=ids).order_by("pk")
    return {"count": count, "estimate": estimate, "people": people}


def wants_estimate(request: HttpRequest) -> bool:
    """Edits under htmx get an estimate first, then ask again with `?preview=exact`."""
    return bool(request.htmx) and request.GET.get("preview") != "exact"


def editor(request: HttpRequest, segment: Segment) -> HttpResponse:
    if request.method == "POST":
        form = SegmentDetailsForm(request.POST)
        tree = rule_from_post(request.POST) if not segment.is_manual else None
        if tree is not None and request.POST.get("edit"):
            tree = apply_edit(tree, request.POST["edit"])
    else:
        form = SegmentDetailsForm(
            initial={"name": segment.name, "description": segment.description}
        )
        tree = None if segment.is_manual else (segment.rules or NEW_RULE)
    rule, errors = validate(tree, segment) if tree is not None else (None, [])
    saving = request.method == "POST" and "save" in request.POST
    if saving and form.is_valid() and (rule is not None or segment.is_manual):
        segment_actions.save_segment(
            segment, rule=rule, changed_by=request.user.email, **form.cleaned_data
        )
        messages.success(request, f"Saved {segment.name}: {segment.member_count:,} people.")
        if request.htmx:
            return HttpResponseClientRedirect(f"/segments/{segment.pk}/")
        return redirect("segment_detail", segment.pk)
    context = {
        "segment": segment,
        "editor_url": request.path,
        "preview_errors": errors,
        "form": form,
        "tree": editor_nodes(tree, errors) if tree is not None else None,
        "errors": errors if saving else [],
        "preview": (
            preview(rule, estimate_first=wants_estimate(request)) if rule is not None else None
        ),
        "other_segments": Segment.objects.exclude(pk=segment.pk or 0),
        **EDITOR_CHOICES,
    }
    if request.htmx and request.method == "POST":
        # Typing asks for the count only, so that the inputs being typed in stay as they are.
        fragment = "rule-preview" if request.GET.get("preview") else "rule-editor"
        return render(request, f"segments/segment_edit.html#{fragment}", context)
    return render(request, "segments/segment_edit.html", context)


@editor_required
def segment_new(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind") or request.GET.get("kind") or Segment.Kind.RULES
    if kind not in Segment.Kind.values:
        kind = Segment.Kind.RULES
    return editor(request, Segment(kind=kind))


@editor_required
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    return editor(request, get_segment(request, segment_id))


@require_POST
@editor_required
def segment_delete(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = get_segment(request, segment_id)
    try:
        segment_actions.delete_segment(segment)
    except segment_actions.SegmentInUse as in_use:
        messages.error(request, f"{segment.name} cannot be deleted: {in_use}.")
        return redirect("segment_detail", segment.pk)
    messages.success(request, f"Deleted {segment.name}.")
    return redirect("segment_list")


# --- Manual segments ------------------------------------------------------------------------


def back_to(request: HttpRequest, segment: Segment) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return redirect(target)
    return redirect("segment_detail", segment.pk)


@require_POST
@editor_required
def segment_members(request: HttpRequest, segment_id: int) -> HttpResponse:
    """Add or remove people (by person id) from a profile or the people list's selection."""
    segment = get_manual_segment(request, segment_id)
    form = MembersForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose people, and whether to add or remove them.")
        return back_to(request, segment)
    add = form.cleaned_data["action"] == "add"
    change = segment_actions.change_members(
        segment, form.cleaned_data["person"], MembershipChange.Cause.MANUAL, add=add
    )
    if add:
        messages.success(request, f"Added {change.entered:,} to {segment.name}.")
    else:
        messages.success(request, f"Removed {change.exited:,} from {segment.name}.")
    return back_to(request, segment)


@require_POST
@editor_required
def segment_upload(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = get_manual_segment(request, segment_id)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        for field, problems in form.errors.items():
            messages.error(request, f"{form.fields[field].label or field}: {' '.join(problems)}")
        return redirect("segment_detail", segment.pk)
    values = form.cleaned_data["file"]
    people = segment_actions.people_by_identifier(values, form.cleaned_data["id_type"])
    replace = form.cleaned_data["mode"] == "replace"
    change = segment_actions.change_members(
        segment, people, MembershipChange.Cause.IMPORT, add=True, replace=replace
    )
    unknown = len(set(values)) - len(set(people))
    messages.success(
        request,
        f"{len(values):,} rows: {change.entered:,} added, {change.exited:,} removed"
        + (f", {unknown:,} not found" if unknown > 0 else "")
        + ".",
    )
    return redirect("segment_detail", segment.pk)
