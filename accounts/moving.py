"""Moving an account's schema to another data server.

    move_account(account, "big1")            # from Python (the 2015 drill calls this)
    manage.py move_account acme --to big1    # from a shell; staff start it from the console

1. The account's drain is paused (ingestion keeps accepting and spooling its items) and the
   account turns `moving`: its dashboard refuses writes with a 503 that says so, while reads
   keep working. In-flight drain batches are waited for (spool leases, then the account's
   advisory lock, which the drain's apply takes too).
2. `pg_dump -Fd -j N -n <schema>` from the old server, then `pg_restore -j N` on the new one
   (MOVE_COPY_JOBS, 2: tables and index builds in parallel).
3. Every table is verified on both sides: row count and a checksum of all rows' text.
4. Placement switches (Account.server), the old schema is renamed `<schema>_moved_<id>` so a
   straggler fails loudly instead of writing where nobody reads, and the drain resumes, now
   applying to the new server. The write pause (1 to 4) is measured and kept on the move.
5. The old copy stays until `manage.py cleanup_move <id>` drops it.

A failure before the switch drops the partial copy, resumes the drain and leaves the account
where it was; nothing acknowledged is lost either way, because the spool only forgets items
after they are committed in the account's schema.
"""

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import Account, AccountMove
from accounts.provisioning import pg_tool, server_url

LEASE_WAIT_SECONDS = 60
# Phases in which a move has changed something (drain paused, account moving, a partial copy).
STUCK_PHASES = [AccountMove.Phase.PAUSED, AccountMove.Phase.COPYING, AccountMove.Phase.VERIFYING]


class MoveError(Exception):
    pass


def start_move(account: Account, target: str, started_by: str = "") -> AccountMove:
    """Check that the move can start and record it (queued)."""
    if target not in settings.DATA_SERVERS:
        names = ", ".join(sorted(settings.DATA_SERVERS))
        raise MoveError(f"{target!r} is not a data server (known: {names})")
    if target == account.server:
        raise MoveError(f"{account.slug} already lives on {target}")
    if account.state != Account.State.ACTIVE:
        raise MoveError(f"{account.slug} is {account.get_state_display().lower()}")
    if any(move.is_running for move in account.moves.all()):
        raise MoveError(f"{account.slug} is already being moved")
    from ingest.models import ImportTask

    if ImportTask.objects.waiting().filter(account_id=account.pk).exists():
        raise MoveError(f"{account.slug} has a CSV import waiting or running; move it after")
    return AccountMove.objects.create(
        account=account, source=account.server, target=target, started_by=started_by
    )


def move_account(
    account: Account,
    target: str,
    *,
    started_by: str = "",
    move: AccountMove | None = None,
    progress: Callable[[AccountMove], None] | None = None,
) -> AccountMove:
    """Move `account` to the data server `target`; returns the finished (or failed) move.

    Running it again after a move's process died (a crash, `kill -9`) first recovers that
    move (see `recover_moves`), then moves again, or returns the recovered move if it had
    already switched to `target`.
    """
    from maintenance import governor

    connection.set_schema_to_public()
    with mover_lock(account):
        recovered = recover_moves(account, keep=move)
        account.refresh_from_db()
        if recovered and recovered[-1].phase == AccountMove.Phase.DONE and account.server == target:
            return recovered[-1]
        if move is None:
            # A move staff queued whose process never got here: run it now.
            move = account.moves.filter(phase=AccountMove.Phase.QUEUED, target=target).first()
        move = move or start_move(account, target, started_by)
        move.advance(AccountMove.Phase.QUEUED, "waiting for a maintenance slot")
        # One of the governor's slots (bounded across processes, one job per account), and
        # not while the drain is behind: the copy competes with live traffic for the servers.
        with governor.slot("move_account", account) as slot:
            slot.wait_if_behind()
            return _move(account, target, move, progress)


