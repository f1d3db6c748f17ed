"""A warm pool of spare account schemas, so creating an account is one short transaction.

Building an account schema from the template script is hundreds of catalog writes (tables,
indexes, sequences, triggers), most of a second on a busy machine. The refill worker
(`manage.py refill_spares`, one of the run command's workers) builds spares ahead of time,
inside a maintenance governor slot; creating an account then claims one:

    SELECT ... FROM accounts_spareschema WHERE fingerprint = <code's> FOR UPDATE SKIP LOCKED
    ALTER SCHEMA spare_… RENAME TO acct_…;  DELETE the spare's row

in the transaction that inserts the Account row, so two creations never get the same spare
(SKIP LOCKED) and a failed creation leaves the spare in the pool (rollback).

Spares live on the primary (where new accounts live). They are not accounts: no Account or
Domain row names one, so no host reaches it, and nothing that walks accounts (drain, sweeps,
retention) sees it. The migration runner migrates them like accounts (accounts/migrating.py);
one the runner has not brought forward is never claimed (its fingerprint is not the code's)
and the refill discards it.
"""

import secrets
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

from accounts.models import SpareSchema, control_plane
from accounts.provisioning import SCHEMA_NAME, clone_template, current_script, fingerprint

SPARE_PREFIX = "spare_"


def generate_spare_name() -> str:
    return f"{SPARE_PREFIX}{secrets.token_hex(6)}"


def claim_spare(schema_name: str) -> bool:
    """Rename a current spare to `schema_name` in the caller's transaction; False if none.

    The spare's row stays locked until the caller commits (the spare is gone) or rolls back
    (the spare is back in the pool, untouched).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("claim_spare() belongs inside the account's transaction")
    if not SCHEMA_NAME.match(schema_name) or schema_name.startswith(SPARE_PREFIX):
        raise ValueError(f"{schema_name!r} is not an account schema name")
    with control_plane(), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id, schema_name FROM public.accounts_spareschema
            WHERE fingerprint = %s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
            """,
            [fingerprint()],
        )
        row = cursor.fetchone()
        if row is None:
            return False
        spare_id, spare = row
        cursor.execute(f'ALTER SCHEMA "{_checked(spare)}" RENAME TO "{schema_name}"')
        cursor.execute("DELETE FROM public.accounts_spareschema WHERE id = %s", [spare_id])
    return True


def ready_count() -> int:
    """Spares current with the code's migrations, ready to be claimed."""
    with control_plane():
        return SpareSchema.objects.filter(fingerprint=fingerprint()).count()


def build_spare(script: str) -> SpareSchema:
    """One spare from the template script, its schema and its row committed together."""
    with control_plane(), transaction.atomic():
        spare = SpareSchema.objects.create(
            schema_name=generate_spare_name(), fingerprint=fingerprint()
        )
        clone_template(spare.schema_name, script)
    return spare


def discard_stale() -> int:
    """Drop spares built for other migrations (blank ones are the runner's, being migrated)."""
    dropped = 0
    while True:
        with control_plane(), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT id, schema_name FROM public.accounts_spareschema
                WHERE fingerprint <> %s AND fingerprint <> '' LIMIT 1 FOR UPDATE SKIP LOCKED
                """,
                [fingerprint()],
            )
            row = cursor.fetchone()
            if row is None:
                return dropped
            cursor.execute(f'DROP SCHEMA IF EXISTS "{_checked(row[1])}" CASCADE')
            cursor.execute("DELETE FROM public.accounts_spareschema WHERE id = %s", [row[0]])
            dropped += 1


def refill(
    size: int | None = None,
    *,
    before_each: Callable[[], object] = lambda: None,
    after_each: Callable[[], object] = lambda: None,
) -> int:
    """Build spares until `size` (ACCOUNT_SPARE_POOL) are ready; returns how many were built.

    Does nothing while the template script lags the code's migrations (a deploy before
    `migrate_schemas`): spares built now would be stale at once. `before_each` and
    `after_each` are the governor's wait and pace when run by the worker.
    """
    size = settings.ACCOUNT_SPARE_POOL if size is None else size
    script = current_script()
    if script is None:
        return 0
    discard_stale()
    built = 0
    while ready_count() < size:
        before_each()
        build_spare(script)
        built += 1
        after_each()
    return built


def spare_schemas() -> list[str]:
    with control_plane():
        return list(SpareSchema.objects.values_list("schema_name", flat=True))


def _checked(schema: str) -> str:
    if not SCHEMA_NAME.match(schema) or not schema.startswith(SPARE_PREFIX):
        raise ValueError(f"unexpected spare schema name {schema!r}")
    return schema
