from django.core.management.base import BaseCommand
from django.db import transaction

from status import actions, demo
from status.models import Component, Incident, UpdateTemplate
from status.snapshot import current_snapshot, publish_after_commit


class Command(BaseCommand):
    help = "Load the demo components and the April 2015 incident once; again changes nothing."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        since = demo.at(0, 0).replace(month=1, day=1)
        for position, (key, name, description) in enumerate(demo.COMPONENTS, start=1):
            _component, created = Component.objects.get_or_create(
                key=key,
                defaults={"name": name, "description": description, "position": position,
                          "start_date": demo.COMPONENTS_SINCE, "created_at": since,
                          "updated_at": since},
            )  # fmt: skip
            if created:
                self.stdout.write(f"Created status component {name}")
        for name, status, title, body in demo.TEMPLATES:
            UpdateTemplate.objects.get_or_create(
                name=name, defaults={"status": status, "title": title, "body": body}
            )
        if not Incident.objects.filter(name=demo.INCIDENT_NAME).exists():
            self.load_incident()
            self.stdout.write(f"Created status incident {demo.INCIDENT_NAME!r}")
        if current_snapshot() is None:
            publish_after_commit()

    def load_incident(self) -> None:
        components = {c.key: c for c in Component.objects.all()}
        first, *rest = demo.TIMELINE
        when, status, body, changes = first
        incident = actions.open_incident(
            name=demo.INCIDENT_NAME, status=status, impact="critical", body=body,
            component_statuses={components[k]: v for k, v in changes.items()},
            display_at=when, deliver_notifications=False, now=when,
        )  # fmt: skip
        for when, status, body, changes in rest:
            actions.post_update(
                incident, status=status, body=body,
                component_statuses={components[k]: v for k, v in changes.items()},
                display_at=when, deliver_notifications=False, now=when,
            )  # fmt: skip
        incident.postmortem_body = demo.POSTMORTEM
        incident.postmortem_updated_at = incident.postmortem_published_at = demo.POSTMORTEM_AT
        incident.updated_at = demo.POSTMORTEM_AT
        incident.save()
