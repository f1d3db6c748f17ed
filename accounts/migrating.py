"""Migrating every account schema: skip the current ones, replay the rest in bounded parallel.

1. One query per data server finds the schemas whose `django_migrations` lacks one of the
   migration graph's leaves; the others are current and are not touched at all.
2. Stale schemas are grouped by what they miss. For each group the migrations' SQL is
   generated once (Django's `collect_sql`, as `sqlmigrate` does) and replayed in every schema
   of the group, one transaction per migration with a short `lock_timeout` (retried), so a
   migration never queues behind a long query and blocks the account's traffic behind it.
   Migrations that cannot be written as SQL (RunPython) or that add or remove models (content
   types must follow) run through Django's own executor in each schema instead.
3. `parallel` worker threads, each with its own connection, take schemas one at a time,
   throttled (at most `max_per_second`, and the maintenance governor when it is installed).
   A failure stops the run: running schemas finish, no new ones start, and the report names
   the schema, the migration and the error. Each migration commits with its row in the
   schema's `django_migrations`, so running again resumes where it stopped.
"""

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import OperationalError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import CreateModel, DeleteModel, RenameModel

from accounts.models import Account, SpareSchema
from accounts.provisioning import TEMPLATE_SCHEMA, fingerprint, migrate_options, migration_leaves

try:  # the maintenance governor (yield to ingestion and dashboards), when installed
    from maintenance import governor
except ImportError:  # pragma: no cover - before the maintenance app lands
    governor = None

LOCK_TIMEOUT = "2s"
LOCK_RETRIES = 10


@dataclass(frozen=True)
class Target:
    schema: str
    server: str
    label: str


@dataclass
class MigrationStep:
    app: str
    name: str
    atomic: bool
    statements: list[str] | None  # None: run through Django's executor


@dataclass
class RunReport:
    total: int = 0
    current: int = 0
    migrated: int = 0
    seconds: float = 0.0
    failed: Target | None = None
    failed_migration: str = ""
    error: str = ""
    groups: int = 0

    @property
    def ok(self) -> bool:
        return self.failed is None


def account_targets() -> list[Target]:
    connection.set_schema_to_public()
    rows = Account.objects.exclude(state=Account.State.PROVISIONING).values_list(
        "schema_name", "server", "slug"
    )
    return [Target(schema, server, slug) for schema, server, slug in rows]


def spare_targets() -> list[Target]:
    """The pool's spare schemas that lag the code's migrations (accounts/pool.py).

    A spare with the code's fingerprint was built from the current template (or marked after
    this runner migrated it) and is left alone. The others get a blank fingerprint first, so
    no creation claims one half-migrated and the refill does not discard it; the UPDATE waits
    for claims already in flight.
    """
    connection.set_schema_to_public()
    with transaction.atomic():
        SpareSchema.objects.exclude(fingerprint=fingerprint()).update(fingerprint="")
    names = SpareSchema.objects.filter(fingerprint="").values_list("schema_name", flat=True)
    return [Target(name, "default", "spare") for name in names]


def mark_spares_current(targets: list[Target]) -> None:
    connection.set_schema_to_public()
    spares = [target.schema for target in targets if target.label == "spare"]
    SpareSchema.objects.filter(schema_name__in=spares).update(fingerprint=fingerprint())


