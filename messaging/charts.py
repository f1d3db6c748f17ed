"""The broadcast chart: events per hour since sending started, one line per kind, as SVG."""

from dataclasses import dataclass
from datetime import datetime, timedelta

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
    rows: list[tuple[datetime, list[int]]]  # the same numbers, as a table, lines in order


def broadcast_chart(broadcast: Broadcast, width: int = 600, height: int = 160) -> LineChart | None:
    counts: dict[datetime, dict[str, int]] = {}
    for row in BroadcastHour.objects.filter(broadcast=broadcast, kind__in=KINDS).order_by("hour"):
        counts.setdefault(row.hour, {})[row.kind] = row.count
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
        (slot, [counts[slot].get(line.kind, 0) for line in lines])
        for slot in slots
        if slot in counts
    ]
    return LineChart(
        width, height, lines, maximum, f"{slots[0]:%-d %b %H:00}", f"{slots[-1]:%-d %b %H:00}", rows
    )
