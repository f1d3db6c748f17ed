"""Account creation and migration at 1,000 accounts, beside django-tenants' own paths.

A private PostgreSQL cluster and a copy of the code (so a throwaway migration can be added).
Measured in one run, so the ratios hold on a busy machine:

- creation: Ferry's clone of the template's dump, per account over N accounts; beside stock
  django-tenants creating a schema by running migrations, and its `clone_schema` SQL function
  (plus the fake migrate it runs), on a sample of accounts.
- migration over N accounts: a no-op run of Ferry's migrate_schemas; django-tenants'
  `migrate_schemas --executor standard` and `--executor multiprocessing` doing the same no-op;
  then an additive migration (a column with an index on people) by Ferry's run while ingestion
  (Track API through gunicorn, two drain workers) and dashboard reads keep going: errors are
  counted and every acknowledged event must be stored.

    python3 -m uv run python bench/accounts_scale.py [--accounts 1000] [--stock-sample 20]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.drills import Cluster, free_port  # noqa: E402

ADDITIVE = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("segments", "{previous}")]
    operations = [
        migrations.AddField("person", "bench_score", models.IntegerField(null=True)),
        migrations.AddIndex(
            "person", models.Index(fields=["bench_score"], name="person_bench_score")
        ),
    ]
"""

CREATE_SCRIPT = r"""
import json, sys, time
import django
django.setup()
from django.db import connection
from accounts import actions, provisioning
from accounts.models import Account, Domain, generate_schema_name
from django_tenants.clone import CloneSchema
from django.core.management import call_command

mode, count = sys.argv[1], int(sys.argv[2])
shared_hash = None
if len(sys.argv) > 3 and sys.argv[3] == "shared-hash":
    # Setup only (--shared-owner-hash): one Argon2 hash of the same password for every owner.
    from django.contrib.auth.hashers import make_password
    shared_hash = make_password("a-long-bench-password")
times = []
for n in range(count):
    slug = f"{mode[:5]}{n}"
    started = time.perf_counter()
    if mode == "ferry":
        # create_account's path with a spare ready, its two parts timed apart: the owner's
        # Argon2 hash (before the transaction) and the claim transaction (row, rename,
        # domain, owner row).
        from django.contrib.auth.hashers import make_password
        hashed = shared_hash or make_password("a-long-bench-password")
        hashed_at = time.perf_counter()
        account = actions._account_from_spare(slug, slug, f"o@{slug}.example", hashed, True)
        assert account is not None, f"no spare for account {n + 1}"
        times.append([hashed_at - started, time.perf_counter() - hashed_at])
        connection.set_schema_to_public()
        continue
    elif mode == "fallback":
        # The pool is empty: provisioning state, then built from the template.
        actions.create_account(slug=slug, name=slug, owner_email=f"o@{slug}.example",
                               owner_password="a-long-bench-password")
    elif mode == "refill":
        from accounts import pool
        pool.build_spare(provisioning.current_script())
    elif mode == "hash":
        from django.contrib.auth.hashers import make_password
        make_password("a-long-bench-password")
    elif mode == "clone":
        provisioning.clone_template(generate_schema_name(), provisioning.current_script())
    elif mode == "stock":
        # What TenantMixin.create_schema does without a base schema, with the stock executor.
        account = Account(slug=slug, name=slug, schema_name=generate_schema_name())
        account.save(verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {account.schema_name}")
        call_command("migrate_schemas", tenant=True, schema_name=account.schema_name,
                     interactive=False, verbosity=0, executor="standard", skip_checks=True)
    elif mode == "tenants_clone":
        schema = generate_schema_name()
        CloneSchema().clone_schema(provisioning.TEMPLATE_SCHEMA, schema, "DATA")
        call_command("migrate_schemas", tenant=True, fake=True, schema_name=schema,
                     interactive=False, verbosity=0, executor="standard", skip_checks=True)
    connection.set_schema_to_public()
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


KEYS_SCRIPT = r"""
import json, sys
import django
django.setup()
from accounts.models import Account, ApiKey
n = int(sys.argv[1])
keys = []
for index in range(0, n, max(1, n // 50)):
    account = Account.objects.get(slug=f"ferry{index}")
    issued = ApiKey.issue(account, "Bench")[1]
    keys.append({"site_id": issued.site_id, "api_key": issued.api_key,
                 "schema": account.schema_name})
print(json.dumps(keys))
"""


def run(env, *args, timeout=3600) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                            cwd=env["FERRY_CODE"])  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def create(env, mode: str, count: int, *extra: str) -> list[float]:
    return json.loads(run(env, sys.executable, "-c", CREATE_SCRIPT, mode, str(count), *extra))


def timed(env, *args) -> float:
    started = time.perf_counter()
    run(env, sys.executable, "manage.py", *args)
    return time.perf_counter() - started


def copy_code(folder: Path) -> Path:
    code = folder / "code"
    shutil.copytree(BASE_DIR, code, ignore=shutil.ignore_patterns(
        ".venv", "var", ".git", "node_modules", "__pycache__", "*.sqlite3"))  # fmt: skip
    return code


def add_migration(code: Path) -> None:
    folder = code / "segments" / "migrations"
    latest = sorted(p.stem for p in folder.glob("0*.py"))[-1]
    (folder / "0999_bench_additive.py").write_text(ADDITIVE.format(previous=latest))


class Traffic:
    """Track API batches to a sample of accounts and dashboard reads while the migration runs."""

    def __init__(self, port: int, keys: list[dict], dashboards: list[tuple[str, str]]) -> None:
        self.port, self.keys, self.dashboards = port, keys, dashboards
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.acknowledged: dict[str, int] = {}
        self.requests = 0

    def ingest(self) -> None:
        number = 0
        while not self.stop.is_set():
            key = self.keys[number % len(self.keys)]
            number += 1
            auth = b64encode(f"{key['site_id']}:{key['api_key']}".encode()).decode()
            body = json.dumps({"name": "during_migration", "data": {"n": number}})
            status = self._ask("POST", "/api/v1/customers/p1/events", body,
                               {"Authorization": f"Basic {auth}", "Host": "localhost",
                                "Content-Type": "application/json"})  # fmt: skip
            if status == 200:
                self.acknowledged[key["schema"]] = self.acknowledged.get(key["schema"], 0) + 1
            time.sleep(0.01)

    def browse(self) -> None:
        number = 0
        while not self.stop.is_set():
            host, cookie = self.dashboards[number % len(self.dashboards)]
            number += 1
            self._ask("GET", "/people/", None, {"Host": host, "Cookie": cookie})
            time.sleep(0.02)

    def _ask(self, method, path, body, headers) -> int:
        self.requests += 1
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                self.errors.append(f"{method} {headers.get('Host')}{path}: {response.status}")
            return response.status
        except OSError as error:
            self.errors.append(f"{method} {path}: {error}")
            return 0


def login(port: int, host: str, email: str, password: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/login/", headers={"Host": host})
    response = conn.getresponse()
    page = response.read().decode()
    csrf_cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie")).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = f"csrfmiddlewaretoken={token}&username={email}&password={password}"
    conn.request("POST", "/login/", form, {
        "Host": host, "Cookie": f"csrftoken={csrf_cookie}", "Referer": f"http://{host}/login/",
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    response = conn.getresponse()
    response.read()
    session = re.search(r"ferry_session=([^;]+)", response.getheader("Set-Cookie") or "")
    if not session:
        raise RuntimeError(f"login to {host} failed: {response.status}")
    return f"ferry_session={session.group(1)}; csrftoken={csrf_cookie}"


def percentile(times: list[float], share: int) -> float:
    ordered = sorted(times)
    return ordered[max(0, -(-len(ordered) * share // 100) - 1)]


def print_creation(rows: list, n: int, sample: int) -> None:
    print(f"\nAccount creation (per account, ms; {n:,} accounts, samples of {sample}):\n")
    print("| path | accounts | p50 ms | p95 ms | mean ms | x stock mean |")
    print("|---|---|---|---|---|---|")
    stock_mean = sum(rows[0][2]) / len(rows[0][2])
    for label, count, times in rows:
        mean = sum(times) / len(times)
        print(f"| {label} | {count:,} | {percentile(times, 50) * 1000:.1f} | "
              f"{percentile(times, 95) * 1000:.1f} | {mean * 1000:.1f} | "
              f"{mean / stock_mean:.3f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--stock-sample", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--creation-only", action="store_true",
                        help="Measure account creation only, not the migration runs.")  # fmt: skip
    parser.add_argument("--shared-owner-hash", action="store_true",
                        help="Setup for the migration runs: the N owners share one Argon2 hash "
                             "of the same password, computed once; the per-account hash and "
                             "create_account rows are left out.")  # fmt: skip
    options = parser.parse_args()
    n = options.accounts
    rows = []
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        gunicorn = drains = None
        try:
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            code = copy_code(folder)
            env = {**os.environ, "DATABASE_URL": cluster.url.replace("/postgres?", "/bench?"),
                   "FERRY_VAR_DIR": str(folder / "var"), "FERRY_CODE": str(code),
                   "PYTHONPATH": str(code), "DJANGO_SETTINGS_MODULE": "config.settings",
                   "INGEST_SPOOL_PATH": str(folder / "spool.sqlite3"), "LOG_LEVEL": "WARNING"}  # fmt: skip
            run(env, sys.executable, "manage.py", "migrate_schemas", "-v", "0")
            run(env, sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0")

            sample = options.stock_sample
            stock = create(env, "stock", sample)
            tenants_clone = create(env, "tenants_clone", sample)
            # The refill worker's job, done up front: one spare per account to create.
            spares = create(env, "refill", n)
            # [hash, claim] per account, accounts 1..n
            parts = create(env, "ferry", n, *(["shared-hash"] if options.shared_owner_hash else []))
            fallback = create(env, "fallback", sample)
            tail = parts[-min(100, n) :]
            tail_label = f"{max(1, n - 99):,}-{n:,}"
            rows.append(("django-tenants: CREATE SCHEMA + migrations (sample)", sample, stock))
            rows.append(("django-tenants: clone_schema() + fake migrate (sample)", sample,
                         tenants_clone))  # fmt: skip
            rows.append(("Ferry: one spare built from the template (refill worker, background)",
                         n, spares))  # fmt: skip
            rows.append(("Ferry: create_account with the pool empty (provisioning, template; "
                         "hash included)", sample, fallback))  # fmt: skip
            rows.append((f"Ferry: claim transaction, accounts 1-{min(100, n)}", min(100, n),
                         [claim for _, claim in parts[:100]]))  # fmt: skip
            rows.append((f"Ferry: claim transaction, accounts {tail_label}", len(tail),
                         [claim for _, claim in tail]))  # fmt: skip
            if not options.shared_owner_hash:  # with one shared hash there is nothing to show
                rows.append((f"Ferry: owner's Argon2 hash, accounts {tail_label}", len(tail),
                             [hashed for hashed, _ in tail]))  # fmt: skip
                rows.append((f"Ferry: create_account from a spare (hash + claim), accounts "
                             f"{tail_label}", len(tail), [a + b for a, b in tail]))  # fmt: skip
            print_creation(rows, n, sample)
            if options.creation_only:
                return

            # Stock executors walk every tenant row; ours reads placement. Same schemas.
            # The stock-created and pool-empty accounts are accounts too (clone_schema() made
            # schemas only, no account rows).
            total = n + 2 * sample
            noop = timed(env, "migrate_schemas", "--tenant", "-v", "0")
            standard = timed(
                env,
                "migrate_schemas",
                "--tenant",
                "--executor",
                "standard",
                "-v",
                "0",
                "--skip-checks",
            )
            multi = timed(env, "migrate_schemas", "--tenant", "--executor", "multiprocessing", "--skip-checks",
                          "-v", "0")  # fmt: skip

            # The additive migration while traffic flows.
            port = free_port()
            gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                 "--workers", "2", "--log-level", "warning"], cwd=code, env=env)  # fmt: skip
            drains = [subprocess.Popen([sys.executable, "manage.py", "drain"], cwd=code, env=env,
                                       stdout=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
            time.sleep(4)
            keys = json.loads(run(env, sys.executable, "-c", KEYS_SCRIPT, str(n)))
            dashboards = [
                (f"ferry{i}.localhost", login(port, f"ferry{i}.localhost",
                                              f"o@ferry{i}.example", "a-long-bench-password"))
                for i in range(0, min(n, 5))
            ]  # fmt: skip
            traffic = Traffic(port, keys, dashboards)
            threads = [threading.Thread(target=traffic.ingest),
                       threading.Thread(target=traffic.browse)]  # fmt: skip
            for thread in threads:
                thread.start()
            time.sleep(2)
            add_migration(code)
            try:
                additive = timed(env, "migrate_schemas", "--tenant", "-v", "0",
                                 "--accounts-parallel", str(options.parallel))  # fmt: skip
            finally:
                time.sleep(2)
                traffic.stop.set()
                for thread in threads:
                    thread.join()
            deadline = time.monotonic() + 120
            db_url = env["DATABASE_URL"]
            while time.monotonic() < deadline:
                with psycopg.connect(db_url, autocommit=True) as conn:
                    stored = {
                        key["schema"]: conn.execute(
                            f'SELECT count(*) FROM "{key["schema"]}".segments_event '
                            "WHERE name = 'during_migration'").fetchone()[0]
                        for key in keys
                    }  # fmt: skip
                    dead = conn.execute("SELECT count(*) FROM public.ingest_deadletter").fetchone()[
                        0
                    ]
                if all(stored[s] >= c for s, c in traffic.acknowledged.items()):
                    break
                time.sleep(1)
            lost = sum(max(0, c - stored[s]) for s, c in traffic.acknowledged.items())
            with psycopg.connect(db_url, autocommit=True) as conn:
                migrated = conn.execute(
                    "SELECT count(*) FROM pg_indexes WHERE indexname = 'person_bench_score'"
                ).fetchone()[0]
        finally:
            for process in [gunicorn, *(drains or [])]:
                if process:
                    process.terminate()
                    process.wait(timeout=30)
            cluster.close()

    print(f"\nMigrating {total} account schemas (s):\n")
    print("| run | seconds | per schema ms | x Ferry no-op |")
    print("|---|---|---|---|")
    for label, seconds in [
        ("Ferry migrate_schemas, nothing to do", noop),
        ("django-tenants migrate_schemas --executor standard, nothing to do", standard),
        ("django-tenants migrate_schemas --executor multiprocessing (2), nothing to do", multi),
        (f"Ferry: add a column with an index on people ({options.parallel} at once), "
         "under traffic", additive),
    ]:  # fmt: skip
        print(f"| {label} | {seconds:.2f} | {seconds / total * 1000:.1f} | {seconds / noop:.1f} |")
    acked = sum(traffic.acknowledged.values())
    print(f"\nDuring the additive run: {traffic.requests} requests, {len(traffic.errors)} errors "
          f"{traffic.errors[:5]}, {acked} events acknowledged, {lost} missing, {dead} dead "
          f"letters; index present in {migrated} schemas (accounts + template).")  # fmt: skip


if __name__ == "__main__":
    main()
