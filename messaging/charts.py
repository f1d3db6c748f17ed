"""The broadcast chart: events per hour since sending started, one line per kind, as SVG."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.safestring import SafeString, mark_safe

from messaging.models import Broadcast, BroadcastHour

KINDS = ["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed"]
MAX_HOURS = 24 * 14


@dataclass
class Line:
    kind: str
    points: str  # SVG polyline points
    total: int


@dataclass
class LineChart:
    width: int
    height: int
    lines: list[Line]
    maximum: int
    first: str
    last: str
    rows: list[tuple[str, list[int]]]  # the same numbers by hour ("1 Nov 10:00"), lines in order

    def table_rows(self) -> SafeString:
        """The table's rows, written here: up to 336 hours of template loops cost more than
        the rest of the broadcast page (labels and counts need no escaping)."""
        return mark_safe(
            "".join(
                f"<tr><td>{hour}</td>{''.join(f'<td>{count}</td>' for count in counts)}</tr>"
                for hour, counts in self.rows
            )
        )


def broadcast_chart(broadcast: Broadcast, width: int = 600, height: int = 160) -> LineChart | None:
    counts: dict[datetime, dict[str, int]] = {}
    hours_of_kinds = BroadcastHour.objects.filter(broadcast=broadcast, kind__in=KINDS)
    for hour, kind, count in hours_of_kinds.values_list("hour", "kind", "count"):
        counts.setdefault(hour, {})[kind] = count
    if not counts:
        return None
    start = min(counts)
    hours = min(int((max(counts) - start).total_seconds() // 3600) + 1, MAX_HOURS)
    slots = [start + timedelta(hours=n) for n in range(max(hours, 2))]
    maximum = max(max(kinds.values()) for kinds in counts.values())
    step = width / (len(slots) - 1)
    lines = []
    for kind in KINDS:
        values = [counts.get(slot, {}).get(kind, 0) for slot in slots]
        if not any(values):
            continue
        points = " ".join(
            f"{round(i * step, 1)},{round(height - 2 - (v / maximum) * (height - 6), 1)}"
            for i, v in enumerate(values)
        )
        lines.append(Line(kind, points, sum(values)))
    # The table under the chart: each hour's counts in the order of the lines, so the
    # template writes cells instead of searching every hour's counts for every line.
    rows = [
        (f"{slot.day} {slot:%b %H}:00", [counts[slot].get(line.kind, 0) for line in lines])
        for slot in slots
        if slot in counts
    ]
    return LineChart(
        width, height, lines, maximum, f"{slots[0]:%-d %b %H:00}", f"{slots[-1]:%-d %b %H:00}", rows
    )
