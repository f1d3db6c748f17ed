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
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from accounts.models import Account
from ingest.apply import apply_items, collector_paused
from ingest.credentials import UNVERIFIED, check_credential
from ingest.models import DeadLetter
from ingest.spool import Spool, SpooledItem

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
    spool: Spool, batch_size: int, lease_seconds: float, stop: Callable[[], bool] = lambda: False
) -> Iterator[PassResult]:
    """Passes back to back while the worker's account has the oldest items, until PostgreSQL
    is down or `stop()`: each batch's successor is claimed (in the helper thread) while the
    batch is applied, and its spool writes are done while the successor is applied."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool") as helper:
        behind = SpoolBehind(spool, helper)
        items: list[SpooledItem] = []
        try:
            # The collector stays paused while batches are parsed and applied (in either
            # thread: it is one switch for the process), and runs while the caller has control.
            with collector_paused():
                items, payloads = claim_parsed(spool, batch_size, lease_seconds, None)
            while items:
                with collector_paused():
                    ahead = helper.submit(claim_parsed, spool, batch_size, lease_seconds, items[-1])
                    result = drain_claimed(behind, items, payloads)
                    items, payloads = ahead.result()
                behind.settle(wait=False)  # this batch's writes go on beside the next one
                yield result
                if result.database_down or stop():
                    break
        finally:
            # Items claimed and not applied (read ahead, or a batch that raised; a read-ahead
            # is of the same account and its claim runs first): back to the spool for whoever
            # comes next.
            if items:
                behind.retry_later(items[0].account, delay_seconds=0 if stop() else 1)
            behind.settle()


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
    if "\\u0000" in item.payload and without_nul(payload) != payload:
        payload = without_nul(payload)  # PostgreSQL's JSON cannot hold it
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
    backoff = 0.5
    while not stop():
        claimed, down = 0, False
        try:
            for result in drain_batches(spool, batch_size, lease_seconds, stop):
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
            log.warning("PostgreSQL unreachable; %s items wait in the spool", spool.pending_count())
            connection.close()
            time.sleep(backoff)
            backoff = min(backoff * 2, 10)
            continue
        backoff = 0.5
        if not claimed:
            time.sleep(0.2)
