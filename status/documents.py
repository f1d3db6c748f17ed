"""The Statuspage v2 documents (`/api/v2/*.json`) and webhook payloads, field for field.

Shapes follow ../shared/reference/statuspage-api.md: every field a real client may read is
present, nullable ones as null. Timestamps are UTC with milliseconds and a `Z`.
"""

from datetime import UTC, datetime

from django.conf import settings

from status.models import (
    SEVERITY,
    Component,
    ComponentStatus,
    Impact,
    Incident,
    IncidentUpdate,
    worst_status,
)
from status.rendering import plain_text

INDICATOR_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
    "maintenance": "Service Under Maintenance",
}
# Component statuses count as much as an incident of this impact.
STATUS_INDICATOR = {
    ComponentStatus.OPERATIONAL: "none",
    ComponentStatus.UNDER_MAINTENANCE: "maintenance",
    ComponentStatus.DEGRADED_PERFORMANCE: "minor",
    ComponentStatus.PARTIAL_OUTAGE: "major",
    ComponentStatus.MAJOR_OUTAGE: "critical",
}
INDICATOR_RANK = {"none": 0, "maintenance": 1, "minor": 2, "major": 3, "critical": 4}


def status_page_url(path: str = "") -> str:
    host = f"{settings.STATUS_SUBDOMAIN}.{settings.BASE_DOMAIN}"
    default_port = {"http": "80", "https": "443"}[settings.SITE_SCHEME]
    if settings.SITE_PORT not in ("", default_port):
        host = f"{host}:{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{host}{path}"


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def page_json(updated_at: datetime) -> dict:
    return {
        "id": settings.STATUS_PAGE_ID,
        "name": settings.STATUS_PAGE_NAME,
        "url": status_page_url(),
        "time_zone": "Etc/UTC",
        "updated_at": timestamp(updated_at),
    }


def rollup(components: list[Component], incidents: list[Incident]) -> dict:
    """The page's indicator: the worst of open incidents' impact and component statuses.

    Running maintenance shows as the observed `maintenance` indicator only when nothing
    is actually broken.
    """
    indicator = "none"
    for incident in incidents:
        if incident.is_active:
            candidate = "maintenance" if incident.is_maintenance else incident.impact
            if incident.impact == Impact.NONE and not incident.is_maintenance:
                candidate = "minor"
            if INDICATOR_RANK[candidate] > INDICATOR_RANK[indicator]:
                indicator = candidate
    worst = worst_status([c.status for c in components if not c.is_group])
    by_status = STATUS_INDICATOR[worst]
    if INDICATOR_RANK[by_status] > INDICATOR_RANK[indicator]:
        indicator = by_status
    description = INDICATOR_DESCRIPTIONS[indicator]
    if indicator == "minor" and worst == ComponentStatus.DEGRADED_PERFORMANCE:
        description = "Partially Degraded Service"
    return {"indicator": indicator, "description": description}


def group_status(group: Component, children: list[Component]) -> str:
    return worst_status([child.status for child in children]) if children else group.status


def component_json(component: Component, children: list[Component] | None = None) -> dict:
    document = {
        "id": component.code,
        "name": component.name,
        "status": (
            group_status(component, children or []) if component.is_group else component.status
        ),
        "created_at": timestamp(component.created_at),
        "updated_at": timestamp(component.updated_at),
        "position": component.position,
        "description": component.description or None,
        "showcase": component.showcase,
        "start_date": component.start_date.isoformat() if component.start_date else None,
        "group_id": component.group.code if component.group_id else None,
        "page_id": settings.STATUS_PAGE_ID,
        "group": component.is_group,
        "only_show_if_degraded": component.only_show_if_degraded,
    }
    if component.is_group:
        document["components"] = [child.code for child in children or []]
    return document


