"""Memory of one PostgreSQL connection as it serves more and more accounts.

Each backend process caches the catalog entries (relcache, catcache, plans) of every table it
touches, per schema: a connection kept open (CONN_MAX_AGE) that serves many accounts grows
with each account it has seen. This creates N accounts (cloned from the template), then one
connection runs a dashboard-like query mix in account after account, reading the backend's own
memory contexts (pg_backend_memory_contexts) as it goes; then the same with Ferry's recycling
(`DB_RECYCLE_AFTER_SCHEMAS`): the backend closes after that many distinct schemas.

    python3 -m uv run python bench/accounts_connections.py [--accounts 1000] [--recycle 200]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.drills import Cluster  # noqa: E402

SCRIPT = r"""
import json, sys, time
import django
django.setup()
from django.conf import settings
from django.db import connection
from accounts import actions, provisioning
from accounts.models import Account
from segments.models import Person, Segment

count, recycle, create = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "create"
if create:
    # Rows and cloned schemas without owners (no password hashing): memory is the point here.
    from django.db import transaction
    from accounts.models import Domain, generate_schema_name
    script = provisioning.current_script()
    for n in range(count):
        with transaction.atomic():
            account = Account.objects.create(slug=f"m{n}", name=f"m{n}",
                                             schema_name=generate_schema_name())
            Domain.objects.create(domain=account.host, tenant=account)
            provisioning.clone_template(account.schema_name, script)
    from accounts import migrating
    started = time.perf_counter()
    report = migrating.migrate_accounts()
    print(json.dumps({"created": count, "noop_seconds": time.perf_counter() - started,
                      "current": report.current, "total": report.total}))
    sys.exit()

settings.DB_RECYCLE_AFTER_SCHEMAS = recycle

def memory():
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(total_bytes), pg_backend_pid() FROM pg_backend_memory_contexts")
        total, pid = cursor.fetchone()
        cursor.execute("SELECT sum(total_bytes) FROM pg_backend_memory_contexts "
                       "WHERE name IN ('CacheMemoryContext') OR parent = 'CacheMemoryContext'")
        cache = cursor.fetchone()[0]
    rss = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) * 1024
    except OSError:
        pass
    return int(total or 0), int(cache or 0), rss

readings = [(0, *memory())]
marks = {1, 10, 50, 100, 200, 300, 500, 750, 1000, 2000, count}
started = time.perf_counter()
for n, account in enumerate(Account.objects.order_by("pk")[:count], start=1):
    with account:
        list(Person.objects.order_by("-id")[:50])
        Person.objects.filter(email__startswith="a").count()
        list(Segment.objects.all()[:20])
        from accounts.models import User
        User.objects.filter(email="x@example.com").first()
    if n in marks:
        readings.append((n, *memory()))
elapsed = time.perf_counter() - started
print(json.dumps({"readings": readings, "seconds": elapsed, "recycled": connection.recycled}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--recycle", type=int, default=200)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        try:
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            env = {**os.environ, "DATABASE_URL": cluster.url.replace("/postgres?", "/bench?"),
                   "FERRY_VAR_DIR": str(folder / "var"), "DJANGO_SETTINGS_MODULE": "config.settings",
                   "PYTHONPATH": str(BASE_DIR), "LOG_LEVEL": "WARNING"}  # fmt: skip

            def run(*args: str) -> dict:
                result = subprocess.run([sys.executable, *args], env=env, cwd=BASE_DIR,
                                        capture_output=True, text=True, check=False)  # fmt: skip
                if result.returncode:
                    raise RuntimeError(result.stderr[-3000:])
                return json.loads(result.stdout.strip().splitlines()[-1]) if args[0] == "-c" else {}

            run("manage.py", "migrate_schemas", "-v", "0")
            n = options.accounts
            created = run("-c", SCRIPT, str(n), "0", "create")
            started = time.perf_counter()
            run("manage.py", "migrate_schemas", "-v", "0")
            command_seconds = time.perf_counter() - started
            kept = run("-c", SCRIPT, str(n), "0", "measure")
            recycled = run("-c", SCRIPT, str(n), str(options.recycle), "measure")
        finally:
            cluster.close()

    print(f"\nOne connection serving {n} accounts in turn (4 dashboard queries each):\n")
    print(
        "| accounts touched | backend memory MB | of which catalog caches MB | backend RSS MB "
        f"| with recycling after {options.recycle}: memory MB | caches MB |"
    )
    print("|---|---|---|---|---|---|")
    mb = 1024 * 1024
    for before, after in zip(kept["readings"], recycled["readings"], strict=True):
        print(
            f"| {before[0]} | {before[1] / mb:.1f} | {before[2] / mb:.1f} | {before[3] / mb:.1f} "
            f"| {after[1] / mb:.1f} | {after[2] / mb:.1f} |"
        )
    print(
        f"\nNo-op migration over {created['total']} schemas ({created['current']} current): "
        f"{created['noop_seconds']:.2f} s in-process; the whole `manage.py migrate_schemas` "
        f"(Python and Django start, public, template check): {command_seconds:.2f} s."
    )
    print(
        f"\nTime for all {n}: kept {kept['seconds']:.2f} s, recycled {recycled['seconds']:.2f} s "
        f"({recycled['recycled']} reconnections)."
    )


if __name__ == "__main__":
    main()
