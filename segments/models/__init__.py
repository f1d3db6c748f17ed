"""An account's customer data. Account plane: every table lives in each account's schema."""

from segments.models.imports import Import, ImportRejection
from segments.models.people import ActivitySummary, Event, EventDay, Person, Suppression

__all__ = [
    "ActivitySummary",
    "Event",
    "EventDay",
    "Import",
    "ImportRejection",
    "Person",
    "Suppression",
]
