"""PostgreSQL stopped under ingest load; the drain worker killed with SIGKILL mid-batch."""

import pytest

from tests.outage.drill import EVENTS_PER_REQUEST, run_drill

pytestmark = pytest.mark.slow


def test_nothing_acknowledged_is_lost_or_duplicated_across_an_outage_and_a_killed_drain():
    report = run_drill(outage_seconds=4, before_seconds=2, after_seconds=2, requests_per_second=25)
    # The API kept answering success while PostgreSQL was down.
    assert report.requests_refused == 0, report.refusals
    assert report.peak_backlog > 0
    assert report.drain_workers_killed == 1
    # Every acknowledged event is there exactly once, and the summaries agree.
    assert report.events_acknowledged == report.requests_acknowledged * EVENTS_PER_REQUEST
    assert report.events_missing == 0
    assert report.events_unexpected == 0
    assert report.events_present == report.events_acknowledged
    assert report.summary_total == report.events_acknowledged
