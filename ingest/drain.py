"""The drain: from the spool into each account's schema.

A pass leases a large batch, groups it by account and applies each group in one transaction
(ingest/apply.py). Spool rows are released only after the commit. While PostgreSQL is down
the items stay leased-then-expired in the spool and the pass backs off; items that fail on
their own are found by applying the batch in halves and become dead letters, so they never
block the rest.

Workers run passes back to back (`drain_batches`) with the spool's own work beside
PostgreSQL's: while a batch is applied, a helper thread claims and parses the next one and
then releases the one before. SQLite and PostgreSQL both work outside Python's lock, and the
machine has more than one core; done in turn, the spool's part was about a tenth of a pass.
Consecutive batches of one account are also overlapped with each other (`Overlap`): each is
read and planned on the worker's connection while the one before is written on another.
"""

import json
import logging
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from accounts.models import Account
from ingest.apply import (
    Batch,
    Outcome,
    PredecessorFailed,
    WriterConnection,
    another_writer_waits,
    apply_items,
    collector_paused,
    prepare,
    write_batch,
)  # fmt: skip
from ingest.credentials import UNVERIFIED, check_credential
from ingest.models import DeadLetter
from ingest.spool import Spool, SpooledItem
from messaging.events import OPS as MESSAGING_OPS

log = logging.getLogger(__name__)
NODE = socket.gethostname()


@dataclass
class PassResult:
    claimed: int = 0
    applied: int = 0
    dead: int = 0
    database_down: bool = False
    seconds: float = 0.0


class DatabaseDown(Exception):
    pass


# A worker closes its writer connection after this long without items (drain_forever).
WRITER_IDLE_SECONDS = 60

# What applying a batch raises when an item in it is bad (apply's own cursors and COPY raise
# psycopg's errors, Django's cursors Django's): the batch is applied again in halves.
BATCH_ERRORS = (DatabaseError, psycopg.Error, ValueError, KeyError, TypeError)


def drain_once(spool: Spool, batch_size: int, lease_seconds: float) -> PassResult:
    with collector_paused():
        return drain_claimed(spool, spool.claim(batch_size, lease_seconds))


def drain_claimed(
    spool: "Spool | SpoolBehind", items: list[SpooledItem], payloads: list[dict] | None = None
) -> PassResult:
    result = PassResult(claimed=len(items))
    if not items:
        return result
    started = time.monotonic()
    parsed = dict(zip((item.id for item in items), payloads, strict=True)) if payloads else {}
    try:
        groups = group_by_account(items, result, spool)
        applied_counts: dict[str, int] = {}
        for account, group in groups.items():
            applied_counts[str(account.pk)] = apply_group(account, group, result, spool, parsed)
        spool.record_applied(applied_counts)
        spool.end_lease(items[0].account, items[-1].id)
    except DatabaseDown:
        result.database_down = True
        # Let the lease lapse soon so that the items are retried once PostgreSQL is back.
        spool.retry_later(items[0].account, delay_seconds=1)
    finally:
        connection.set_schema_to_public()
        result.seconds = time.monotonic() - started
    return result


class SpoolBehind:
    """The spool writes of a pass (releases, apply counts, end of lease), done in order by
    the helper thread while the main thread goes on to the next batch. They follow the
    commit, so losing them to a crash only means applying the items again, harmlessly."""

    def __init__(self, spool: Spool, helper: ThreadPoolExecutor) -> None:
        self.spool, self.helper = spool, helper
        self.pending: list[Future] = []

    def _later(self, write: Callable, *args) -> None:
        self.pending.append(self.helper.submit(write, *args))

    def release(self, ids: list[int]) -> None:
        self._later(self.spool.release, ids)

    def record_applied(self, counts: dict[str, int]) -> None:
        self._later(self.spool.record_applied, counts)

    def end_lease(self, account: str, last_id: int | None = None) -> None:
        self._later(self.spool.end_lease, account, last_id)

    def retry_later(self, account: str, delay_seconds: float) -> None:
        self._later(self.spool.retry_later, account, delay_seconds)

    def settle(self, wait: bool = True) -> None:
        """A failed write fails the worker, as it would have done in turn: raise it. With
        wait=False, only the writes already done are looked at."""
        done = self.pending if wait else [f for f in self.pending if f.done()]
        self.pending = [f for f in self.pending if f not in done]
        for future in done:
            future.result()