def abort_move(account: Account) -> list[AccountMove]:
    """Recover the account's interrupted moves and drop any still queued; returns them."""
    connection.set_schema_to_public()
    with mover_lock(account):
        recovered = recover_moves(account)
        for queued in account.moves.filter(phase=AccountMove.Phase.QUEUED):
            queued.advance(AccountMove.Phase.FAILED, "aborted before it started",
                           error="aborted", finished_at=timezone.now())  # fmt: skip
            recovered.append(queued)
    return recovered


def recover_abandoned(account: Account) -> list[AccountMove]:
    """Recover the account's moves whose process died (MoveError if one is still alive)."""
    if not account.moves.filter(phase__in=STUCK_PHASES).exists():
        return []
    with mover_lock(account):
        return recover_moves(account)


@contextmanager
def mover_lock(account: Account) -> Iterator[None]:
    """Held by the one process moving (or recovering) this account, for as long as it runs.

    A session advisory lock on the primary: PostgreSQL releases it when that process's
    connection ends, however the process ended, so "the lock is free" means "nobody is
    working on a move of this account", on any host, with no heartbeat to go stale.
    """
    with psycopg.connect(server_url("default"), autocommit=True) as conn:
        got = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('ferry.move'), %s)", [account.pk]
        ).fetchone()[0]
        if not got:
            raise MoveError(f"{account.slug} is being moved by a running process")
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('ferry.move'), %s)", [account.pk])


def recover_moves(account: Account, keep: AccountMove | None = None) -> list[AccountMove]:
    """Finish or roll back the moves whose process died; call it holding `mover_lock`.

    A move that had not switched placement is rolled back: the source schema gets its name
    back if the switch had begun renaming it, the target's partial copy is dropped, the
    account turns active where it was and its drain resumes. One that had switched (the
    account row names the target) is finished: drain resumed, old copy kept for cleanup.
    """
    recovered = []
    stuck = account.moves.filter(phase__in=STUCK_PHASES).exclude(pk=keep.pk if keep else None)
    for move in stuck:
        current = Account.objects.get(pk=account.pk)
        if current.server == move.target:
            _finish_interrupted(current, move)
        else:
            _roll_back_interrupted(current, move)
        shutil.rmtree(_archive_folder(move), ignore_errors=True)
        recovered.append(move)
    account.refresh_from_db()
    return recovered


def _roll_back_interrupted(account: Account, move: AccountMove) -> None:
    from ingest.spool import get_spool

    schema, renamed = account.schema_name, f"{account.schema_name}_moved_{move.pk}"[:63]
    with psycopg.connect(server_url(move.source), autocommit=True) as conn:
        names = {
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [[schema, renamed]]
            )
        }
        if schema not in names and renamed in names:
            conn.execute(f'ALTER SCHEMA "{renamed}" RENAME TO "{schema}"')
    _drop_partial_copy(move.target, schema, raise_errors=True)
    Account.objects.filter(pk=account.pk, state=Account.State.MOVING).update(
        state=Account.State.ACTIVE
    )
    get_spool().resume(str(account.pk))
    move.advance(AccountMove.Phase.FAILED,
                 f"interrupted while {move.get_phase_display().lower()}; rolled back, "
                 f"the account stays on {move.source}",
                 error="the moving process died; recovered by a later run",
                 finished_at=timezone.now())  # fmt: skip


def _finish_interrupted(account: Account, move: AccountMove) -> None:
    from ingest.spool import get_spool

    renamed = f"{account.schema_name}_moved_{move.pk}"[:63]
    with psycopg.connect(server_url(move.source), autocommit=True) as conn:
        kept = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [renamed]).fetchone()
    Account.objects.filter(pk=account.pk, state=Account.State.MOVING).update(
        state=Account.State.ACTIVE
    )
    get_spool().resume(str(account.pk))
    move.advance(AccountMove.Phase.DONE,
                 "switched before its process died; finished by a later run",
                 old_schema=renamed if kept else "", finished_at=timezone.now())  # fmt: skip


