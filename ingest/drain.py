"""The drain: from the spool into each account's schema.

A pass leases a large batch, groups it by account and applies each group in one transaction
(ingest/apply.py). Spool rows are released only after the commit. While PostgreSQL is down
the items stay leased-then-expired in the spool and the pass backs off; items that fail on
their own are retried one by one and, failing again, become dead letters so they never block
the rest.
"""

import json
import logging
import socket
import time
from collections import defaultdict
from dataclasses import dataclass

import orjson
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection

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
    try:
        with account:
            outcome = apply_items(payloads)
    except (OperationalError, InterfaceError) as error:
        if account.reachable():  # its own server, which need not be the primary
            return apply_one_by_one(account, group, payloads, result, spool)
        raise DatabaseDown from error
    except (DatabaseError, IntegrityError, ValueError, KeyError, TypeError):
        log.warning("batch for %s failed; retrying item by item", account.slug, exc_info=True)
        return apply_one_by_one(account, group, payloads, result, spool)
    for index, reason in outcome.failures:
        bury(spool, group[index], account.pk, reason, result, release=False)
    spool.release([item.id for item in group])
    result.applied += outcome.applied
    return outcome.applied


def apply_one_by_one(
    account: Account,
    group: list[SpooledItem],
    payloads: list[dict],
    result: PassResult,
    spool: Spool,
) -> int:
    applied = 0
    for item, payload in zip(group, payloads, strict=True):
        try:
            with account:
                outcome = apply_items([payload])
        except (OperationalError, InterfaceError) as error:
            if not account.reachable():
                raise DatabaseDown from error
            bury(spool, item, account.pk, f"{type(error).__name__}: {error}", result)
            continue
        except (DatabaseError, ValueError, KeyError, TypeError) as error:
            bury(spool, item, account.pk, f"{type(error).__name__}: {error}", result)
            continue
        for _, reason in outcome.failures:
            bury(spool, item, account.pk, reason, result, release=False)
        spool.release([item.id])
        applied += outcome.applied
    result.applied += applied
    return applied


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