def stale_schemas(targets: list[Target], leaves: frozenset[tuple[str, str]]) -> list[Target]:
    """The targets whose django_migrations lacks a leaf: one query per server."""
    stale: list[Target] = []
    by_server: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        by_server[target.server].append(target)
    values = ", ".join(["(%s, %s)"] * len(leaves))
    params = [part for leaf in sorted(leaves) for part in leaf]
    for server, group in by_server.items():
        _use(server, "public")
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
                WHERE c.relname = 'django_migrations' AND n.nspname = ANY(%s)
                """,
                [[target.schema for target in group]],
            )
            with_table = {row[0] for row in cursor.fetchall()}
            stale += [target for target in group if target.schema not in with_table]
            checked = [target for target in group if target.schema in with_table]
            found: set[str] = set()
            for start in range(0, len(checked), 2000):
                chunk = checked[start : start + 2000]
                parts = [
                    f"""SELECT {_literal(t.schema)} WHERE EXISTS (SELECT 1 FROM leaves l
                    WHERE NOT EXISTS (SELECT 1 FROM "{t.schema}".django_migrations m
                    WHERE m.app = l.app AND m.name = l.name))"""
                    for t in chunk
                ]
                cursor.execute(
                    f"WITH leaves(app, name) AS (VALUES {values}) " + " UNION ALL ".join(parts),
                    params,
                )
                found |= {row[0] for row in cursor.fetchall()}
            stale += [target for target in checked if target.schema in found]
    connection.set_schema_to_public()
    return stale


def applied_by_schema(targets: list[Target]) -> dict[Target, frozenset[tuple[str, str]]]:
    applied: dict[Target, frozenset[tuple[str, str]]] = {}
    by_server: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        by_server[target.server].append(target)
    for server, group in by_server.items():
        _use(server, "public")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
                "WHERE c.relname = 'django_migrations' AND n.nspname = ANY(%s)",
                [[target.schema for target in group]],
            )
            with_table = {row[0] for row in cursor.fetchall()}
            rows: dict[str, set] = defaultdict(set)
            present = [t for t in group if t.schema in with_table]
            for start in range(0, len(present), 500):
                chunk = present[start : start + 500]
                cursor.execute(
                    " UNION ALL ".join(
                        f'SELECT {_literal(t.schema)}, app, name FROM "{t.schema}".django_migrations'
                        for t in chunk
                    )
                )
                for schema, app, name in cursor.fetchall():
                    rows[schema].add((app, name))
        for target in group:
            applied[target] = frozenset(rows.get(target.schema, ()))
    connection.set_schema_to_public()
    return applied


def plan_for(loader: MigrationLoader, applied: frozenset[tuple[str, str]]) -> tuple:
    plan: list[tuple[str, str]] = []
    seen = set(applied)
    for leaf in sorted(loader.graph.leaf_nodes()):
        for node in loader.graph.forwards_plan(leaf):
            if node not in seen:
                seen.add(node)
                plan.append(node)
    return tuple(plan)


def steps_for(plan: tuple, sample: Target, loader: MigrationLoader) -> list[MigrationStep]:
    """The SQL of each migration in `plan`, generated once on `sample`'s schema."""
    _use(sample.server, sample.schema)
    executor = MigrationExecutor(connection)
    steps: list[MigrationStep] = []
    state = None
    for key in plan:
        migration = loader.graph.nodes[key]
        if not _replayable(migration):
            return [MigrationStep(app, name, True, None) for app, name in plan]
        if state is None:
            state = executor.loader.project_state(key, at_end=False)
        with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
            state = migration.apply(state, editor, collect_sql=True)
        statements = [sql for sql in editor.collected_sql if not sql.startswith("--")]
        steps.append(MigrationStep(key[0], key[1], migration.atomic, statements))
    connection.set_schema_to_public()
    return steps


def _replayable(migration) -> bool:
    return all(
        operation.reduces_to_sql
        and not isinstance(operation, CreateModel | DeleteModel | RenameModel)
        for operation in migration.operations
    )


