"""Small server-rendered SVG charts: no JavaScript, no CDN, readable without colour."""

from dataclasses import dataclass
from datetime import date


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    maximum: int
    first: str
    last: str


def bar_chart(series: list[tuple[date, int]], width: int = 600, height: int = 120) -> BarChart:
    maximum = max((count for _, count in series), default=0)
    slot = width / max(len(series), 1)
    bars = []
    for index, (day, count) in enumerate(series):
        bar_height = (count / maximum) * (height - 4) if maximum else 0
        bars.append(Bar(
            x=round(index * slot + 1, 2), y=round(height - bar_height, 2),
            width=round(max(slot - 2, 1), 2), height=round(bar_height, 2),
            label=f"{day:%a %-d %b}: {count:,} event{'s' if count != 1 else ''}",
        ))  # fmt: skip
    first = f"{series[0][0]:%-d %b}" if series else ""
    last = f"{series[-1][0]:%-d %b}" if series else ""
    return BarChart(width, height, bars, maximum, first, last)