def claim_parsed(
    spool: Spool, batch_size: int, lease_seconds: float, after: SpooledItem | None
) -> tuple[list[SpooledItem], list[dict]]:
    items = spool.claim(batch_size, lease_seconds, after=after)
    return items, [orjson.loads(item.payload) for item in items]


def drain_batches(
    spool: Spool, batch_size: int, lease_seconds: float, stop: Callable[[], bool] = lambda: False,
    overlap: "Overlap | None" = None,
) -> Iterator[PassResult]:  # fmt: skip
    """Passes back to back while the worker's account has the oldest items, until PostgreSQL
    is down or `stop()`: each batch's successor is claimed (in the helper thread) while the
    batch is applied, and its spool writes are done while the successor is applied. Batches
    of one account are overlapped (`Overlap`), unless the caller holds a transaction open:
    another connection would not see its rows, so they are applied one after another.

    A caller that drains again and again (drain_forever) passes its own `overlap`, whose
    writer connection then outlives the call; otherwise it is closed at the end."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool") as helper:
        behind = SpoolBehind(spool, helper)
        keep = overlap is not None
        if connection.in_atomic_block:
            overlap, keep = None, False
        elif overlap is None:
            overlap = Overlap()
        if overlap is not None:
            overlap.spool = behind
        items: list[SpooledItem] = []
        ended = down = False
        try:
            # The collector stays paused while batches are parsed and applied (in any thread:
            # it is one switch for the process), and runs while the caller has control.
            with collector_paused():
                items, payloads = claim_parsed(spool, batch_size, lease_seconds, None)
            while items:
                with collector_paused():
                    ahead = helper.submit(claim_parsed, spool, batch_size, lease_seconds, items[-1])
                    if overlap is None:
                        results = [drain_claimed(behind, items, payloads)]
                    else:
                        results = overlap.hand_over(items, payloads)
                    items, payloads = ahead.result()
                    if overlap is not None and (not items or stop()):
                        results += overlap.finish()
                behind.settle(wait=False)  # this batch's writes go on beside the next one
                yield from results
                down = any(result.database_down for result in results)
                if down or stop():
                    break
            ended = True
        finally:
            if overlap is not None:
                # After a pass that raised, or with PostgreSQL gone, the writer's goes too.
                overlap.end_pass(keep=keep and ended and not down)
            # Items claimed and not applied (read ahead, or a batch that raised; a read-ahead
            # is of the same account and its claim runs first): back to the spool for whoever
            # comes next.
            if items:
                behind.retry_later(items[0].account, delay_seconds=0 if stop() else 1)
            behind.settle()


@dataclass
class Planned:
    """An account's batch, read and planned on the worker's connection, to be written."""

    account: Account
    items: list[SpooledItem]
    payloads: list[dict]
    received_at: float
    batch: Batch
    outcome: Outcome
    started: float
    written: Future | None = None
    writer: WriterConnection | None = None
    # The write of the batch it was planned on top of, if that was still being written when
    # it was handed over: it writes its events meanwhile and the rest after that batch's
    # commit (_write). The future only, not the batch: a chain of batches would be kept.
    after: Future | None = None


class Overlap:
    """Consecutive batches of one account: each read and planned on the worker's connection
    while the one before is written and committed on a writer connection of its own
    (ingest.apply.WriterConnection), so that Python and PostgreSQL work at the same time.

    Batch N+1 is read while N is written (not committed) and given N's people as N leaves them
    (Batch.carry_over). It is handed at once to a second writer connection, where it inserts
    its events while N is still written, then waits for N's commit before it writes anything
    else, and rolls back if N failed (ingest.apply.write_batch): so each transaction still
    holds whole batches, committed in the spool's order, and N's spool rows are released only
    after N's commit. N+2 is read only after N's commit. The first writer holds the account's
    writer lock from before N+1's read to after its commit, and lets go as soon as another
    writer waits for it (an import, the dashboard's membership changes, a second worker whose
    lease lapsed) or the account's items run out.

    What is not overlapped, but applied on its own as before (`drain_claimed`): a batch whose
    account is not known yet (provisionally accepted credentials, a deleted account), a batch
    with messaging items (they change people and suppressions in SQL, where carry_over cannot
    see it, so the next batch must read after their commit), and a batch whose planning or
    writing failed (applied again in halves, down to its dead letters; the batch planned on
    top of it rolls back, and is applied on its own after it).
    """

    def __init__(self) -> None:
        self.spool: SpoolBehind | None = None  # the pass's (drain_batches sets it)
        # Batches alternate between the two; `writer` holds the writer lock.
        self.writer: WriterConnection | None = None
        self.second: WriterConnection | None = None
        self.writer_account: Account | None = None
        self.pending: Planned | None = None
        self.used = time.monotonic()

    def hand_over(self, items: list[SpooledItem], payloads: list[dict]) -> list[PassResult]:
        """Plan the batch and hand it to the writer; the results of the batches done
        meanwhile (the one before it, or this one if it was applied on its own)."""
        done: list[PassResult] = []
        started = time.monotonic()
        account = self._account(items, payloads)
        if account is None:
            return [*self.finish(), drain_claimed(self.spool, items, payloads)]
        if self.writer is not None and not same_place(self.writer_account, account):
            done += self.finish()
            self.close()
        previous = self.pending.batch if self.pending is not None else None
        try:
            with account:
                if self.writer is None:
                    self.writer = WriterConnection("drain-writer")
                    self.writer_account = account
                if self.second is None:
                    self.second = WriterConnection("drain-writer-2")
                if not self.writer.locked:
                    self.writer.lock()
                received_at = time.time()
                batch, outcome = prepare(payloads, received_at, previous)
                someone_waits = another_writer_waits()
        except BATCH_ERRORS:
            # Applied on its own, which finds out what failed (or that PostgreSQL is down).
            # The writer's connection may be what failed (a kept one that PostgreSQL closed
            # while idle): the next batch gets a new one.
            done += self.finish()
            self.close()
            return [*done, drain_claimed(self.spool, items, payloads)]
        planned = Planned(account, items, payloads, received_at, batch, outcome, started)
        planned.after = self.pending.written if self.pending is not None else None
        writer = self.writer
        if self.pending is not None and self.pending.writer is self.writer:
            writer = self.second
        planned.writer = writer
        planned.written = writer.submit(_write, planned)
        if planned.after is not None:
            result, written = self._settle()
            done.append(result)
            if not written:  # what this batch was planned on is void: it rolled back
                return [*done, drain_claimed(self.spool, items, payloads)]
        self.pending = planned
        if someone_waits:
            done += self.finish()
        return done

    def finish(self) -> list[PassResult]:
        """Wait for the batch in flight and let go of the writer lock."""
        done = []
        if self.pending is not None:
            result, _ = self._settle()
            done.append(result)
        self._let_go()
        return done

    def end_pass(self, keep: bool) -> None:
        """At the end of a pass (drain_batches): wait for the batch in flight (its spool rows
        are released if it committed; if not, they wait for their lease to lapse) and let go
        of the writer lock. With `keep`, the writer's connection stays open for the next
        pass: a worker fed a trickle of small bursts would otherwise open a connection (and
        a thread) for every burst."""
        try:
            planned, self.pending = self.pending, None
            if planned is not None and planned.written.exception() is None:
                if planned.written.result() is None:
                    self._committed(planned)
        finally:
            self.used = time.monotonic()
            if keep:
                self._let_go()  # even if the above raised: a kept writer never keeps the lock
            else:
                self.close()

    def close(self) -> None:
        """Close the writers' connections (which lets go of the lock), after end_pass; each
        first finishes what it was given."""
        writers = [w for w in (self.second, self.writer) if w is not None]
        self.writer = self.second = self.writer_account = None
        for writer in writers:
            writer.close()

    def close_if_idle(self, seconds: float) -> None:
        if self.writer is not None and time.monotonic() - self.used > seconds:
            self.close()

    def _let_go(self) -> None:
        """Release the writer lock; a connection that cannot is closed, which releases it."""
        if self.writer is None:
            return
        try:
            self.writer.unlock()
        except (DatabaseError, psycopg.Error):
            self.close()

    def _account(self, items: list[SpooledItem], payloads: list[dict]) -> Account | None:
        """The batch's account, if it can be overlapped."""
        if items[0].account == UNVERIFIED or any(p.get("op") in MESSAGING_OPS for p in payloads):
            return None
        if self.pending is not None and items[0].account == str(self.pending.account.pk):
            return self.pending.account
        try:
            connection.set_schema_to_public()
            return Account.objects.filter(pk=int(items[0].account)).first()
        except (OperationalError, InterfaceError):
            return None  # applied on its own, which finds PostgreSQL down

    def _settle(self) -> tuple[PassResult, bool]:
        """Wait for the batch in flight; its result, and whether its transaction committed.
        If it failed, the writer lets go of the lock and the batch is applied again on its
        own on this connection, in halves down to its dead letters."""
        planned, self.pending = self.pending, None
        failure = planned.written.result()
        if failure is not None:
            log.warning("a batch failed to write, applied again on its own: %s", failure)
            self.close()  # its connection may be what failed; the next batch gets a new one
            return drain_claimed(self.spool, planned.items, planned.payloads), False
        return self._committed(planned), True

    def _committed(self, planned: Planned) -> PassResult:
        """After the batch's commit: its dead letters, then its spool rows released."""
        result = PassResult(claimed=len(planned.items), applied=planned.outcome.applied)
        account_key = planned.items[0].account
        for index, reason in planned.outcome.failures:
            bury(self.spool, planned.items[index], planned.account.pk, reason, result,
                 release=False)  # fmt: skip
        self.spool.release([item.id for item in planned.items])
        self.spool.record_applied({account_key: planned.outcome.applied})
        self.spool.end_lease(account_key, planned.items[-1].id)
        result.seconds = time.monotonic() - planned.started
        return result


