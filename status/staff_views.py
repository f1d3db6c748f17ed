"""The staff console for incidents, maintenance and components, at /staff/status/.

htmx: the component rows, the incident panel and the preview are `{% partialdef %}`
fragments of their pages; plain POSTs redirect, htmx POSTs re-render the fragment (with
status 200 and inline errors when the form is invalid, as everywhere in Ferry).
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import staff_required
from status import actions
from status.access import (
    get_component_for_staff,
    get_incident_for_staff,
    get_notification_for_staff,
    get_template_for_staff,
)
from status.component_signals import proposal, readings_for
from status.forms import (
    ComponentStatusForm,
    IncidentForm,
    MaintenanceForm,
    PostmortemForm,
    PreviewForm,
    UpdateForm,
    UpdateTemplateForm,
)
from status.models import (
    Component,
    ComponentStatus,
    Incident,
    IncidentStatus,
    Notification,
    Subscriber,
    UpdateTemplate,
)
from status.rendering import render_markdown

CONSOLE = "status/staff/console.html"
INCIDENT = "status/staff/incident.html"


def component_row(component: Component) -> dict:
    readings = readings_for(component)
    proposed = proposal(component, readings)
    return {
        "component": component,
        "readings": readings,
        "proposal": proposed,
        "proposal_label": ComponentStatus(proposed).label if proposed else "",
        # Prefixed: every row's form is on the same page.
        "form": ComponentStatusForm(initial={"status": component.status}, prefix=component.code),
    }


def leaf_components() -> list[Component]:
    return list(Component.objects.filter(is_group=False))


@staff_required
def console(request: HttpRequest) -> HttpResponse:
    context = {
        "rows": [component_row(c) for c in Component.objects.filter(is_group=False)],
        "active": Incident.objects.active(),
        "upcoming": Incident.objects.upcoming().order_by("scheduled_for"),
        "recent": Incident.objects.exclude(status__in=["scheduled"])[:15],
    }
    return render(request, CONSOLE, context)


@staff_required
@require_POST
def component_status(request: HttpRequest, code: str) -> HttpResponse:
    component = get_component_for_staff(code)
    form = ComponentStatusForm(request.POST, prefix=component.code)
    if form.is_valid():
        actions.change_component_status(component, form.cleaned_data["status"])
        if not request.htmx:
            messages.success(request, f"{component.name} is now {component.get_status_display()}.")
    if request.htmx:
        return render(
            request,
            f"{CONSOLE}#component-row",
            component_row(component) | {"saved": form.is_valid()},
        )
    return redirect("staff_status:console")


def _template_initial(request: HttpRequest) -> dict:
    template_id = request.GET.get("template", "")
    if not template_id.isdigit():
        return {}
    template = get_template_for_staff(int(template_id))
    return {"status": template.status, "body": template.body, "name": template.title}


@staff_required
def incident_new(request: HttpRequest) -> HttpResponse:
    form = IncidentForm(
        request.POST or None, initial=_template_initial(request), components=leaf_components()
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        incident = actions.open_incident(
            name=data["name"],
            status=data["status"],
            impact=data["impact"],
            body=data["body"],
            component_statuses=form.component_statuses(),
            affected_accounts=data["affected_accounts"],
            display_at=data["display_at"],
            deliver_notifications=data["deliver_notifications"],
        )
        messages.success(request, "Incident opened and published.")
        return redirect("staff_status:incident", code=incident.code)
    context = {"form": form, "templates": UpdateTemplate.objects.all()}
    if request.htmx and request.method == "GET":
        return render(request, "status/staff/incident_new.html#incident-form", context)
    return render(request, "status/staff/incident_new.html", context)


def _update_form(incident: Incident, data=None, initial=None) -> UpdateForm:
    initial = {"status": incident.status, **(initial or {})}
    return UpdateForm(
        data,
        initial=initial,
        status_choices=incident.status_choices,
        components=leaf_components(),
    )


def _incident_context(incident: Incident, form: UpdateForm, **extra) -> dict:
    return {
        "incident": incident,
        "form": form,
        "postmortem_form": PostmortemForm(initial={"body": incident.postmortem_body}),
        "templates": UpdateTemplate.objects.all(),
        "deliveries": incident.notifications.prefetch_related("delivery_attempts")[:20],
        **extra,
    }


@staff_required
def incident_detail(request: HttpRequest, code: str) -> HttpResponse:
    incident = get_incident_for_staff(code)
    form = _update_form(incident, request.POST or None, _template_initial(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actions.post_update(
            incident,
            status=data["status"],
            body=data["body"],
            component_statuses=form.component_statuses(),
            display_at=data["display_at"],
            deliver_notifications=data["deliver_notifications"],
        )
        if not request.htmx:
            messages.success(request, "Update posted and published.")
            return redirect("staff_status:incident", code=incident.code)
        incident = get_incident_for_staff(code)
        form = _update_form(incident)
        context = _incident_context(incident, form, posted=True)
        return render(request, f"{INCIDENT}#incident-panel", context)
    context = _incident_context(incident, form)
    if request.htmx:
        return render(request, f"{INCIDENT}#incident-panel", context)
    return render(request, INCIDENT, context)


@staff_required
@require_POST
def incident_resolve(request: HttpRequest, code: str) -> HttpResponse:
    """One click: resolved, every component it touched back to operational."""
    incident = get_incident_for_staff(code)
    if incident.is_maintenance:
        status, body = IncidentStatus.COMPLETED, actions.MAINTENANCE_COMPLETED
    else:
        status, body = IncidentStatus.RESOLVED, "This incident has been resolved."
    statuses = {c: ComponentStatus.OPERATIONAL for c in incident.components.all()}
    actions.post_update(incident, status=status, body=body, component_statuses=statuses)
    messages.success(request, f"{incident.name} is {status.label.lower()}.")
    return redirect("staff_status:incident", code=incident.code)


@staff_required
@require_POST
def incident_postmortem(request: HttpRequest, code: str) -> HttpResponse:
    incident = get_incident_for_staff(code)
    form = PostmortemForm(request.POST)
    if form.is_valid():
        publish = "publish" in request.POST
        actions.save_postmortem(incident, body=form.cleaned_data["body"], publish=publish)
        messages.success(request, "Postmortem published." if publish else "Draft saved.")
    else:
        messages.error(request, "The postmortem needs a text.")
    return redirect("staff_status:incident", code=incident.code)


@staff_required
def maintenance_new(request: HttpRequest) -> HttpResponse:
    form = MaintenanceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        maintenance = actions.schedule_maintenance(
            name=data["name"],
            body=data["body"],
            scheduled_for=data["scheduled_for"],
            scheduled_until=data["scheduled_until"],
            components=list(data["components"]),
            affected_accounts=data["affected_accounts"],
            auto_start=data["auto_start"],
            auto_complete=data["auto_complete"],
            deliver_notifications=data["deliver_notifications"],
        )
        messages.success(request, "Maintenance scheduled and published.")
        return redirect("staff_status:incident", code=maintenance.code)
    return render(request, "status/staff/maintenance_new.html", {"form": form})


@staff_required
@require_POST
def preview(request: HttpRequest) -> HttpResponse:
    form = PreviewForm(request.POST)
    body = form.cleaned_data["body"] if form.is_valid() else ""
    template = "status/staff/preview.html#preview" if request.htmx else "status/staff/preview.html"
    return render(request, template, {"html": render_markdown(body)})


@staff_required
def templates(request: HttpRequest) -> HttpResponse:
    form = UpdateTemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Template saved.")
        return redirect("staff_status:templates")
    context = {"form": form, "templates": UpdateTemplate.objects.all()}
    return render(request, "status/staff/templates.html", context)


@staff_required
@require_POST
def template_delete(request: HttpRequest, template_id: int) -> HttpResponse:
    get_template_for_staff(template_id).delete()
    messages.success(request, "Template deleted.")
    return redirect("staff_status:templates")


@staff_required
def subscribers(request: HttpRequest) -> HttpResponse:
    context = {
        "subscribers": Subscriber.objects.prefetch_related("components")[:200],
        "notifications": Notification.objects.prefetch_related("delivery_attempts")[:100],
    }
    return render(request, "status/staff/subscribers.html", context)


@staff_required
@require_POST
def notification_retry(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification = get_notification_for_staff(notification_id)
    notification.retry_now()
    messages.success(request, f"Queued again: {notification}.")
    return redirect("staff_status:subscribers")
