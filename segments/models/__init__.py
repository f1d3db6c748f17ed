"""An account's customer data. Account plane: every table lives in each account's schema."""

from segments.models.people import ActivitySummary, Event, Person

__all__ = ["ActivitySummary", "Event", "Person"]