def same_place(writer_account: Account | None, account: Account) -> bool:
    """Whether a writer opened for `writer_account` writes where `account` is now: the same
    account, still in the same schema on the same server (a move changes both)."""
    return writer_account is not None and (
        (writer_account.pk, writer_account.server, writer_account.schema_name)
        == (account.pk, account.server, account.schema_name)
    )


def _write(planned: Planned) -> Exception | None:
    """On a writer's thread: write and commit a planned batch; the error if its transaction
    failed (nothing of it committed), PredecessorFailed if the batch it was planned on top of
    did. Apply's own cursors raise psycopg's errors."""
    before = planned.after

    def before_committed() -> bool:
        return before.result() is None

    try:
        with transaction.atomic():
            write_batch(planned.batch, planned.outcome, planned.payloads, planned.received_at,
                        before_committed if before is not None else None)  # fmt: skip
    except (*BATCH_ERRORS, PredecessorFailed) as error:
        return error
    return None


def group_by_account(
    items: list[SpooledItem], result: PassResult, spool: "Spool | SpoolBehind"
) -> dict[Account, list[SpooledItem]]:
    by_id: dict[str, list[SpooledItem]] = defaultdict(list)
    try:
        for item in items:
            account_id = item.account
            if account_id == UNVERIFIED:
                credential = json.loads(item.payload).get("credential") or {}
                account_id = check_credential(credential) if credential else None
                if account_id is None:
                    bury(spool, item, None, "the credential it was sent with is not valid", result)
                    continue
            by_id[account_id].append(item)
        accounts = Account.objects.in_bulk([int(key) for key in by_id])
    except (OperationalError, InterfaceError) as error:
        raise DatabaseDown from error
    groups = {}
    for account_id, group in by_id.items():
        account = accounts.get(int(account_id))
        if account is None:
            for item in group:
                bury(spool, item, int(account_id), "the account no longer exists", result)
        else:
            groups[account] = group
    return groups


