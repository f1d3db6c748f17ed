"""A private PostgreSQL for a benchmark run, with Ferry migrated and one account in it."""

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from config.embedded_postgres import tune  # noqa: E402
from tests.drills import Cluster  # noqa: E402

ACCOUNT_FILE = "account.json"


@contextmanager
def ferry_database(keep: Path | None = None) -> Iterator[tuple[Path, str, dict]]:
    """Yields (folder, database URL, {"schema", "site_id", "api_key", "write_key", "reused"}).

    With `keep`, the cluster lives in that folder and outlives the run: a later run with the
    same folder starts it again and finds the account as the last run left it ("reused" true;
    migrations are applied again, which is quick when they are current). Whether the account
    was filled is the benchmark's to record (see `filled` and `mark_filled`)."""
    if keep is not None:
        with kept_database(keep) as yielded:
            yield yielded
        return
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        try:
            tune(cluster.server, restart=True)
            url = cluster.create_database("bench")
            yield folder, url, {**set_up(folder, url), "reused": False}
        finally:
            cluster.close()


@contextmanager
def kept_database(folder: Path) -> Iterator[tuple[Path, str, dict]]:
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    import pgserver

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    account_file = folder / ACCOUNT_FILE
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
    try:
        tune(server, restart=True)
        url = server.get_uri("bench")
        if account_file.exists():
            env = {**os.environ, "DATABASE_URL": url, "FERRY_VAR_DIR": str(folder / "var")}
            subprocess.run(
                [sys.executable, "manage.py", "migrate_schemas", "-v", "0"],
                cwd=BASE_DIR, env=env, check=True, capture_output=True,
            )  # fmt: skip
            yield folder, url, {**json.loads(account_file.read_text()), "reused": True}
            return
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench")
            conn.execute("CREATE DATABASE bench")
        account = set_up(folder, url)
        account_file.write_text(json.dumps(account))
        yield folder, url, {**account, "reused": False}
    finally:
        server.cleanup()


def set_up(folder: Path, url: str) -> dict:
    """Migrate the database at `url` and create the account `bench` with an API key."""
    env = {**os.environ, "DATABASE_URL": url, "FERRY_VAR_DIR": str(folder / "var")}

    def manage(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    manage("migrate_schemas", "-v", "0")
    account = json.loads(manage(
        "create_account", "bench", "--name", "Bench", "--owner-email", "o@bench.example",
        "--owner-password", "a-long-bench-password", "--json",
    ))  # fmt: skip
    key = json.loads(manage("create_api_key", "bench", "--json"))
    return {**key, "schema": account["schema"]}


def filled(folder: Path, how: str) -> bool:
    """Did an earlier run in this kept folder fill the account as `how` says?"""
    marker = folder / "filled"
    return marker.exists() and marker.read_text() == how


def mark_filled(folder: Path, how: str) -> None:
    (folder / "filled").write_text(how)


def setup_django(folder: Path, url: str) -> None:
    """Point Django at the benchmark's database, with a spool and a var folder in `folder`,
    and set it up (imports of models come after this)."""
    os.environ.update(
        DATABASE_URL=url, FERRY_VAR_DIR=str(folder / "var"),
        INGEST_SPOOL_PATH=str(folder / "spool.sqlite3"), LOG_LEVEL="WARNING",
    )  # fmt: skip
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
