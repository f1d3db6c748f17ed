import os
import subprocess
import threading
import time

import pytest

from maintenance import governor
from maintenance.models import MaintenanceRun

pytestmark = pytest.mark.django_db


def test_it_bounds_the_slots_across_all_kinds(cast, spool, settings):
    settings.GOVERNOR_MAX_SLOTS = 1
    with governor.slot("retention", cast.acme):
        with pytest.raises(governor.Busy):
            with governor.slot("sweep", cast.globex, timeout=0.6):
                pass
    with governor.slot("sweep", cast.globex) as held:
        assert held.run.state == MaintenanceRun.State.RUNNING
    states = list(MaintenanceRun.objects.order_by("pk").values_list("kind", "state"))
    assert states == [("retention", "done"), ("sweep", "failed"), ("sweep", "done")]


def test_it_gives_an_account_to_one_job_at_a_time(cast, spool, settings):
    settings.GOVERNOR_MAX_SLOTS = 3
    with governor.slot("retention", cast.acme):
        with pytest.raises(governor.Busy):
            with governor.slot("move_account", cast.acme, timeout=0.6):
                pass
        with governor.slot("move_account", cast.globex):
            assert MaintenanceRun.objects.live().count() == 2


def test_a_slot_held_by_a_dead_process_is_freed(cast, spool, settings):
    settings.GOVERNOR_MAX_SLOTS = 1
    gone = subprocess.Popen(["true"])
    gone.wait()
    MaintenanceRun.objects.create(
        kind="retention", account_id=cast.acme.pk, host=governor.HOST, pid=gone.pid,
        state=MaintenanceRun.State.RUNNING,
    )  # fmt: skip
    with governor.slot("retention", cast.globex, timeout=2):
        pass
    assert MaintenanceRun.objects.get(pid=gone.pid).state == MaintenanceRun.State.LOST


def test_a_slot_without_a_heartbeat_is_freed(cast, spool, settings):
    settings.GOVERNOR_MAX_SLOTS = 1
    settings.GOVERNOR_STALE_SECONDS = 60
    run = MaintenanceRun.objects.create(
        kind="retention", host="another-node", pid=os.getpid(), state="running"
    )
    MaintenanceRun.objects.filter(pk=run.pk).update(
        heartbeat_at=run.heartbeat_at - governor.timedelta(minutes=5)
    )
    with governor.slot("retention", cast.globex, timeout=2):
        pass
    run.refresh_from_db()
    assert run.state == MaintenanceRun.State.LOST


def test_it_pauses_while_the_drain_is_behind_and_says_why(cast, spool, settings):
    settings.GOVERNOR_MAX_BACKLOG = 5
    spool.append(str(cast.acme.pk), ["{}"] * 10)
    released = []

    def drain_later() -> None:
        time.sleep(1.5)
        ids = [row[0] for row in spool.db.execute("SELECT id FROM items").fetchall()]
        spool.release(ids)
        released.append(len(ids))

    with governor.slot("retention", cast.acme) as held:
        seen = []
        original = held._save

        def watch(state, reason, force=False):
            seen.append((state, reason))
            original(state, reason, force=True)

        held._save = watch
        draining = threading.Thread(target=drain_later)
        draining.start()
        waited = held.wait_if_behind()
        draining.join()
    assert released == [10]
    assert waited >= 1.0
    assert ("paused", "drain behind: 10 items waiting (limit 5)") in seen
    assert seen[-1] == ("running", "")
    run = MaintenanceRun.objects.get()
    assert run.paused_seconds >= 1.0 and run.state == "done"


def test_an_old_item_counts_as_behind(cast, spool, settings):
    settings.GOVERNOR_MAX_BACKLOG_AGE = 2
    spool.append(str(cast.acme.pk), ["{}"])
    spool.db.execute("UPDATE items SET received_at = received_at - 30")
    reason = governor.read_traffic().behind()
    assert reason is not None and reason.startswith("drain behind: oldest item waits 30 s")
    assert 0.5 <= governor.wait_if_behind(max_wait=0.5) < 2


def test_a_deliberately_paused_account_does_not_hold_maintenance_back(cast, spool, settings):
    settings.GOVERNOR_MAX_BACKLOG = 5
    spool.append(str(cast.acme.pk), ["{}"] * 10)
    spool.pause(str(cast.acme.pk))
    assert governor.read_traffic().behind() is None
    assert governor.wait_if_behind(max_wait=0.5) == 0.0


def test_it_stops_waiting_when_told_to(cast, spool, settings):
    settings.GOVERNOR_MAX_BACKLOG = 0
    spool.append(str(cast.acme.pk), ["{}"])
    with pytest.raises(governor.Stopped):
        governor.wait_if_behind(stop=lambda: True)


def test_pace_keeps_the_duty_cycle_and_halves_it_when_the_database_is_busy(spool, settings, db):
    settings.GOVERNOR_DUTY = 0.5
    assert governor.pace(0.2) == pytest.approx(0.2)
    governor._last_reading = None
    settings.GOVERNOR_BUSY_QUERIES = -1  # any count of other queries is "busy"
    started = time.monotonic()
    assert governor.pace(0.2) == pytest.approx(0.6)
    assert time.monotonic() - started >= 0.55