def apply_group(
    account: Account,
    group: list[SpooledItem],
    result: PassResult,
    spool: "Spool | SpoolBehind",
    parsed: dict[int, dict],
) -> int:
    payloads = [parsed.get(item.id) or orjson.loads(item.payload) for item in group]
    applied = apply_in_halves(account, group, payloads, result, spool)
    result.applied += applied
    return applied


def apply_in_halves(
    account: Account,
    group: list[SpooledItem],
    payloads: list[dict],
    result: PassResult,
    spool: "Spool | SpoolBehind",
) -> int:
    """Apply the items in one transaction; if that fails, each half on its own, and so on down
    to the single items that fail alone, which become dead letters.

    A bad item costs about 2 x log2(batch size) transactions instead of one per item, so even
    a batch of 50,000 is through well within its lease.
    """
    try:
        with account:
            outcome = apply_items(payloads)
    except (
        OperationalError,
        InterfaceError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    ) as error:
        if not account.reachable():  # its own server, which need not be the primary
            raise DatabaseDown from error
        failure: Exception = error
    except BATCH_ERRORS as error:
        failure = error
    else:
        for index, reason in outcome.failures:
            bury(spool, group[index], account.pk, reason, result, release=False)
        spool.release([item.id for item in group])
        return outcome.applied
    if len(group) == 1:
        bury(spool, group[0], account.pk, f"{type(failure).__name__}: {failure}", result)
        return 0
    log.warning(
        "%s items for %s failed together; applying them in halves", len(group), account.slug,
        exc_info=failure,
    )  # fmt: skip
    middle = len(group) // 2
    return apply_in_halves(
        account, group[:middle], payloads[:middle], result, spool
    ) + apply_in_halves(account, group[middle:], payloads[middle:], result, spool)


