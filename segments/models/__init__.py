"""An account's customer data. Account plane: every table lives in each account's schema."""

from segments.models.imports import Import, ImportRejection
from segments.models.people import ActivitySummary, Event, EventDay, Person, Suppression
from segments.models.segment import (
    Membership,
    MembershipChange,
    MembershipChangeChunk,
    MembershipChangeSet,
    Segment,
    SegmentSize,
    SegmentVersion,
)

__all__ = [
    "ActivitySummary",
    "Event",
    "EventDay",
    "Import",
    "ImportRejection",
    "Membership",
    "MembershipChange",
    "MembershipChangeChunk",
    "MembershipChangeSet",
    "Person",
    "Segment",
    "SegmentSize",
    "SegmentVersion",
    "Suppression",
]