def test_progress_is_recorded_on_the_run(cast, spool, settings):
    settings.GOVERNOR_DUTY = 1.0
    with governor.slot("retention", cast.acme) as held:
        held.pace(1000)
        held.pace(500)
    run = MaintenanceRun.objects.get()
    assert (run.kind, run.account_label, run.rows_done, run.state) == (
        "retention",
        "acme",
        1500,
        "done",
    )
    assert run.started_at and run.finished_at and run.rows_per_second > 0


def test_a_spool_that_is_never_empty_but_drains_in_time_does_not_hold_maintenance_back(
    cast, spool, settings
):
    # Steady ingestion through a healthy drain: something always waits, nothing waits long.
    # Waiting for an empty spool would stall maintenance for as long as customers send data.
    settings.GOVERNOR_MAX_BACKLOG, settings.GOVERNOR_MAX_BACKLOG_AGE = 5_000, 10
    spool.append(str(cast.acme.pk), ["{}"] * 800)
    spool.append(str(cast.globex.pk), ["{}"] * 200)
    spool.db.execute("UPDATE items SET received_at = received_at - 3")
    assert governor.read_traffic().behind() is None
    assert governor.wait_if_behind(max_wait=0.5) == 0.0


def backend_nice() -> tuple[int, int]:
    from django.db import connection

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    return pid, os.getpriority(os.PRIO_PROCESS, pid)


# Inside the test's transaction a slot renices only what it can give back: as root (CI) or
# with CAP_SYS_NICE. Without, these two cannot observe the renice; the drill test still runs
# it, in a worker outside any transaction.
may_give_back = pytest.mark.skipif(
    not governor.may_raise_priority(0), reason="giving a priority back needs CAP_SYS_NICE"
)


@may_give_back
def test_a_slot_runs_its_postgresql_backend_at_low_priority_and_gives_it_back(
    cast, spool, settings
):
    settings.GOVERNOR_NICE = 19
    pid, before = backend_nice()
    assert before < 19
    with governor.slot("retention", cast.acme):
        assert backend_nice() == (pid, 19)
    assert backend_nice() == (pid, before)


def unprivileged_setpriority(monkeypatch) -> None:
    """os.setpriority as a process without CAP_SYS_NICE has it: a nice value only goes up."""
    real = os.setpriority

    def setpriority(which: int, who: int, nice: int) -> None:
        if nice < os.getpriority(which, who):
            raise PermissionError("only a privileged process lowers a nice value")
        real(which, who, nice)

    monkeypatch.setattr(os, "setpriority", setpriority)


@pytest.fixture
def unprivileged(settings, monkeypatch) -> tuple[int, int]:
    """A worker without CAP_SYS_NICE: it may lower its backend's priority, not give it back.
    Returns the backend's pid and nice value before."""
    settings.GOVERNOR_NICE = 19
    pid_and_nice = backend_nice()
    unprivileged_setpriority(monkeypatch)
    monkeypatch.setattr(governor, "may_raise_priority", lambda nice: False)
    return pid_and_nice


def test_a_backend_whose_priority_could_not_be_given_back_is_not_reused(
    cast, spool, unprivileged, monkeypatch
):
    from django.db import connection

    pid, before = unprivileged
    # As a worker outside any transaction sees it.
    # (On the proxy's class: `connection` here and in the governor is django.db's proxy.)
    monkeypatch.setattr(type(connection), "in_atomic_block", False, raising=False)
    with governor.slot("retention", cast.acme):
        assert backend_nice() == (pid, 19)
    assert connection.connection is None or connection.connection.closed
    # What was reniced is gone with its connection, not left serving live work.
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or os.getpriority(os.PRIO_PROCESS, pid) == before


def test_inside_a_transaction_a_backend_is_reniced_only_if_it_can_be_given_back(
    cast, spool, unprivileged
):
    pid, before = unprivileged
    with governor.slot("retention", cast.acme) as held:
        assert backend_nice() == (pid, before) and held.lowered is None
    # The caller's transaction goes on, on the same backend.
    assert backend_nice() == (pid, before)
    assert MaintenanceRun.objects.get().state == "done"


def test_without_a_nice_setting_the_backend_is_left_alone(cast, spool, settings):
    settings.GOVERNOR_NICE = 0
    pid, before = backend_nice()
    with governor.slot("retention", cast.acme):
        assert backend_nice() == (pid, before)


@may_give_back
def test_work_under_the_drains_lock_runs_at_full_priority_inside_a_slot(cast, spool, settings):
    settings.GOVERNOR_NICE = 19
    pid, before = backend_nice()
    with governor.slot("retention", cast.acme) as held:
        with held.full_priority():
            assert backend_nice() == (pid, before)
        assert backend_nice() == (pid, 19)
    assert backend_nice() == (pid, before)
