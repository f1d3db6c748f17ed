"""The governor: background maintenance yields to live traffic.

In 2015 deleting old data and adding capacity, run during peak hours, starved the load they
were meant to help. Here every piece of background maintenance (retention cleanup,
move_account, the all-accounts migration run, segment sweeps) runs inside a governor slot:

    from maintenance import governor

    with governor.slot("retention", account) as slot:   # waits for a free slot
        while work_left:
            slot.wait_if_behind()        # blocks while the drain is behind
            rows = do_one_small_batch()  # a short transaction, seconds at most
            slot.pace(rows)              # records progress and sleeps to keep the duty cycle

Three rules, all in settings (`GOVERNOR_*`):

- **Bounded concurrency.** At most `GOVERNOR_MAX_SLOTS` slots run at once across all
  processes and nodes (a control-plane table under an advisory lock), and at most one per
  account, so two jobs never work on the same schema at once. Others wait their turn, first
  come first served, and staff see them waiting.
- **Ingestion first.** `wait_if_behind()` pauses while the drain is behind: items waiting in
  this node's spool above `GOVERNOR_MAX_BACKLOG` or the oldest older than
  `GOVERNOR_MAX_BACKLOG_AGE` seconds (accounts whose drain is deliberately paused, e.g. by a
  move, are left out). It resumes when the backlog is back under half of both limits.
- **A duty cycle.** `pace(rows)` sleeps after each batch so that a slot works at most
  `GOVERNOR_DUTY` of the time (0.5: as long as the batch took); when more than
  `GOVERNOR_BUSY_QUERIES` other queries are active in PostgreSQL (dashboards, the drain) the
  duty is halved. Rows done, rate, pauses and state land on the slot's row about once a
  second, which is what `/staff/maintenance/` shows.

- **Spare CPU only.** Where the slot's PostgreSQL backend runs on this host and Ferry may change
  its scheduling priority (the embedded server; any server run by the same user or when the
  worker has CAP_SYS_NICE), the backend is reniced to `GOVERNOR_NICE` (19) for the slot, so
  its queries get the cores only when live traffic leaves them idle; the duty cycle and the
  backlog pause still apply, and are all there is against a server elsewhere. The 2015 drill
  showed why: at half the drain capacity the live path kept 1.7 of 2 cores busy, the drain never
  fell behind, and what retention took came out of how fast the Track API answered.

A process that dies holding a slot is noticed by the next one that asks (same host: its pid
is gone; any host: no heartbeat for `GOVERNOR_STALE_SECONDS`), and its slot is freed.

Code without a slot (a one-off command) can still call `governor.wait_if_behind()`.
"""

import ipaddress
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, control_plane
from config.processes import alive
from ingest.spool import get_spool
from maintenance.models import MaintenanceRun

HOST = socket.gethostname()
# pg_advisory_xact_lock key for handing out slots ("ferrygov").
SLOT_LOCK = 0x666572727967
POLL_SECONDS = 0.5
CAP_SYS_NICE = 23  # linux/capability.h
APPLICATION_NAME = "ferry-maintenance"


class Busy(Exception):
    """No slot came free within the time asked for."""


class Stopped(Exception):
    """The worker was told to stop while waiting."""


@dataclass(frozen=True)
class Reading:
    """What live traffic looks like right now, as the governor judges it."""

    backlog: int
    oldest_age_seconds: float
    active_queries: int
    taken_at: float = field(default_factory=time.monotonic)

    def behind(self, *, resuming: bool = False) -> str | None:
        """Why maintenance should pause now, or None. `resuming` asks for the lower bar
        (half of each limit), so that a pause does not flap at the edge."""
        share = 0.5 if resuming else 1.0
        max_backlog = settings.GOVERNOR_MAX_BACKLOG * share
        max_age = settings.GOVERNOR_MAX_BACKLOG_AGE * share
        if self.backlog > max_backlog:
            return f"drain behind: {self.backlog:,} items waiting (limit {max_backlog:,.0f})"
        if self.oldest_age_seconds > max_age:
            return (
                f"drain behind: oldest item waits {self.oldest_age_seconds:.0f} s "
                f"(limit {max_age:.0f} s)"
            )
        return None

    @property
    def busy(self) -> bool:
        return self.active_queries > settings.GOVERNOR_BUSY_QUERIES

    @property
    def duty(self) -> float:
        return settings.GOVERNOR_DUTY / (2 if self.busy else 1)


_last_reading: Reading | None = None


