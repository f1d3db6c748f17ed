"""The PostgreSQL cluster Ferry starts for itself when DATABASE_URL is unset.

The `pgserver` wheel ships PostgreSQL binaries, so a fresh machine needs nothing installed.
Every process that attaches registers itself; the cluster stops when the last one exits, so
`make run`, a `manage.py` command run beside it and the test suite can share one cluster.
"""

import logging
import os
import warnings
from pathlib import Path

import psycopg

DATABASE_NAME = "ferry"

# Settings that only make sense for a cluster whose data is thrown away after the run.
THROWAWAY_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


def start(pgdata: Path, *, throwaway: bool = False) -> str:
    """Start (or attach to) the cluster in `pgdata` and return a URL for Ferry's database."""
    # pgserver logs every step at INFO; only its warnings matter to someone running Ferry.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (CI, containers) platformdirs warns and uses /tmp; fine here.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="delete" if throwaway else "stop")
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        if throwaway:
            for name, value in THROWAWAY_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
    return server.get_uri(DATABASE_NAME)


def default_pgdata(base_dir: Path) -> Path:
    return Path(os.environ.get("FERRY_PGDATA") or base_dir / "var" / "postgres")