def migrate_accounts(
    targets: list[Target] | None = None,
    *,
    parallel: int = 4,
    max_per_second: float = 0.0,
    progress: Callable[[int, int, float], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    on_pause: Callable[[str], None] | None = None,
) -> RunReport:
    """Bring every account schema (and the template) up to the code's migrations."""
    started = time.monotonic()
    leaves = migration_leaves()
    if targets is None:
        targets = account_targets()
        targets.append(Target(TEMPLATE_SCHEMA, "default", "template"))
        targets = [t for t in targets if t.schema != TEMPLATE_SCHEMA or _exists(t)]
        targets += spare_targets()
    report = RunReport(total=len(targets))
    stale = stale_schemas(targets, leaves)
    report.current = report.total - len(stale)
    if not stale:
        mark_spares_current(targets)
        report.seconds = time.monotonic() - started
        return report

    loader = MigrationLoader(None, ignore_no_migrations=True)
    applied = applied_by_schema(stale)
    groups: dict[tuple, list[Target]] = defaultdict(list)
    for target in stale:
        groups[plan_for(loader, applied[target])].append(target)
    report.groups = len(groups)
    work: list[tuple[Target, list[MigrationStep]]] = []
    for plan, members in groups.items():
        steps = steps_for(plan, members[0], loader) if plan else []
        work += [(member, steps) for member in members]

    lock = threading.Lock()
    failed = threading.Event()
    pacer = _Pacer(max_per_second)

    def run_one(item: tuple[Target, list[MigrationStep]]) -> None:
        target, steps = item
        if failed.is_set() or stop():
            return
        pacer.wait()
        if governor is not None:
            try:
                # Ingestion first: no schema starts while the drain is behind.
                governor.wait_if_behind(stop=lambda: failed.is_set() or stop(), on_pause=on_pause)
            except governor.Stopped:
                return
        step = None
        try:
            for step in steps:
                _apply_step(target, step)
            if not steps:
                _run_with_django(target)  # recorded leaves missing but nothing to run
        except Exception as error:
            with lock:
                if report.failed is None:
                    report.failed = target
                    report.failed_migration = f"{step.app}.{step.name}" if step else ""
                    report.error = f"{type(error).__name__}: {error}".strip()
            failed.set()
            return
        finally:
            connection.set_schema_to_public()
        with lock:
            report.migrated += 1
            if progress:
                progress(report.migrated, len(work), time.monotonic() - started)

    def worker(items: list) -> None:
        try:
            for item in items:
                run_one(item)
        finally:
            connection.close()

    lanes = max(1, min(parallel, len(work)))
    queue = iter(work)
    queue_lock = threading.Lock()

    def next_items():
        while True:
            with queue_lock:
                item = next(queue, None)
            if item is None:
                return
            yield item

    with ThreadPoolExecutor(lanes) as pool:
        for future in [pool.submit(worker, next_items()) for _ in range(lanes)]:
            future.result()
    if report.ok and report.migrated == len(work):
        mark_spares_current(targets)
    report.seconds = time.monotonic() - started
    return report


def _apply_step(target: Target, step: MigrationStep) -> None:
    if step.statements is None:
        _run_with_django(target)
        return
    _use(target.server, target.schema)
    for attempt in range(LOCK_RETRIES):
        try:
            if step.atomic:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    _execute_step(cursor, step)
            else:
                with connection.cursor() as cursor:
                    _execute_step(cursor, step)
            return
        except OperationalError as error:
            if "lock timeout" not in str(error) or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _execute_step(cursor, step: MigrationStep) -> None:
    for statement in step.statements:
        cursor.execute(statement)
    cursor.execute(
        "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())",
        [step.app, step.name],
    )


def _run_with_django(target: Target) -> None:
    """Django's own migrate in one schema, for what cannot be replayed as SQL."""
    from django_tenants.migration_executors.base import run_migrations

    _use(target.server, "public")
    run_migrations([], migrate_options(), "ferry", target.schema, allow_atomic=False)


def _use(server: str, schema: str) -> None:
    connection.use_server(server)
    if schema == "public":
        connection.set_schema("public")
    else:
        connection.set_schema(schema, include_public=False)


def _exists(target: Target) -> bool:
    from django_tenants.utils import schema_exists

    return schema_exists(target.schema)


def _literal(schema: str) -> str:
    # Schema names are generated (^[a-z][a-z0-9_]*$) and checked again here.
    if not schema.replace("_", "").isalnum() or not schema.islower():
        raise ValueError(f"unexpected schema name {schema!r}")
    return f"'{schema}'"


@dataclass
class _Pacer:
    per_second: float
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> None:
        if self.per_second <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1 / self.per_second
        time.sleep(max(0.0, start - now))


def progress_bar(stream=sys.stderr) -> Callable[[int, int, float], None]:
    def show(done: int, total: int, elapsed: float) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        rate = done / elapsed if elapsed else 0.0
        eta = (total - done) / rate if rate else 0.0
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if done == total else ""
        stream.write(f"\r[{bar}] {done}/{total} schemas  {rate:.1f}/s  ETA {eta:.0f}s{end}")
        stream.flush()

    return show
