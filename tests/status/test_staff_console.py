"""The staff console: open, update, resolve, postmortem, components, templates; htmx and not."""

import pytest

from status.models import Component, ComponentStatusChange, Incident, UpdateTemplate
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(cast):
    return client_for(None, cast.stella)


def test_the_console_lists_components_and_recent_incidents(demo, staff):
    page = staff.get("/staff/status/").content.decode()
    assert "Management Interface" in page
    assert "Extended outage since 11:41 pm EDT" in page
    assert 'href="/staff/status/incidents/new/"' in page


def test_staff_open_an_incident_that_is_published(demo, staff, status_client, committed):
    data = {
        "name": "Dashboards down", "status": "investigating", "impact": "major",
        "body": "We are **looking**.", "affected_accounts": "acme",
        f"component_{demo['management-interface'].code}": "major_outage",
        "deliver_notifications": "on",
    }  # fmt: skip
    with committed():
        response = staff.post("/staff/status/incidents/new/", data)
    incident = Incident.objects.get(name="Dashboards down")
    assert response["Location"] == f"/staff/status/incidents/{incident.code}/"
    assert incident.affected_accounts == ["acme"]
    assert Component.objects.get(key="management-interface").status == "major_outage"
    assert ComponentStatusChange.objects.filter(incident=incident).count() == 1
    page = status_client.get("/").content.decode()
    assert "Dashboards down" in page
    assert "<strong>looking</strong>" in page


def test_an_unknown_account_slug_is_an_error(demo, staff):
    data = {"name": "x", "status": "investigating", "impact": "minor", "body": "x",
            "affected_accounts": "acme, initech"}  # fmt: skip
    response = staff.post("/staff/status/incidents/new/", data)
    assert response.status_code == 200
    assert b"No account with the slug initech" in response.content


def test_posting_an_update_with_htmx_rerenders_the_panel(demo, staff, status_client, committed):
    incident = demo["email-sending"].incidents.get()
    data = {"status": "resolved", "body": "Checked again: *all good*.",
            "display_at": "2015-04-29T08:00"}  # fmt: skip
    with committed():
        response = staff.post(
            f"/staff/status/incidents/{incident.code}/", data, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    panel = response.content.decode()
    assert panel.lstrip().startswith('<div id="incident-panel"')
    assert "Update posted and published." in panel
    assert "<em>all good</em>" in panel
    update = incident.timeline()[0]
    assert update.display_at.isoformat() == "2015-04-29T08:00:00+00:00"
    assert b"Checked again" in status_client.get(f"/incidents/{incident.code}").content


def test_an_invalid_update_under_htmx_shows_its_errors_with_200(demo, staff):
    incident = demo["email-sending"].incidents.get()
    response = staff.post(
        f"/staff/status/incidents/{incident.code}/", {"status": "resolved"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert b"This field is required" in response.content
    assert incident.updates.count() == 9


def test_the_status_choices_follow_the_kind(demo, staff):
    incident = demo["email-sending"].incidents.get()
    response = staff.post(
        f"/staff/status/incidents/{incident.code}/", {"status": "in_progress", "body": "x"}
    )
    assert b"Select a valid choice" in response.content


def test_resolve_sets_every_component_back_to_operational(demo, staff):
    staff.post("/staff/status/incidents/new/", {
        "name": "Slow mail", "status": "identified", "impact": "minor", "body": "Slow.",
        f"component_{demo['email-sending'].code}": "degraded_performance"})  # fmt: skip
    incident = Incident.objects.get(name="Slow mail")
    response = staff.post(f"/staff/status/incidents/{incident.code}/resolve/")
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert Component.objects.get(key="email-sending").status == "operational"


def test_a_postmortem_draft_stays_private_until_published(demo, staff, publish, status_client):
    staff.post("/staff/status/incidents/new/", {
        "name": "Spool full", "status": "resolved", "impact": "minor", "body": "Over."})  # fmt: skip
    incident = Incident.objects.get(name="Spool full")
    url = f"/staff/status/incidents/{incident.code}/postmortem/"
    staff.post(url, {"body": "Secret draft findings", "draft": ""})
    publish()
    assert b"Secret draft findings" not in status_client.get(f"/incidents/{incident.code}").content
    staff.post(url, {"body": "Public findings", "publish": ""})
    publish()
    assert b"Public findings" in status_client.get(f"/incidents/{incident.code}").content
    incident.refresh_from_db()
    assert incident.public_status == "postmortem"


def test_changing_a_component_with_htmx_returns_its_row(demo, staff):
    component = demo["unsubscribe"]
    response = staff.post(
        f"/staff/status/components/{component.code}/status/",
        {f"{component.code}-status": "partial_outage"},
        HTTP_HX_REQUEST="true",
    )
    row = response.content.decode().strip()
    assert row.startswith(f'<tr id="component-{component.code}">')
    assert "Published." in row
    component.refresh_from_db()
    assert component.status == "partial_outage"
    change = ComponentStatusChange.objects.filter(component=component).last()
    assert (change.old_status, change.new_status) == ("operational", "partial_outage")


def test_the_preview_renders_sanitised_markdown(staff):
    response = staff.post(
        "/staff/status/preview/", {"body": "**Hi** <script>x()</script>"}, HTTP_HX_REQUEST="true"
    )
    assert response.content.decode().strip().startswith('<div id="preview"')
    assert b"<strong>Hi</strong>" in response.content
    assert b"<script>x()" not in response.content


def test_a_template_fills_the_new_incident_form(demo, staff):
    template = UpdateTemplate.objects.get(name="Database unreachable")
    response = staff.get(
        f"/staff/status/incidents/new/?template={template.pk}", HTTP_HX_REQUEST="true"
    )
    form = response.content.decode()
    assert form.lstrip().startswith('<form id="incident-form"')
    assert 'value="Dashboards unavailable"' in form
    assert "Data collection keeps accepting" in form


def test_staff_manage_templates(staff, db):
    staff.post("/staff/status/templates/", {"name": "Mail delays", "status": "identified",
                                            "body": "Mail is delayed."})  # fmt: skip
    template = UpdateTemplate.objects.get(name="Mail delays")
    staff.post(f"/staff/status/templates/{template.pk}/delete/")
    assert not UpdateTemplate.objects.filter(name="Mail delays").exists()


def test_staff_schedule_maintenance(demo, staff):
    response = staff.post("/staff/status/maintenances/new/", {
        "name": "Relay swap", "scheduled_for": "2030-01-01T02:00",
        "scheduled_until": "2030-01-01T03:00", "body": "Swapping.",
        "components": [demo["email-sending"].pk], "auto_start": "on", "auto_complete": "on"})  # fmt: skip
    maintenance = Incident.objects.get(name="Relay swap")
    assert response["Location"] == f"/staff/status/incidents/{maintenance.code}/"
    assert maintenance.scheduled_for.isoformat() == "2030-01-01T02:00:00+00:00"
    assert maintenance.status == "scheduled"
    assert list(maintenance.components.all()) == [demo["email-sending"]]


def test_a_maintenance_must_end_after_it_starts(demo, staff):
    response = staff.post("/staff/status/maintenances/new/", {
        "name": "Backwards", "scheduled_for": "2030-01-01T03:00",
        "scheduled_until": "2030-01-01T02:00", "body": "x"})  # fmt: skip
    assert b"The end must come after the start." in response.content
