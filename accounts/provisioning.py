"""Building account schemas fast: a template schema kept current by migrations, cloned.

`migrate_schemas` (accounts/migrating.py) migrates the template schema `ferry_template` like
any account and then dumps it with `pg_dump` into a SchemaTemplate row: the SQL for tables,
indexes, constraints, sequences and the rows migrations wrote (django_migrations, content
types, permissions). Creating an account executes that script with the schema name replaced,
one round trip inside the transaction that inserts the Account row.

If the script was dumped for other migrations than the code's (a deploy whose migrations have
not run yet), the first creation refreshes the template before cloning; that one is slow and
the account is `provisioning` meanwhile.
"""

import hashlib
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader

from accounts.models import SchemaTemplate, control_plane

TEMPLATE_SCHEMA = "ferry_template"
BASE_DIR = Path(__file__).resolve().parent.parent
SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def migration_leaves() -> frozenset[tuple[str, str]]:
    """The last migration of every app: a schema that records them all is current."""
    return _leaves()


@cache
def _leaves() -> frozenset[tuple[str, str]]:
    loader = MigrationLoader(None, ignore_no_migrations=True, load=True)
    return frozenset(loader.graph.leaf_nodes())


def fingerprint(leaves: frozenset[tuple[str, str]] | None = None) -> str:
    names = sorted(f"{app}.{name}" for app, name in leaves or migration_leaves())
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


_scripts: dict[str, str] = {}


def current_script() -> str | None:
    """The template script for the code's migrations, or None if it has to be refreshed."""
    key = fingerprint()
    if key not in _scripts:
        with control_plane():
            row = SchemaTemplate.objects.filter(fingerprint=key).values_list("script").first()
        if row is None:
            return None
        _scripts[key] = row[0]
    return _scripts[key]


def clone_template(schema_name: str, script: str) -> None:
    """Create `schema_name` on the connection's current server from the template script."""
    if not SCHEMA_NAME.match(schema_name) or schema_name == TEMPLATE_SCHEMA:
        raise ValueError(f"{schema_name!r} is not a generated schema name")
    sql = script.replace(f"{TEMPLATE_SCHEMA}.", f"{schema_name}.").replace(
        f"SCHEMA {TEMPLATE_SCHEMA};", f"SCHEMA {schema_name};"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)


def refresh_template(verbosity: int = 0) -> SchemaTemplate:
    """Migrate the template schema on the primary and store its dump for the code's migrations.

    Runs outside any transaction: pg_dump reads what is committed.
    """
    from django_tenants.migration_executors.base import run_migrations
    from django_tenants.utils import schema_exists

    with control_plane():
        with connection.cursor() as cursor:
            # One refresher at a time; the others wait and find the script stored.
            cursor.execute("SELECT pg_advisory_lock(hashtext('ferry.template'))")
        try:
            key = fingerprint()
            found = SchemaTemplate.objects.filter(fingerprint=key).first()
            if found is not None:
                return found
            if not schema_exists(TEMPLATE_SCHEMA):
                with connection.cursor() as cursor:
                    cursor.execute(f"CREATE SCHEMA {TEMPLATE_SCHEMA}")
            run_migrations(
                [], migrate_options(verbosity), "template", TEMPLATE_SCHEMA, allow_atomic=False
            )
            connection.set_schema_to_public()
            script = dump_schema_script(TEMPLATE_SCHEMA, server="default")
            template = SchemaTemplate.objects.create(fingerprint=key, script=script)
            SchemaTemplate.objects.exclude(pk=template.pk).delete()
            _scripts.clear()
            return template
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext('ferry.template'))")


def migrate_options(verbosity: int = 0) -> dict:
    """Options for Django's migrate command run on one schema, all defaults filled in."""
    from django.core.management.commands.migrate import Command as Migrate

    parser = Migrate().create_parser("manage.py", "migrate")
    options = vars(parser.parse_args([]))
    options.update(verbosity=verbosity, interactive=False, database="default", skip_checks=True)
    return options


def dump_schema_script(schema_name: str, server: str) -> str:
    """`pg_dump` of one schema as plain SQL that psycopg can execute in one call."""
    output = subprocess.run(
        [
            pg_tool("pg_dump"),
            "--schema",
            schema_name,
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "--inserts",
            "--rows-per-insert=500",
            "--dbname",
            server_url(server),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kept = []
    for line in output.splitlines():
        # Session settings would change the search path under django-tenants' feet.
        if line.startswith(("SET ", "SELECT pg_catalog.set_config(", "--", "\\")):
            continue
        kept.append(line)
    return "\n".join(line for line in kept if line.strip())


def pg_tool(name: str) -> str:
    """PostgreSQL's client programs: from the pgserver wheel, else from PATH."""
    import pgserver._commands

    bundled = Path(pgserver._commands.POSTGRES_BIN_PATH) / name
    if bundled.exists():
        return str(bundled)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (install PostgreSQL's client programs)")
    return found


def server_url(server: str) -> str:
    """A libpq URL of a data server, for pg_dump, pg_restore and direct connections."""
    if server == "default":
        params = connections["default"].settings_dict
        return _url(params)
    return _url(settings.DATA_SERVERS[server])


def _url(params: dict) -> str:
    from urllib.parse import quote, urlencode

    options = {k: v for k, v in params.get("OPTIONS", {}).items() if isinstance(v, str | int)}
    host = params.get("HOST") or ""
    if host.startswith("/"):
        options["host"] = host
        host = ""
    auth = quote(params.get("USER") or "", safe="")
    if params.get("PASSWORD"):
        auth += ":" + quote(params["PASSWORD"], safe="")
    netloc = f"{auth}@{host}" if auth else host
    if params.get("PORT"):
        netloc += f":{params['PORT']}"
    query = f"?{urlencode(options)}" if options else ""
    return f"postgresql://{netloc}/{quote(params.get('NAME') or '', safe='')}{query}"
