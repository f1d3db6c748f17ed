"""The Statuspage v2 documents, field for field against ../shared/reference/statuspage-api.md."""

import json
import re

import pytest

from status import actions

pytestmark = pytest.mark.django_db

PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_KEYS = {
    "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
    "start_date", "group_id", "page_id", "group", "only_show_if_degraded",
}  # fmt: skip
INCIDENT_KEYS = {
    "id", "name", "status", "impact", "created_at", "updated_at", "monitoring_at",
    "resolved_at", "started_at", "shortlink", "page_id", "incident_updates", "components",
    "reminder_intervals",
}  # fmt: skip
UPDATE_KEYS = {
    "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
    "affected_components", "deliver_notifications", "custom_tweet", "tweet_id",
}  # fmt: skip
MAINTENANCE_KEYS = INCIDENT_KEYS | {"scheduled_for", "scheduled_until"}
COMPONENT_STATUSES = {
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance",
}  # fmt: skip
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def get_json(client, path: str) -> dict:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    return json.loads(response.content)


def check_page(page: dict) -> None:
    assert set(page) == PAGE_KEYS
    assert re.fullmatch(r"[0-9a-z]{12}", page["id"])
    assert page["url"] == "http://status.localhost:8000"
    assert page["time_zone"] == "Etc/UTC"
    assert TIMESTAMP.match(page["updated_at"])


def check_incident(incident: dict, keys: set[str] = INCIDENT_KEYS) -> None:
    assert keys <= set(incident)
    assert incident["shortlink"] == f"http://status.localhost:8000/incidents/{incident['id']}"
    for update in incident["incident_updates"]:
        assert set(update) == UPDATE_KEYS
        assert update["incident_id"] == incident["id"]
        assert TIMESTAMP.match(update["display_at"])
    for component in incident["components"]:
        assert COMPONENT_KEYS <= set(component)


def test_summary_has_the_five_documented_parts(demo, publish, status_client):
    publish()
    summary = get_json(status_client, "/api/v2/summary.json")
    assert set(summary) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    check_page(summary["page"])
    assert summary["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert [c["name"] for c in summary["components"]] == [
        "Email Sending", "Data Processing", "Management Interface", "Unsubscribe",
        "Data Collection", "JavaScript Tracker",
    ]  # fmt: skip
    for component in summary["components"]:
        assert set(component) == COMPONENT_KEYS
        assert component["status"] in COMPONENT_STATUSES
        assert component["group"] is False
        assert component["page_id"] == summary["page"]["id"]
    # Resolved long ago: not in the summary.
    assert summary["incidents"] == []


def test_status_json_is_page_and_status_only(demo, publish, status_client):
    publish()
    assert set(get_json(status_client, "/api/v2/status.json")) == {"page", "status"}
    assert set(get_json(status_client, "/api/v2/components.json")) == {"page", "components"}


def test_the_2015_incident_reads_as_statuspage_reported_it(demo, publish, status_client):
    publish()
    incidents = get_json(status_client, "/api/v2/incidents.json")["incidents"]
    assert len(incidents) == 1
    incident = incidents[0]
    check_incident(incident)
    assert incident["name"] == "Extended outage since 11:41 pm EDT"
    assert incident["status"] == "postmortem"
    assert incident["impact"] == "critical"
    assert incident["created_at"] == "2015-04-28T03:41:00.000Z"
    assert incident["monitoring_at"] == "2015-04-28T16:15:00.000Z"
    assert incident["resolved_at"] == "2015-04-28T20:46:00.000Z"
    assert incident["postmortem_published_at"] == "2015-04-28T23:45:00.000Z"
    updates = incident["incident_updates"]
    assert [u["display_at"][11:16] for u in updates] == [
        "20:46", "17:08", "16:15", "15:43", "15:26", "14:36", "09:10", "06:37", "03:41",
    ]  # fmt: skip
    assert updates[0]["status"] == "resolved"
    assert updates[-1]["affected_components"][0] == {
        "code": demo["email-sending"].code,
        "name": "Email Sending",
        "old_status": "operational",
        "new_status": "major_outage",
    }
    assert updates[1]["affected_components"] is None
    assert {c["name"] for c in incident["components"]} == {
        "Email Sending", "Data Processing", "Management Interface", "Unsubscribe",
    }  # fmt: skip


