"""The 2015 maintenance drill: delete old data (and move an account) while keeping up.

A private PostgreSQL cluster with one big account and several small ones, Ferry under
gunicorn with two drain workers, steady Track API ingest at half the drain capacity measured
in the same run, and a prober reading the big account's dashboard. Phase "before" measures
the drain rate and dashboard latency; phase "during" repeats that while retention deletes
about half of the big account's events under the governor (and, when `move_account` exists,
one small account moves to a second PostgreSQL server). At the end every acknowledged event
must be present exactly once.

Used by tests/maintenance/test_drill.py (small) and bench/drill_2015.py (1,000,000 people).
"""

import http.client
import json
import math
import os
import subprocess
import tempfile
import threading
import time
from base64 import b64encode
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.generate_account import generate
from tests.drills import (
    BASE_DIR,
    Cluster,
    DrillAccount,
    EventTally,
    Ferry,
    create_accounts,
    stored_event_keys,
)

EVENTS_PER_REQUEST = 100
PEOPLE_PER_ACCOUNT = 500
RETENTION_DAYS = 45  # the generated events span 90 days: about half are older


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    acknowledged: int = 0
    backlog_start: int = 0
    backlog_end: int = 0
    backlog_max: int = 0
    dashboard_ms: list[float] = field(default_factory=list)
    accept_ms: list[float] = field(default_factory=list)  # Track API requests, answered 200
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by kind of process
    # The whole machine's: share of the time some task waited for a CPU / for I/O (Linux
    # pressure stall information), and megabytes written to block devices.
    machine: dict[str, float] = field(default_factory=dict)

    @property
    def drained(self) -> int:
        return self.acknowledged + self.backlog_start - self.backlog_end

    @property
    def drain_rate(self) -> float:
        return self.drained / self.seconds if self.seconds else 0.0

    @property
    def ingest_rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0

    def percentile(self, share: float, latencies: list[float] | None = None) -> float:
        """Of the dashboard's latencies, unless others are given."""
        ordered = sorted(self.dashboard_ms if latencies is None else latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


@dataclass
class DrillReport(EventTally):
    accounts: int = 0
    big_people: int = 0
    big_events: int = 0
    capacity: float = 0.0
    offered: float = 0.0
    phases: dict[str, Phase] = field(default_factory=dict)
    old_events: int = 0
    retention_deleted: int = 0
    retention_seconds: float = 0.0
    retention_paused_seconds: float = 0.0
    retention_finished: bool = False
    # The big account's events table after retention: VACUUMs run by hand (retention's own),
    # and whether autovacuum is on for it again.
    events_vacuumed_by_retention: int = 0
    events_autovacuum_on: bool = True
    move: str = "not run"
    drain_after_seconds: float = 0.0
    backlog_left: int = 0


EVENTS_VACUUMED = """
SELECT s.vacuum_count, c.reloptions FROM pg_stat_user_tables AS s
JOIN pg_class AS c ON c.oid = s.relid
JOIN accounts_account AS a ON a.schema_name = s.schemaname
WHERE a.slug = 'big' AND s.relname = 'segments_event'
"""


class Sender(threading.Thread):
    """v2 batches of EVENTS_PER_REQUEST events at a steady rate, round robin over accounts
    with every other request going to the big one; remembers what was acknowledged."""

    def __init__(self, port: int, targets: list[DrillAccount], requests_per_second: float,
                 prefix: str, limit: int | None = None) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.port, self.targets, self.prefix, self.limit = port, targets, prefix, limit
        self.interval = 1 / requests_per_second if requests_per_second else 0
        self.acknowledged: dict[str, list[str]] = {t.slug: [] for t in targets}
        self.acknowledged_count = 0
        self.refusals: list[str] = []
        self.phase: Phase | None = None
        self.stopping = threading.Event()

    def target(self, number: int) -> DrillAccount:
        if number % 2 == 0:
            return self.targets[0]
        return self.targets[1 + (number // 2) % (len(self.targets) - 1)]

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        number, next_at = 0, time.monotonic()
        while not self.stopping.is_set() and (self.limit is None or number < self.limit):
            target = self.target(number)
            auth = "Basic " + b64encode(f"{target.site_id}:{target.api_key}".encode()).decode()
            ids = [f"{self.prefix}-{number}-{i}" for i in range(EVENTS_PER_REQUEST)]
            batch = [
                {"type": "person", "identifiers": {"id": f"p{(number * 7 + i) % PEOPLE_PER_ACCOUNT}"},
                 "action": "event", "name": "drilled", "id": event_id, "attributes": {"i": i}}
                for i, event_id in enumerate(ids)
            ]  # fmt: skip
            number += 1
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", "/api/v2/batch", body=json.dumps({"batch": batch}),
                    headers={"Authorization": auth, "Content-Type": "application/json"},
                )  # fmt: skip
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    self.acknowledged[target.slug].extend(ids)
                    self.acknowledged_count += len(ids)
                    if self.phase is not None:
                        self.phase.accept_ms.append((time.perf_counter() - started) * 1000)
                else:
                    self.refusals.append(f"{response.status} {body[:200]!r}")
            except OSError as error:
                self.refusals.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            if self.interval:
                next_at += self.interval
                time.sleep(max(0.0, next_at - time.monotonic()))


class Prober(threading.Thread):
    """A signed-in owner reading the big account's overview and people list, one request
    every `interval` seconds; latencies go to the current phase."""

    PATHS = ("/", "/people/", "/people/?q=1")

    def __init__(self, port: int, host: str, session_key: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.port, self.host, self.interval = port, host, interval
        self.cookie = f"ferry_session={session_key}"
        self.phase: Phase | None = None
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        number = 0
        while not self.stopping.is_set():
            path = self.PATHS[number % len(self.PATHS)]
            number += 1
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers={"Host": self.host, "Cookie": self.cookie})
                response = connection.getresponse()
                response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    self.errors.append(f"{path}: {response.status}")
                elif self.phase is not None:
                    self.phase.dashboard_ms.append(elapsed)
            except OSError as error:
                self.errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            time.sleep(self.interval)


def machine_counters() -> dict[str, float]:
    """Cumulative stall seconds (/proc/pressure) and MB written (/proc/vmstat), where Linux
    has them."""
    counters: dict[str, float] = {}
    for resource in ("cpu", "io"):
        try:
            with open(f"/proc/pressure/{resource}") as pressure:
                for line in pressure:
                    kind, *values = line.split()
                    total = dict(value.split("=") for value in values)["total"]
                    counters[f"{resource} {kind}"] = int(total) / 1e6
        except OSError:
            pass
    try:
        with open("/proc/vmstat") as vmstat:
            pages = dict(line.split() for line in vmstat)
        counters["written MB"] = int(pages["pgpgout"]) / 1024  # pgpgout counts KB
    except (OSError, KeyError):
        pass
    return counters


class CpuMeter(threading.Thread):
    """CPU seconds by kind of process, sampled from /proc twice a second: Ferry's processes by
    what they run, PostgreSQL's by `application_name` (see config.settings.process_role) and
    backend type. A process that exits loses at most its last half second."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, urls: list[str], roots: dict[str, Callable[[], list[int]]],
                 own: str) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.urls, self.roots, self.own = urls, roots, own
        self.totals: dict[str, float] = defaultdict(float)
        self.seen: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.started = float(Path("/proc/uptime").read_text().split()[0])

    @staticmethod
    def stat(pid: int | str) -> list[str] | None:
        """/proc/<pid>/stat's fields after the command name (state first), or None if gone."""
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def children(self) -> dict[int, list[int]]:
        tree: dict[int, list[int]] = defaultdict(list)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (fields := self.stat(entry.name)):
                tree[int(fields[1])].append(int(entry.name))
        return tree

    def cpu(self, pid: int) -> tuple[float, float] | None:
        """utime + stime, and when the process started, in seconds since boot."""
        if (fields := self.stat(pid)) is None:
            return None
        return (int(fields[11]) + int(fields[12])) / self.TICK, int(fields[19]) / self.TICK

    def postgres(self, connections: list) -> dict[int, str]:
        kinds = {}
        for conn in connections:
            for pid, backend, application in conn.execute(
                "SELECT pid, backend_type, application_name FROM pg_stat_activity"
            ):  # fmt: skip
                if backend == "client backend":
                    kinds[pid] = f"PostgreSQL for {application or 'other'}"
                elif backend.startswith("autovacuum"):
                    kinds[pid] = "PostgreSQL autovacuum"
                else:
                    kinds[pid] = "PostgreSQL background"
        return kinds

    def sample(self, connections: list) -> None:
        tree = self.children()
        kinds: dict[int, str] = {}
        for kind, pids in self.roots.items():
            stack = list(pids())
            while stack:
                pid = stack.pop()
                kinds.setdefault(pid, kind)
                stack += tree.get(pid, [])
        kinds.update(self.postgres(connections))
        kinds[os.getpid()] = self.own  # not its children: they are counted above
        with self.lock:
            for pid, kind in kinds.items():
                reading = self.cpu(pid)
                if reading is None:
                    continue
                used, started = reading
                if pid not in self.seen:  # a process started since the meter did counts whole
                    self.seen[pid] = 0.0 if started >= self.started else used
                self.totals[kind] += used - self.seen[pid]
                self.seen[pid] = used

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return dict(self.totals)

    def run(self) -> None:
        connections = [psycopg.connect(url, autocommit=True) for url in self.urls]
        try:
            while not self.stopping.is_set():
                self.sample(connections)
                self.stopping.wait(0.5)
        finally:
            for conn in connections:
                conn.close()


def run_drill(
    *, small_accounts: int, big_people: int, big_events: int, burst_requests: int,
    before_seconds: float, during_max_seconds: float, probe_interval: float,
    env: dict[str, str] | None = None, drain_timeout: float = 300, log=lambda *_: None,
) -> DrillReport:  # fmt: skip
    report = DrillReport(accounts=small_accounts + 1, big_people=big_people, big_events=big_events)
    with tempfile.TemporaryDirectory(prefix="ferry-maintenance-drill-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        second = second_url = None
        env = dict(env or {})
        if can_move():
            # The second PostgreSQL server an account moves to: an empty database.
            (folder / "second").mkdir()
            second = Cluster(folder / "second")
            second_url = second.create_database("drill")
            env["FERRY_DATA_SERVERS"] = f"second={second_url}"
        ferry = None
        senders: list[Sender] = []
        prober = meter = None
        try:
            url = cluster.create_database("drill")
            ferry = Ferry(folder, url, env)
            ferry.manage("migrate_schemas", "-v", "0")
            if "STATIC_ROOT" not in ferry.env:
                ferry.manage("collectstatic", "--noinput", "-v", "0")
            log("creating accounts")
            slugs = ["big"] + [f"small{n:02d}" for n in range(1, small_accounts + 1)]
            targets = create_accounts(ferry, slugs)
            big = targets[0]
            log("generating the big account")
            generate(url, big.schema, big_people, big_events)
            with psycopg.connect(url) as conn:
                conn.execute(f'SET search_path TO "{big.schema}"')
                report.old_events = conn.execute(
                    "SELECT count(*) FROM segments_event WHERE timestamp < now() - %s::interval",
                    [f"{RETENTION_DAYS} days 1 hour"],
                ).fetchone()[0]
            ferry.start_web(workers=3, preload=True)

            # Drain capacity: a burst spooled with the drain stopped, then drained by two.
            log("measuring drain capacity")
            # The workers start first and wait with every account paused, so that their start
            # does not count against the drain.
            accounts = ferry.account_ids()
            ferry.pause(accounts)
            ferry.start_drains(2)
            burst = Sender(ferry.port, targets, 0, "burst", limit=burst_requests)
            burst.start()
            burst.join()
            time.sleep(2)
            items = ferry.backlog()
            ferry.resume(accounts)
            started = time.monotonic()
            while ferry.backlog() and time.monotonic() - started < drain_timeout:
                time.sleep(0.05)
            report.capacity = items / (time.monotonic() - started)
            report.offered = report.capacity / 2
            senders.append(burst)

            # Steady ingest at half the capacity, split over threads that can keep the pace:
            # each sends one request at a time on its schedule, so a thread's pace caps at one
            # over the answer's latency. At 5 requests a second each, answers may take 200 ms
            # before the offered rate falls short: the rate measured is Ferry's, not the
            # senders' (at 15 a second each, a slower answer under load lowered the rate
            # offered, not only the rate accepted).
            rps = report.offered / EVENTS_PER_REQUEST
            threads = max(1, math.ceil(rps / 5))
            senders += [
                Sender(ferry.port, targets, rps / threads, f"steady{n}") for n in range(threads)
            ]
            prober = Prober(ferry.port, big.host, big.session, probe_interval)
            tasks: dict[str, subprocess.Popen] = {}  # retention and the move, once started
            meter = CpuMeter(
                [url] + ([second_url] if second_url else []),
                {
                    "web (gunicorn)": lambda: [ferry.web.pid],
                    "drain workers": lambda: [drain.pid for drain in ferry.drains],
                    "retention": lambda: [tasks["retention"].pid] if "retention" in tasks else [],
                    "move_account (pg_dump, pg_restore)": (
                        lambda: [tasks["move"].pid] if "move" in tasks else []
                    ),
                },
                own="load generator and prober (this process)",
            )
            meter.start()
            for thread in (*senders[1:], prober):
                thread.start()
            time.sleep(2)  # settle

            def measure(phase: Phase, until) -> None:
                acknowledged = sum(s.acknowledged_count for s in senders[1:])
                phase.backlog_start = phase.backlog_max = ferry.backlog()
                prober.phase = phase
                for sender in senders[1:]:
                    sender.phase = phase
                cpu, machine = meter.snapshot(), machine_counters()
                started = time.monotonic()
                while not until(time.monotonic() - started):
                    time.sleep(0.5)
                    phase.backlog_max = max(phase.backlog_max, ferry.backlog())
                phase.seconds = time.monotonic() - started
                phase.acknowledged = sum(s.acknowledged_count for s in senders[1:]) - acknowledged
                phase.backlog_end = ferry.backlog()
                prober.phase = None
                for sender in senders[1:]:
                    sender.phase = None
                phase.cpu = {
                    kind: used - cpu.get(kind, 0.0) for kind, used in meter.snapshot().items()
                }
                phase.machine = {
                    name: value - machine[name]
                    for name, value in machine_counters().items() if name in machine
                }  # fmt: skip

            log("phase before")
            before = report.phases["before"] = Phase("before")
            measure(before, lambda elapsed: elapsed >= before_seconds)

            log("phase during: retention")
            with psycopg.connect(url) as conn:
                conn.execute(
                    "INSERT INTO maintenance_retentionpolicy (account_id, events_days, updated_at, "
                    "updated_by) SELECT id, %s, now(), 'drill' FROM accounts_account "
                    "WHERE slug = 'big'",
                    [RETENTION_DAYS],
                )
                vacuumed_before = conn.execute(EVENTS_VACUUMED).fetchone()[0]

            retention = tasks["retention"] = ferry.popen("run_retention", "--account", "big")
            mover = start_move(ferry, targets[-1], report)
            if mover is not None:
                tasks["move"] = mover
            during = report.phases["during"] = Phase("during")
            measure(
                during,
                lambda elapsed: (retention.poll() is not None
                                 and (mover is None or mover.poll() is not None))
                or elapsed >= during_max_seconds,
            )  # fmt: skip
            report.retention_finished = retention.poll() == 0
            if retention.poll() is None:
                retention.terminate()
            _out, err = retention.communicate(timeout=60)
            if not report.retention_finished:
                report.refusals.append(f"retention exit {retention.returncode}: {err[-500:]}")
            if mover is not None:
                finish_move(mover, report)
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT sum(rows_done), sum(extract(epoch FROM finished_at - started_at)), "
                    "sum(paused_seconds) FROM maintenance_maintenancerun "
                    "WHERE kind = 'retention' AND account_label = 'big'"
                ).fetchone()
                vacuumed, options = conn.execute(EVENTS_VACUUMED).fetchone()
            report.retention_deleted = int(row[0] or 0)
            report.retention_seconds = float(row[1] or 0)
            report.retention_paused_seconds = float(row[2] or 0)
            report.events_vacuumed_by_retention = vacuumed - vacuumed_before
            report.events_autovacuum_on = "autovacuum_enabled=false" not in (options or [])

            log("draining")
            for sender in senders[1:]:
                sender.stopping.set()
            prober.stopping.set()
            for thread in (*senders[1:], prober):
                thread.join()
            started = time.monotonic()
            while ferry.backlog() and time.monotonic() - started < drain_timeout:
                time.sleep(0.1)
            report.drain_after_seconds = time.monotonic() - started
            report.backlog_left = ferry.backlog()
            count_events(url, second_url, targets, senders, report)
            report.refusals += [r for s in senders for r in s.refusals][:5] + prober.errors[:5]
        finally:
            for thread in senders:
                thread.stopping.set()
            if prober:
                prober.stopping.set()
            if meter:
                meter.stopping.set()
                meter.join()
            if ferry:
                ferry.stop()
            cluster.close()
            if second:
                second.close()
    return report


def can_move() -> bool:
    return bool(list(BASE_DIR.glob("*/management/commands/move_account.py")))


def start_move(ferry: Ferry, target: DrillAccount, report: DrillReport) -> subprocess.Popen | None:
    """move_account of one small account to the second server, when the command exists."""
    if not can_move():
        report.move = "missing: no move_account command on this branch"
        return None
    return ferry.popen("move_account", target.slug, "--to", "second", "--json")


def finish_move(mover: subprocess.Popen, report: DrillReport) -> None:
    out, err = mover.communicate(timeout=600)
    if mover.returncode != 0:
        report.move = f"failed: {err.strip()[-300:]}"
        return
    result = json.loads(out.strip().splitlines()[-1])
    report.move = (
        f"{result['account']} moved to {result['to']}: {result['rows']:,} rows verified, "
        f"its writes paused {result['write_pause_seconds']:.2f} s"
    )


def count_events(
    url: str, second_url: str | None, targets: list[DrillAccount], senders: list[Sender],
    report: DrillReport,
) -> None:  # fmt: skip
    with psycopg.connect(url) as conn:
        columns = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'accounts_account'"
        )}  # fmt: skip
        servers = dict(conn.execute("SELECT slug, server FROM accounts_account").fetchall()) if (
            "server" in columns
        ) else {}  # fmt: skip
    for target in targets:
        where = second_url if servers.get(target.slug) == "second" else url
        acknowledged = {key for s in senders for key in s.acknowledged[target.slug]}
        report.count(acknowledged, stored_event_keys(where, target.schema, "drilled"))