def update_json(update: IncidentUpdate, incident: Incident) -> dict:
    return {
        "id": update.code,
        "status": update.status,
        "body": plain_text(update.body),
        "incident_id": incident.code,
        "created_at": timestamp(update.created_at),
        "updated_at": timestamp(update.updated_at),
        "display_at": timestamp(update.display_at),
        "affected_components": update.affected_components or None,
        "deliver_notifications": update.deliver_notifications,
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident_json(incident: Incident) -> dict:
    published = incident.postmortem_published_at
    document = {
        "id": incident.code,
        "name": incident.name,
        "status": incident.public_status,
        "created_at": timestamp(incident.created_at),
        "updated_at": timestamp(incident.updated_at),
        "monitoring_at": timestamp(incident.monitoring_at),
        "resolved_at": timestamp(incident.resolved_at),
        "impact": incident.impact,
        "shortlink": status_page_url(f"/incidents/{incident.code}"),
        "started_at": timestamp(incident.started_at),
        "page_id": settings.STATUS_PAGE_ID,
        "incident_updates": [update_json(u, incident) for u in incident.timeline()],
        "components": [component_json(c) for c in incident.components.all()],
        "reminder_intervals": None,
        "postmortem_body": plain_text(incident.postmortem_body) if published else None,
        "postmortem_body_last_updated_at": timestamp(incident.postmortem_updated_at)
        if published
        else None,
        "postmortem_published_at": timestamp(published),
        "backfilled": incident.backfilled,
        "impact_override": None,
    }
    if incident.is_maintenance:
        document |= {
            "scheduled_for": timestamp(incident.scheduled_for),
            "scheduled_until": timestamp(incident.scheduled_until),
            "scheduled_remind_prior": False,
            "scheduled_reminded_at": None,
            "scheduled_auto_in_progress": incident.auto_start,
            "scheduled_auto_completed": incident.auto_complete,
        }
    return document


class Documents:
    """Everything the snapshot publishes as JSON, computed from one read of the database."""

    def __init__(self, components: list[Component], incidents: list[Incident]):
        self.components = components
        self.incidents = [i for i in incidents if not i.is_maintenance]
        self.maintenances = [i for i in incidents if i.is_maintenance]
        stamps = [c.updated_at for c in components] + [i.updated_at for i in incidents]
        self.updated_at = max(stamps, default=datetime(2015, 1, 1, tzinfo=UTC))
        self.page = page_json(self.updated_at)
        self.status = rollup(components, incidents)

    def children(self, group: Component) -> list[Component]:
        return [c for c in self.components if c.group_id == group.pk]

    def components_json(self) -> list[dict]:
        return [component_json(c, self.children(c)) for c in self.components]

    def unresolved(self) -> list[dict]:
        return [incident_json(i) for i in self.incidents if i.is_active]

    def recent_incidents(self) -> list[dict]:
        wanted = [i for n, i in enumerate(self.incidents) if n < 50 or i.is_active]
        return [incident_json(i) for i in wanted]

    def maintenances_in(self, statuses: list[str]) -> list[dict]:
        return [incident_json(i) for i in self.maintenances if i.status in statuses]

    def all(self) -> dict[str, dict]:
        upcoming = self.maintenances_in(["scheduled"])
        active = self.maintenances_in(["in_progress", "verifying"])
        return {
            "summary.json": {
                "page": self.page,
                "status": self.status,
                "components": self.components_json(),
                "incidents": self.unresolved(),
                "scheduled_maintenances": active + upcoming,
            },
            "status.json": {"page": self.page, "status": self.status},
            "components.json": {"page": self.page, "components": self.components_json()},
            "incidents.json": {"page": self.page, "incidents": self.recent_incidents()},
            "incidents/unresolved.json": {"page": self.page, "incidents": self.unresolved()},
            "scheduled-maintenances.json": {
                "page": self.page,
                "scheduled_maintenances": [incident_json(i) for i in self.maintenances[:50]],
            },
            "scheduled-maintenances/upcoming.json": {
                "page": self.page,
                "scheduled_maintenances": upcoming,
            },
            "scheduled-maintenances/active.json": {
                "page": self.page,
                "scheduled_maintenances": active,
            },
        }


def webhook_page(components: list[Component], incidents: list[Incident]) -> dict:
    status = rollup(components, incidents)
    return {
        "id": settings.STATUS_PAGE_ID,
        "status_indicator": status["indicator"],
        "status_description": status["description"],
    }


def webhook_meta(unsubscribe_url: str) -> dict:
    return {"unsubscribe": unsubscribe_url, "documentation": status_page_url("/api")}


def webhook_component_update(change, component: Component) -> dict:
    return {
        "component_update": {
            "created_at": timestamp(change.changed_at),
            "new_status": change.new_status,
            "old_status": change.old_status,
            "id": f"{component.code}{change.pk}",
            "component_id": component.code,
        },
        "component": {
            "created_at": timestamp(component.created_at),
            "id": component.code,
            "name": component.name,
            "status": component.status,
        },
    }


__all__ = ["SEVERITY", "Documents", "incident_json", "rollup", "status_page_url", "timestamp"]
