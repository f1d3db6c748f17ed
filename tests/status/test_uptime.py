"""Uptime bars from the status-change log, with Statuspage's weighting."""

from datetime import UTC, date, datetime, timedelta

import pytest

from status.models import Component
from status.uptime import uptime_bars

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def component() -> Component:
    return Component.objects.create(
        key="api", name="API", start_date=date(2025, 1, 1),
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def day_of(bar, day: date):
    return next(d for d in bar.days if d.day == day)


def test_a_major_outage_counts_fully_and_a_partial_one_at_30_percent(component):
    component.set_status("major_outage", at=datetime(2026, 3, 8, 0, 0, tzinfo=UTC))
    component.set_status("partial_outage", at=datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    component.set_status("degraded_performance", at=datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    component.set_status("operational", at=datetime(2026, 3, 8, 18, 0, tzinfo=UTC))
    [bar] = uptime_bars([component], NOW)
    day = day_of(bar, date(2026, 3, 8))
    # 6 h major (6 h down) + 6 h partial (1.8 h down) + 6 h degraded (0) of 24 h.
    assert day.uptime == pytest.approx(100 * (1 - 7.8 / 24))
    assert day.worst == "major_outage"
    assert day.trouble() == [
        "Major outage 6 hrs 0 mins", "Partial outage 6 hrs 0 mins",
        "Degraded performance 6 hrs 0 mins",
    ]  # fmt: skip
    assert day_of(bar, date(2026, 3, 9)).uptime == 100
    assert len(bar.days) == 90
    assert bar.days[-1].day == date(2026, 3, 10)


def test_an_outage_spanning_midnight_is_split_between_days(component):
    component.set_status("major_outage", at=datetime(2026, 3, 8, 23, 0, tzinfo=UTC))
    component.set_status("operational", at=datetime(2026, 3, 9, 1, 0, tzinfo=UTC))
    [bar] = uptime_bars([component], NOW)
    assert day_of(bar, date(2026, 3, 8)).uptime == pytest.approx(100 * 23 / 24)
    assert day_of(bar, date(2026, 3, 9)).uptime == pytest.approx(100 * 23 / 24)


def test_an_outage_that_began_before_the_window_counts_inside_it(component):
    component.set_status("major_outage", at=NOW - timedelta(days=200))
    [bar] = uptime_bars([component], NOW)
    assert bar.uptime == 0


def test_maintenance_is_not_downtime(component):
    component.set_status("under_maintenance", at=datetime(2026, 3, 8, 0, 0, tzinfo=UTC))
    component.set_status("operational", at=datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    [bar] = uptime_bars([component], NOW)
    day = day_of(bar, date(2026, 3, 8))
    assert day.uptime == 100
    assert day.worst == "under_maintenance"


def test_days_before_the_component_existed_have_no_data(component):
    component.start_date = date(2026, 3, 1)
    [bar] = uptime_bars([component], NOW)
    assert not day_of(bar, date(2026, 2, 28)).has_data
    assert day_of(bar, date(2026, 3, 1)).has_data
    assert bar.uptime == 100