def _move(account: Account, target: str, move: AccountMove, progress) -> AccountMove:
    from ingest.spool import get_spool

    schema, source = account.schema_name, account.server
    report = progress or (lambda _move: None)
    spool = get_spool()
    paused_at = time.monotonic()
    spool.pause(str(account.pk))
    Account.objects.filter(pk=account.pk).update(state=Account.State.MOVING)
    move.advance(AccountMove.Phase.PAUSED, "waiting for in-flight drain batches",
                 started_at=timezone.now())  # fmt: skip
    report(move)
    switched = False
    try:
        _wait_for_leases(spool, str(account.pk))
        with psycopg.connect(server_url(source), autocommit=True) as held:
            # Taken by the drain's apply too: once we hold it, no batch is half-written.
            held.execute("SELECT pg_advisory_lock(hashtext(%s))", [schema])
            _prepare_target(target, schema)
            move.advance(AccountMove.Phase.COPYING, "pg_dump | pg_restore",
                         tables=_table_count(held, schema))  # fmt: skip
            report(move)
            _copy_schema(source, target, schema, move, report)
            move.advance(AccountMove.Phase.VERIFYING, "row counts and checksums")
            report(move)
            rows = verify_copy(source, target, schema)
            old_schema = f"{schema}_moved_{move.pk}"[:63]
            held.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{old_schema}"')
            Account.objects.filter(pk=account.pk).update(server=target, state=Account.State.ACTIVE)
            switched = True
            held.execute("SELECT pg_advisory_unlock(hashtext(%s))", [schema])
        spool.resume(str(account.pk))
        pause = time.monotonic() - paused_at
        move.advance(AccountMove.Phase.DONE, f"{rows:,} rows verified", rows=rows,
                     write_pause_seconds=pause, old_schema=old_schema,
                     finished_at=timezone.now())  # fmt: skip
        account.server, account.state = target, Account.State.ACTIVE
    except BaseException as error:
        if not switched:
            _drop_partial_copy(target, schema)
            Account.objects.filter(pk=account.pk).update(state=Account.State.ACTIVE)
        spool.resume(str(account.pk))
        move.advance(AccountMove.Phase.FAILED, "failed; the account stays where it was",
                     error=f"{type(error).__name__}: {error}"[:2000],
                     write_pause_seconds=time.monotonic() - paused_at,
                     finished_at=timezone.now())  # fmt: skip
        if not isinstance(error, Exception):
            raise
    report(move)
    return move


def cleanup_move(move: AccountMove) -> None:
    """Drop the old copy a finished move kept."""
    if move.phase != AccountMove.Phase.DONE or not move.old_schema:
        raise MoveError(f"move {move.pk} is {move.get_phase_display().lower()}; nothing to drop")
    with psycopg.connect(server_url(move.source), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{move.old_schema}" CASCADE')
    move.advance(AccountMove.Phase.CLEANED, f"old copy {move.old_schema} dropped")


def verify_copy(source: str, target: str, schema: str) -> int:
    """Compare every table's row count and checksum on both servers; returns rows."""
    results: dict[str, dict] = {}

    def measure(server: str) -> None:
        with psycopg.connect(server_url(server), autocommit=True) as conn:
            results[server] = table_checksums(conn, schema)

    threads = [threading.Thread(target=measure, args=(server,)) for server in (source, target)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if source not in results or target not in results:
        raise MoveError("could not read both copies for verification")
    before, after = results[source], results[target]
    if set(before) != set(after):
        raise MoveError(f"tables differ: {sorted(set(before) ^ set(after))}")
    for table, expected in before.items():
        if after[table] != expected:
            raise MoveError(
                f"{table}: {expected[0]} rows (checksum {expected[1]}) on {source}, "
                f"{after[table][0]} rows (checksum {after[table][1]}) on {target}"
            )
    return sum(count for count, _ in before.values())


def table_checksums(conn: psycopg.Connection, schema: str) -> dict[str, tuple[int, int]]:
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema]
        )
    ]
    found = {}
    for table in tables:
        count, checksum = conn.execute(
            f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) "
            f'FROM "{schema}"."{table}" AS t'
        ).fetchone()
        found[table] = (int(count), int(checksum))
    return found


