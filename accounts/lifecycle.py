"""One account's backup (export and import of its schema alone) and its deletion.

Export: `pg_dump` of the account's schema as plain SQL, gzipped, after a first line that says
what it is (`-- ferry-account-export {json}`: slug, name, schema, migration fingerprint).
Control-plane rows (API keys, domains, dead letters) are not part of it: an imported account
gets new credentials.

Import: a new account (new slug, new generated schema) on the chosen server; the dump's schema
name is rewritten outside the COPY data (so customer data that happens to contain it stays as
it was), run by `psql` in a single transaction, then migrated forward if it was exported by
older code.

Deletion: staff confirm by typing the slug; the account turns `deleting` (its dashboard
answers 410 with the date) and its schema is dropped only once `delete_after` has passed
(`ACCOUNT_DELETION_GRACE_DAYS`, 7 by default), by `manage.py delete_account --purge-due`.
Until then staff can cancel and nothing is lost.
"""

import gzip
import json
import subprocess
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, AccountMove, Domain, generate_schema_name
from accounts.provisioning import fingerprint, pg_tool, server_url

EXPORT_MARK = "-- ferry-account-export "


class LifecycleError(Exception):
    pass


def export_chunks(account: Account) -> Iterator[bytes]:
    """The gzipped export of one account, streamed as pg_dump writes it."""
    header = {
        "slug": account.slug,
        "name": account.name,
        "schema": account.schema_name,
        "fingerprint": fingerprint(),
        "exported_at": timezone.now().isoformat(),
    }
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip stream
    yield compressor.compress((EXPORT_MARK + json.dumps(header) + "\n").encode())
    dump = subprocess.Popen(
        [pg_tool("pg_dump"), "--schema", account.schema_name, "--no-owner",
         "--no-privileges", "--dbname", server_url(account.server)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    for block in iter(lambda: dump.stdout.read(1 << 16), b""):
        yield compressor.compress(block)
    errors = dump.stderr.read().decode(errors="replace")
    if dump.wait():
        raise LifecycleError(f"pg_dump failed: {errors.strip()[-500:]}")
    yield compressor.flush()


def export_account(account: Account, path: Path) -> int:
    """Write the export to `path`; returns its size in bytes."""
    size = 0
    with open(path, "wb") as out:
        for chunk in export_chunks(account):
            out.write(chunk)
            size += len(chunk)
    return size


def read_header(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as dump:
        first = dump.readline()
    if not first.startswith(EXPORT_MARK):
        raise LifecycleError(f"{path} is not a Ferry account export")
    return json.loads(first[len(EXPORT_MARK) :])


def import_account(path: Path, *, slug: str, name: str, server: str = "default") -> Account:
    """A new account holding the exported schema's data."""
    from accounts.migrating import Target, migrate_accounts

    header = read_header(path)
    if server != "default" and server not in settings.DATA_SERVERS:
        raise LifecycleError(f"{server!r} is not a data server")
    connection.set_schema_to_public()
    with transaction.atomic():
        account = Account(
            slug=slug, name=name, schema_name=generate_schema_name(), server=server,
            state=Account.State.PROVISIONING,
        )  # fmt: skip
        account.save(verbosity=0)
        Domain.objects.create(domain=account.host, tenant=account, is_primary=True)
    try:
        _restore(path, header["schema"], account.schema_name, server)
        if header.get("fingerprint") != fingerprint():
            report = migrate_accounts([Target(account.schema_name, server, slug)], parallel=1)
            if not report.ok:
                raise LifecycleError(f"migrating the imported schema failed: {report.error}")
    except BaseException:
        with psycopg.connect(server_url(server), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{account.schema_name}" CASCADE')
        Account.objects.filter(pk=account.pk).delete()
        raise
    Account.objects.filter(pk=account.pk).update(state=Account.State.ACTIVE)
    account.state = Account.State.ACTIVE
    return account


def _restore(path: Path, old: str, new: str, server: str) -> None:
    psql = subprocess.Popen(
        [pg_tool("psql"), "--quiet", "--no-psqlrc", "--single-transaction",
         "--set", "ON_ERROR_STOP=1", "--dbname", server_url(server)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        with gzip.open(path, "rt", encoding="utf-8") as dump:
            _write_renamed(dump, psql.stdin, old, new)
        psql.stdin.close()
    except BrokenPipeError:
        pass
    errors = psql.stderr.read().decode(errors="replace")
    if psql.wait():
        raise LifecycleError(f"restoring failed: {errors.strip()[-500:]}")


def _write_renamed(dump: IO[str], out: IO[bytes], old: str, new: str) -> None:
    in_data = False
    for line in dump:
        if in_data:
            in_data = line != "\\.\n"
        elif line.startswith(EXPORT_MARK):
            continue
        else:
            line = line.replace(f"{old}.", f"{new}.").replace(f"SCHEMA {old};", f"SCHEMA {new};")
            in_data = line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;")
        out.write(line.encode())


def schedule_deletion(account: Account, confirmation: str) -> Account:
    if confirmation.strip() != account.slug:
        raise LifecycleError(f"Type the account's slug ({account.slug}) to confirm.")
    if account.state != Account.State.ACTIVE:
        raise LifecycleError(f"{account.slug} is {account.get_state_display().lower()}")
    account.state = Account.State.DELETING
    account.delete_after = timezone.now() + timedelta(days=settings.ACCOUNT_DELETION_GRACE_DAYS)
    account.save(update_fields=["state", "delete_after"])
    return account


def cancel_deletion(account: Account) -> Account:
    if account.state != Account.State.DELETING:
        raise LifecycleError(f"{account.slug} is not scheduled for deletion")
    account.state, account.delete_after = Account.State.ACTIVE, None
    account.save(update_fields=["state", "delete_after"])
    return account


def purge_due_accounts(now=None) -> list[str]:
    """Drop the schemas (and old move copies) of accounts whose grace period is over."""
    connection.set_schema_to_public()
    due = Account.objects.filter(
        state=Account.State.DELETING, delete_after__lte=now or timezone.now()
    )
    purged = []
    for account in list(due):
        copies = [(account.server, account.schema_name)] + [
            (move.source, move.old_schema)
            for move in account.moves.filter(phase=AccountMove.Phase.DONE).exclude(old_schema="")
        ]
        for server, schema in copies:
            with psycopg.connect(server_url(server), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        account.delete()
        purged.append(account.slug)
    return purged
