"""90-day uptime bars, derived from the component status-change log.

Weighting (the same as Statuspage's, stated in the page footer and the README): time in a
major outage counts fully as downtime, time in a partial outage counts 30 %, degraded
performance and maintenance do not count. A day before the component existed has no data.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from status.models import (
    SEVERITY,
    Component,
    ComponentStatus,
    ComponentStatusChange,
    worst_status,
)

WINDOW_DAYS = 90
DOWNTIME_WEIGHT = {
    ComponentStatus.MAJOR_OUTAGE: 1.0,
    ComponentStatus.PARTIAL_OUTAGE: 0.3,
    ComponentStatus.DEGRADED_PERFORMANCE: 0.0,
    ComponentStatus.UNDER_MAINTENANCE: 0.0,
    ComponentStatus.OPERATIONAL: 0.0,
}
WEIGHTING_NOTE = (
    "Uptime counts time in a major outage fully and time in a partial outage at 30 %; "
    "degraded performance and scheduled maintenance do not count as downtime."
)


@dataclass
class Day:
    day: date
    has_data: bool
    seconds: dict[str, float] = field(default_factory=dict)  # status -> seconds that day
    incidents: list[str] = field(default_factory=list)

    @property
    def observed(self) -> float:
        return sum(self.seconds.values())

    @property
    def downtime(self) -> float:
        return sum(DOWNTIME_WEIGHT[status] * s for status, s in self.seconds.items())

    @property
    def uptime(self) -> float | None:
        if not self.has_data or not self.observed:
            return None
        return 100 * (1 - self.downtime / self.observed)

    @property
    def worst(self) -> str:
        seen = [status for status, seconds in self.seconds.items() if seconds > 0]
        return worst_status(seen)

    def trouble(self) -> list[str]:
        """ "Major outage 2 hrs 5 mins" for every non-operational status this day, worst first."""
        ranked = sorted(self.seconds.items(), key=lambda item: -SEVERITY[item[0]])
        return [
            f"{ComponentStatus(status).label} {duration_label(seconds)}"
            for status, seconds in ranked
            if status != ComponentStatus.OPERATIONAL and seconds >= 60
        ]


@dataclass
class UptimeBar:
    component: Component
    days: list[Day]

    @property
    def uptime(self) -> float | None:
        observed = sum(day.observed for day in self.days if day.has_data)
        if not observed:
            return None
        down = sum(day.downtime for day in self.days if day.has_data)
        return 100 * (1 - down / observed)


def _intervals(
    changes: list[ComponentStatusChange], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    status = ComponentStatus.OPERATIONAL
    for change in changes:
        if change.changed_at <= start:
            status = change.new_status
    result, cursor = [], start
    for change in changes:
        if start < change.changed_at < end:
            result.append((cursor, change.changed_at, status))
            cursor, status = change.changed_at, change.new_status
    result.append((cursor, end, status))
    return result


def uptime_bars(
    components: list[Component], now: datetime, incidents_by_day: dict | None = None
) -> list[UptimeBar]:
    """One bar per component for the 90 UTC days ending today (today counted up to now)."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=WINDOW_DAYS - 1)
    window_start = datetime.combine(first, time(), UTC)
    changes: dict[int, list[ComponentStatusChange]] = defaultdict(list)
    for change in ComponentStatusChange.objects.filter(
        component__in=components, changed_at__lte=now
    ).order_by("changed_at", "pk"):
        changes[change.component_id].append(change)
    incidents_by_day = incidents_by_day or {}
    bars = []
    for component in components:
        days = [
            Day(
                first + timedelta(days=n), has_data=first + timedelta(days=n) >= component.first_day
            )
            for n in range(WINDOW_DAYS)
        ]
        for begin, end, status in _intervals(changes[component.pk], window_start, now):
            _spread(days, window_start, begin, end, status)
        for day in days:
            day.incidents = incidents_by_day.get((component.pk, day.day), [])
        bars.append(UptimeBar(component, days))
    return bars


def _spread(days: list[Day], window_start: datetime, begin: datetime, end: datetime, status: str):
    cursor = begin
    while cursor < end:
        index = (cursor - window_start).days
        day_end = window_start + timedelta(days=index + 1)
        upto = min(end, day_end)
        day = days[index]
        if day.has_data:
            day.seconds[status] = day.seconds.get(status, 0) + (upto - cursor).total_seconds()
        cursor = upto


def incidents_by_component_day(incidents, now: datetime) -> dict[tuple[int, date], list[str]]:
    """Names of the incidents touching each component on each day, for the hover detail."""
    found: dict[tuple[int, date], list[str]] = defaultdict(list)
    first = now.date() - timedelta(days=WINDOW_DAYS - 1)
    for incident in incidents:
        begin = max(incident.started_at.date(), first)
        end = (incident.resolved_at or now).date()
        for component in incident.components.all():
            day = begin
            while day <= end:
                found[(component.pk, day)].append(incident.name)
                day += timedelta(days=1)
    return found


def duration_label(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} hr{'s' if hours != 1 else ''} {minutes} min{'s' if minutes != 1 else ''}"
    return f"{minutes} min{'s' if minutes != 1 else ''}"
