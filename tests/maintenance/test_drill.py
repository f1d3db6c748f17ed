"""The maintenance drill, short: retention deletes half of an account's events while ingest
runs at half the drain capacity; nothing acknowledged is lost and the drain keeps up."""

import pytest
from django.conf import settings

from tests.maintenance.drill import can_move, run_drill

pytestmark = pytest.mark.django_db(transaction=False)


def test_deleting_old_data_under_steady_ingest_loses_nothing_and_keeps_up(django_db_setup):
    # Small batches, so that retention runs for a while beside the ingest; a takeover size
    # this deletion passes, so that retention vacuums the events table itself.
    env = {
        "RETENTION_BATCH_SIZE": "200", "RETENTION_VACUUM_TAKEOVER_ROWS": "5000",
        "STATIC_ROOT": str(settings.STATIC_ROOT),
    }  # fmt: skip
    report = run_drill(
        small_accounts=2, big_people=2_000, big_events=60_000, burst_requests=60,
        before_seconds=5, during_max_seconds=120, probe_interval=0.2, env=env,
    )  # fmt: skip
    assert report.refusals == []
    assert report.retention_finished, report.move
    # Counted just before the run; the horizon moves on a little meanwhile.
    assert report.old_events > 20_000
    assert report.old_events <= report.retention_deleted <= report.old_events * 1.01
    assert report.events_vacuumed_by_retention == 1 and report.events_autovacuum_on
    assert report.events_acknowledged > 0
    assert (report.events_missing, report.events_unexpected) == (0, 0)
    assert report.events_present == report.events_acknowledged
    assert report.backlog_left == 0
    if can_move():  # adding capacity: one account moved to a second server meanwhile
        assert report.move.startswith("small02 moved to second"), report.move
    before, during = report.phases["before"], report.phases["during"]
    assert during.drain_rate >= 0.5 * before.drain_rate, (before, during)
