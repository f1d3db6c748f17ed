"""The drain: from the spool into each account's schema.

A pass leases a large batch, groups it by account and applies each group in one transaction
(ingest/apply.py). Spool rows are released only after the commit. While PostgreSQL is down
the items stay leased-then-expired in the spool and the pass backs off; items that fail on
their own are found by applying the batch in halves and become dead letters, so they never
block the rest.
"""

import json
import logging
import socket
import time
from collections import defaultdict
from dataclasses import dataclass

import orjson
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


class DatabaseDown(Exception):
    pass


def drain_once(spool: Spool, batch_size: int, lease_seconds: float) -> PassResult:
    with collector_paused():
        return drain_claimed(spool, spool.claim(batch_size, lease_seconds))


def drain_claimed(spool: Spool, items: list[SpooledItem]) -> PassResult:
    result = PassResult(claimed=len(items))
    if not items:
        return result
    try:
        groups = group_by_account(items, result, spool)
        applied_counts: dict[str, int] = {}
        for account, group in groups.items():
            applied_counts[str(account.pk)] = apply_group(account, group, result, spool)
        spool.record_applied(applied_counts)
        spool.end_lease(items[0].account)
    except DatabaseDown:
        result.database_down = True
        # Let the lease lapse soon so that the items are retried once PostgreSQL is back.
        spool.retry_later(items[0].account, delay_seconds=1)
    finally:
        connection.set_schema_to_public()
    return result


def group_by_account(
    items: list[SpooledItem], result: PassResult, spool: Spool
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
    account: Account, group: list[SpooledItem], result: PassResult, spool: Spool
) -> int:
    payloads = [orjson.loads(item.payload) for item in group]
    applied = apply_in_halves(account, group, payloads, result, spool)
    result.applied += applied
    return applied


def apply_in_halves(
    account: Account,
    group: list[SpooledItem],
    payloads: list[dict],
    result: PassResult,
    spool: Spool,
) -> int:
    """Apply the items in one transaction; if that fails, each half on its own, and so on down
    to the single items that fail alone, which become dead letters.

    A bad item costs about 2 x log2(batch size) transactions instead of one per item, so even
    a batch of 50,000 is through well within its lease.
    """
    try:
        with account:
            outcome = apply_items(payloads)
    except (OperationalError, InterfaceError) as error:
        if not account.reachable():  # its own server, which need not be the primary
            raise DatabaseDown from error
        failure: Exception = error
    except (DatabaseError, ValueError, KeyError, TypeError) as error:
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
    spool: Spool, item: SpooledItem, account_id: int | None, reason: str, result: PassResult,
    release: bool = True,
) -> None:  # fmt: skip
    """Keep the item as a dead letter in the control plane, then forget it in the spool."""
    connection.set_schema_to_public()
    DeadLetter.objects.get_or_create(
        source=f"{NODE}:{item.id}",
        defaults={"account_id": account_id, "payload": json.loads(item.payload), "error": reason},
    )
    result.dead += 1
    if release:
        spool.release([item.id])


def drain_forever(spool: Spool, batch_size: int, lease_seconds: float, stop=lambda: False) -> None:
    backoff = 0.5
    while not stop():
        started = time.monotonic()
        try:
            result = drain_once(spool, batch_size, lease_seconds)
        except (OperationalError, InterfaceError):
            result = PassResult(database_down=True)
        if result.database_down:
            log.warning("PostgreSQL unreachable; %s items wait in the spool", spool.pending_count())
            connection.close()
            time.sleep(backoff)
            backoff = min(backoff * 2, 10)
            continue
        backoff = 0.5
        if result.claimed:
            elapsed = time.monotonic() - started
            log.info("applied %s items (%s dead) in %.2fs", result.applied, result.dead, elapsed)
        else:
            time.sleep(0.2)