def bury(
    spool: "Spool | SpoolBehind", item: SpooledItem, account_id: int | None, reason: str,
    result: PassResult, release: bool = True,
) -> None:  # fmt: skip
    """Keep the item as a dead letter in the control plane, then forget it in the spool."""
    connection.set_schema_to_public()
    payload = json.loads(item.payload)
    if "\\u0000" in item.payload:
        shown = without_nul(payload)  # PostgreSQL's JSON cannot hold it
        if shown != payload:
            payload = shown
            reason += " (NUL characters in the payload are shown as U+FFFD)"
    DeadLetter.objects.get_or_create(
        source=f"{NODE}:{item.id}",
        defaults={"account_id": account_id, "payload": payload, "error": reason},
    )
    result.dead += 1
    if release:
        spool.release([item.id])


def without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def drain_forever(spool: Spool, batch_size: int, lease_seconds: float, stop=lambda: False) -> None:
    overlap = Overlap()  # its writer connection is kept from one pass to the next
    backoff = 0.5
    try:
        while not stop():
            claimed, down = 0, False
            try:
                for result in drain_batches(spool, batch_size, lease_seconds, stop, overlap):
                    claimed += result.claimed
                    down = result.database_down
                    if result.claimed and not down:
                        log.info(
                            "applied %s items (%s dead) in %.2fs",
                            result.applied, result.dead, result.seconds,
                        )  # fmt: skip
            except (OperationalError, InterfaceError):
                down = True
            if down:
                log.warning(
                    "PostgreSQL unreachable; %s items wait in the spool", spool.pending_count()
                )
                connection.close()
                time.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            backoff = 0.5
            if not claimed:
                overlap.close_if_idle(WRITER_IDLE_SECONDS)
                time.sleep(0.2)
    finally:
        overlap.close()