def _wait_for_leases(spool, account_key: str) -> None:
    deadline = time.monotonic() + max(LEASE_WAIT_SECONDS, settings.INGEST_LEASE_SECONDS + 5)
    while time.monotonic() < deadline:
        if account_key not in spool.leased_accounts():
            return
        time.sleep(0.05)
    raise MoveError("a drain batch of this account stayed leased; try again")


def _prepare_target(target: str, schema: str) -> None:
    with psycopg.connect(server_url(target), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
        if exists:
            # Nobody lives there (the account is elsewhere): a failed attempt's leftovers.
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _drop_partial_copy(target: str, schema: str, raise_errors: bool = False) -> None:
    try:
        with psycopg.connect(server_url(target), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.Error:
        if raise_errors:
            raise


def _table_count(conn: psycopg.Connection, schema: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [schema]
    ).fetchone()[0]


def _copy_schema(source: str, target: str, schema: str, move: AccountMove, report) -> None:
    """pg_dump in directory format with parallel jobs, then pg_restore with as many.

    A directory archive is what lets pg_restore run jobs in parallel: several tables' data
    at once, then the indexes (most of a big account's restore time) built side by side.
    """
    jobs = str(max(1, settings.MOVE_COPY_JOBS))
    scratch = _archive_folder(move)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        archive = str(scratch)
        dump = subprocess.run(
            [pg_tool("pg_dump"), "-Fd", "-Z0", "--jobs", jobs, "--no-owner", "--no-privileges",
             "--schema", schema, "--file", archive, "--dbname", server_url(source)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        if dump.returncode:
            raise MoveError(f"copy failed: pg_dump {dump.returncode}: {dump.stderr[-500:]}")
        move.advance(AccountMove.Phase.COPYING, "dumped; pg_restore")
        report(move)
        restore = subprocess.Popen(
            [pg_tool("pg_restore"), "--verbose", "--jobs", jobs, "--no-owner",
             "--no-privileges", "--exit-on-error", "--dbname", server_url(target), archive],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        errors = []
        done = 0
        for line in restore.stderr:
            if "processing data for table" in line:
                done += 1
                move.advance(AccountMove.Phase.COPYING, line.strip()[-200:], tables_done=done)
                report(move)
            elif "error" in line.lower():
                errors.append(line.strip())
        restore.wait()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if restore.returncode:
        raise MoveError(f"copy failed: pg_restore {restore.returncode}: " + " ".join(errors[-3:]))


def _archive_folder(move: AccountMove) -> Path:
    # Known by the move's id, so a recovery removes what a killed move left on disk.
    return Path(settings.VAR_DIR) / "moves" / str(move.pk)


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the moving process dies (Linux), so a killed move
    leaves no pg_restore writing into the target behind the recovery's back."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_in_background(move: AccountMove) -> None:
    """Run a queued move in its own process, so it outlives the staff request that started
    it; the process sees the same servers, spool and database as this one."""
    import os
    import sys

    from accounts.provisioning import BASE_DIR

    servers = ",".join(
        f"{name}={server_url(name)}" for name in settings.DATA_SERVERS if name != "default"
    )
    env = {
        **os.environ,
        "DATABASE_URL": server_url("default"),
        "FERRY_DATA_SERVERS": servers,
        "INGEST_SPOOL_PATH": str(settings.INGEST_SPOOL_PATH),
    }
    subprocess.Popen(
        [sys.executable, "manage.py", "move_account", move.account.slug, "--to", move.target,
         "--move-id", str(move.pk), "--verbosity", "0"],
        cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