def test_an_open_incident_is_unresolved_and_sets_the_indicator(demo, publish, status_client):
    actions.open_incident(
        name="Dashboards slow", status="investigating", impact="major", body="Looking.",
        component_statuses={demo["management-interface"]: "partial_outage"},
    )  # fmt: skip
    publish()
    unresolved = get_json(status_client, "/api/v2/incidents/unresolved.json")
    assert set(unresolved) == {"page", "incidents"}
    assert [i["name"] for i in unresolved["incidents"]] == ["Dashboards slow"]
    assert unresolved["incidents"][0]["status"] == "investigating"
    status = get_json(status_client, "/api/v2/status.json")["status"]
    assert status == {"indicator": "major", "description": "Partial System Outage"}
    summary = get_json(status_client, "/api/v2/summary.json")
    assert [i["name"] for i in summary["incidents"]] == ["Dashboards slow"]
    # Unresolved incidents are in incidents.json too, newest first.
    names = [i["name"] for i in get_json(status_client, "/api/v2/incidents.json")["incidents"]]
    assert names == ["Dashboards slow", "Extended outage since 11:41 pm EDT"]


def test_maintenance_endpoints_split_by_state(demo, publish, status_client):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    upcoming = actions.schedule_maintenance(
        name="Database upgrade", body="Upgrading PostgreSQL.", components=[demo["data-processing"]],
        scheduled_for=now + timedelta(days=1), scheduled_until=now + timedelta(days=1, hours=1),
    )  # fmt: skip
    running = actions.schedule_maintenance(
        name="Mail relay swap", body="Swapping relays.", components=[demo["email-sending"]],
        scheduled_for=now - timedelta(minutes=5), scheduled_until=now + timedelta(hours=1),
    )  # fmt: skip
    actions.start_maintenance(running, now)
    publish()
    up = get_json(status_client, "/api/v2/scheduled-maintenances/upcoming.json")
    active = get_json(status_client, "/api/v2/scheduled-maintenances/active.json")
    every = get_json(status_client, "/api/v2/scheduled-maintenances.json")
    for document in (up, active, every):
        assert set(document) == {"page", "scheduled_maintenances"}
    assert [m["id"] for m in up["scheduled_maintenances"]] == [upcoming.code]
    assert [m["id"] for m in active["scheduled_maintenances"]] == [running.code]
    assert {m["id"] for m in every["scheduled_maintenances"]} == {upcoming.code, running.code}
    maintenance = up["scheduled_maintenances"][0]
    check_incident(maintenance, MAINTENANCE_KEYS)
    assert maintenance["impact"] == "maintenance"
    assert maintenance["status"] == "scheduled"
    assert TIMESTAMP.match(maintenance["scheduled_for"])
    status = get_json(status_client, "/api/v2/status.json")["status"]
    assert status == {"indicator": "maintenance", "description": "Service Under Maintenance"}
    summary = get_json(status_client, "/api/v2/summary.json")
    assert {m["id"] for m in summary["scheduled_maintenances"]} == {upcoming.code, running.code}


def test_groups_list_their_children_and_take_their_worst_status(demo, publish, status_client):
    from status.models import Component

    group = Component.objects.create(key="tracking", name="Tracking", is_group=True, position=9)
    Component.objects.filter(key__in=["data-collection", "javascript-tracker"]).update(group=group)
    actions.change_component_status(demo["javascript-tracker"], "degraded_performance")
    publish()
    components = get_json(status_client, "/api/v2/components.json")["components"]
    shown = next(c for c in components if c["id"] == group.code)
    assert shown["group"] is True
    assert set(shown["components"]) == {
        demo["data-collection"].code,
        demo["javascript-tracker"].code,
    }
    assert shown["status"] == "degraded_performance"
    child = next(c for c in components if c["id"] == demo["data-collection"].code)
    assert child["group_id"] == group.code