def read_traffic(max_age_seconds: float = 1.0) -> Reading:
    """The spool backlog and PostgreSQL's active queries, measured at most once a second."""
    global _last_reading
    if _last_reading and time.monotonic() - _last_reading.taken_at < max_age_seconds:
        return _last_reading
    spool = get_spool()
    # Accounts whose drain is paused on purpose (a move in progress) grow a backlog that
    # maintenance cannot help; counting it would stall the very move that paused them.
    paused = {row[0] for row in spool.db.execute("SELECT account FROM paused").fetchall()}
    rows = [row for row in spool.backlog() if row.account not in paused]
    backlog = sum(row.waiting for row in rows)
    oldest = max((row.oldest_age_seconds for row in rows), default=0.0)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE state = 'active' AND backend_type = 'client backend'
              AND pid <> pg_backend_pid() AND application_name NOT LIKE %s
            """,
            [f"{APPLICATION_NAME}%"],
        )
        active = cursor.fetchone()[0]
    _last_reading = Reading(backlog, oldest, active)
    return _last_reading


def wait_if_behind(
    stop: Callable[[], bool] = lambda: False,
    on_pause: Callable[[str], None] | None = None,
    max_wait: float | None = None,
) -> float:
    """Block while the drain is behind; return the seconds spent waiting.

    Raises Stopped if `stop()` becomes true while waiting, and returns after `max_wait`
    seconds even if still behind (None: wait as long as it takes).
    """
    reason = read_traffic().behind()
    if reason is None:
        return 0.0
    started = time.monotonic()
    while reason is not None:
        if on_pause:
            on_pause(reason)
        if stop():
            raise Stopped
        if max_wait is not None and time.monotonic() - started >= max_wait:
            break
        time.sleep(POLL_SECONDS)
        reason = read_traffic(max_age_seconds=POLL_SECONDS).behind(resuming=True)
    return time.monotonic() - started


def pace(worked_seconds: float, stop: Callable[[], bool] = lambda: False) -> float:
    """Sleep so that work of `worked_seconds` keeps to the duty cycle; return the sleep."""
    duty = read_traffic().duty
    pause = worked_seconds * (1 - duty) / duty
    deadline = time.monotonic() + pause
    while not stop() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, POLL_SECONDS))
    return pause


class Slot:
    """A held governor slot: pace and pause through it, and staff see its progress."""

    def __init__(self, run: MaintenanceRun, stop: Callable[[], bool]) -> None:
        self.run = run
        self.stop = stop
        self.rows_done = 0
        self.started = time.monotonic()
        self.paused_seconds = 0.0
        self._since = time.monotonic()
        self._saved = 0.0
        # (backend pid, nice before) while the slot's backend runs at lowered priority.
        self.lowered: tuple[int, int] | None = None

    @contextmanager
    def full_priority(self) -> Iterator[None]:
        """Work that holds a lock live traffic waits for (the account's writer lock) runs at
        the usual priority: a niced backend holding it would make the drain wait for spare
        CPU. Where the priority cannot be given back, the block runs on a new connection."""
        if self.lowered is not None:
            restore_backend_priority(*self.lowered)
            self.lowered = None
        try:
            yield
        finally:
            self.lowered = lower_backend_priority()

    def wait_if_behind(self) -> float:
        def show_pause(reason: str) -> None:
            self._save(MaintenanceRun.State.PAUSED, reason)

        waited = wait_if_behind(self.stop, on_pause=show_pause)
        if waited:
            self.paused_seconds += waited
            self._save(MaintenanceRun.State.RUNNING, "", force=True)
        if self.stop():
            raise Stopped
        self._since = time.monotonic()
        return waited

    def pace(self, rows: int = 0) -> None:
        """Record `rows` done since the last call, then sleep for the duty cycle."""
        self.rows_done += rows
        worked = time.monotonic() - self._since
        self._save(MaintenanceRun.State.RUNNING, "")
        pace(worked, self.stop)
        self._since = time.monotonic()

    @property
    def rows_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows_done / elapsed if elapsed > 0 else 0.0

    def _save(self, state: str, reason: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._saved < 1.0 and state == self.run.state:
            return
        self._saved = now
        run = self.run
        run.state, run.reason = state, reason[:300]
        run.rows_done, run.rows_per_second = self.rows_done, self.rows_per_second
        run.paused_seconds, run.heartbeat_at = self.paused_seconds, timezone.now()
        with control_plane():
            run.save(
                update_fields=[
                    "state", "reason", "rows_done", "rows_per_second", "paused_seconds",
                    "heartbeat_at",
                ]
            )  # fmt: skip


@contextmanager
def slot(
    kind: str,
    account: Account | None = None,
    *,
    stop: Callable[[], bool] = lambda: False,
    timeout: float | None = None,
) -> Iterator[Slot]:
    """Hold one of the governor's slots for the block (waiting for one first).

    Raises Busy after `timeout` seconds without a slot, Stopped when `stop()` turns true while
    waiting. The run is recorded as done, or failed with the exception's text.
    """
    with control_plane():
        run = MaintenanceRun.objects.create(
            kind=kind,
            account_id=account.pk if account else None,
            account_label=account.slug if account else "",
            host=HOST,
            pid=os.getpid(),
        )
    try:
        _wait_for_turn(run, stop, timeout)
    except BaseException as error:
        _finish(run, MaintenanceRun.State.FAILED, f"never started: {type(error).__name__}")
        raise
    held = Slot(run, stop)
    _set_application_name(f"{APPLICATION_NAME}:{kind}")
    held.lowered = lower_backend_priority()
    try:
        yield held
    except BaseException as error:
        held._save(MaintenanceRun.State.RUNNING, "", force=True)
        text = "stopped" if isinstance(error, Stopped) else f"{type(error).__name__}: {error}"
        _finish(run, MaintenanceRun.State.FAILED, text)
        raise
    else:
        held._save(MaintenanceRun.State.RUNNING, "", force=True)
        _finish(run, MaintenanceRun.State.DONE, "")
    finally:
        _set_application_name(None)
        if held.lowered is not None:
            restore_backend_priority(*held.lowered)


def _wait_for_turn(run: MaintenanceRun, stop: Callable[[], bool], timeout: float | None) -> None:
    started = time.monotonic()
    while not _try_start(run):
        if stop():
            raise Stopped
        if timeout is not None and time.monotonic() - started >= timeout:
            raise Busy(f"no maintenance slot free for {run.kind} within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def _try_start(run: MaintenanceRun) -> bool:
    """Promote the run to running if a slot is free, it is first in line, and nothing else
    works on its account. One transaction under an advisory lock, so two processes never
    both take the last slot."""
    with control_plane(), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SLOT_LOCK])
        reap_lost_runs()
        live = list(MaintenanceRun.objects.live().exclude(pk=run.pk))
        holding = [r for r in live if r.state != MaintenanceRun.State.WAITING]
        ahead = [r for r in live if r.state == MaintenanceRun.State.WAITING and r.pk < run.pk]
        same_account = run.account_id is not None and any(
            r.account_id == run.account_id for r in holding
        )
        # Someone ahead in line goes first, unless they wait only for their own account.
        ahead_blocking = [
            r
            for r in ahead
            if r.account_id is None or all(h.account_id != r.account_id for h in holding)
        ]
        if len(holding) >= settings.GOVERNOR_MAX_SLOTS or same_account or ahead_blocking:
            MaintenanceRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
            return False
        run.state, run.started_at = MaintenanceRun.State.RUNNING, timezone.now()
        run.heartbeat_at = run.started_at
        run.save(update_fields=["state", "started_at", "heartbeat_at"])
        return True


def reap_lost_runs() -> int:
    """Mark runs whose process is gone as lost, which frees their slots."""
    stale_before = timezone.now() - timedelta(seconds=settings.GOVERNOR_STALE_SECONDS)
    lost = [
        run.pk
        for run in MaintenanceRun.objects.live()
        if run.heartbeat_at < stale_before or (run.host == HOST and not alive(run.pid))
    ]
    if lost:
        MaintenanceRun.objects.filter(pk__in=lost).update(
            state=MaintenanceRun.State.LOST, finished_at=timezone.now()
        )
    return len(lost)


def _finish(run: MaintenanceRun, state: str, reason: str) -> None:
    run.state, run.reason, run.finished_at = state, reason[:300], timezone.now()
    with control_plane():
        run.save(update_fields=["state", "reason", "finished_at"])


def _set_application_name(name: str | None) -> None:
    """The governor counts other sessions' active queries; its own must not count. None: back
    to the name the connection started with (its process's, see config.settings)."""
    with connection.cursor() as cursor:
        if name is None:
            cursor.execute("RESET application_name")
        else:
            cursor.execute("SELECT set_config('application_name', %s, false)", [name])


def lower_backend_priority() -> tuple[int, int] | None:
    """Renice this connection's PostgreSQL backend to GOVERNOR_NICE if it runs on this host
    and Ferry may; returns (backend pid, its nice before) to restore, or None."""
    if not settings.GOVERNOR_NICE or not hasattr(os, "setpriority"):
        return None
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_addr()")
        (address,) = cursor.fetchone()
    # A socket connection (no address) or a loopback one reaches a server on this host; the
    # pid must also be a postgres process here, not a namesake on another machine.
    if address is not None and not ipaddress.ip_address(str(address)).is_loopback:
        return None
    if _process_name(pid) != "postgres":
        return None
    try:
        before = os.getpriority(os.PRIO_PROCESS, pid)
        if not may_raise_priority(before) and connection.in_atomic_block:
            # Giving it back would mean closing the connection, and with it the caller's
            # transaction: leave this backend alone.
            return None
        os.setpriority(os.PRIO_PROCESS, pid, max(before, settings.GOVERNOR_NICE))
    except OSError:
        return None  # not ours to renice: the duty cycle and the backlog pause remain
    return pid, before


def may_raise_priority(nice: int) -> bool:
    """May this process set a nice value as low as `nice` again? Root or CAP_SYS_NICE may;
    others as far as RLIMIT_NICE allows (its soft limit is 20 minus the lowest nice)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as status:
            capabilities = next(line for line in status if line.startswith("CapEff:"))
        if int(capabilities.split()[1], 16) & (1 << CAP_SYS_NICE):
            return True
    except (OSError, StopIteration, ValueError):
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    return soft == resource.RLIM_INFINITY or 20 - soft <= nice


def restore_backend_priority(pid: int, nice: int) -> None:
    """Give the backend its priority back, or close the connection if Ferry may not raise it
    again (only root may lower a nice value), so that live work never runs on it niced."""
    current = connection.connection
    if current is None or current.closed or current.info.backend_pid != pid:
        return  # the connection was replaced meanwhile; that backend is gone
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        connection.close()


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""
