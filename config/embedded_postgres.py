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
MB = 1024 * 1024


def server_settings(memory: int | None = None) -> dict[str, str]:
    """PostgreSQL's memory and WAL settings for a server that Ferry has to itself, sized to
    the machine (`memory` bytes of RAM): what the README asks of a production server too.

    initdb's defaults are made to start anywhere, not to hold an account of a million people:
    - shared_buffers, 128 MB by default: a quarter of the memory, at most 8 GB. At the
      default, the drain's writer evicted dirty pages and wrote them out itself, and a batch
      with 20 active segments read the memberships' index back from the kernel's cache
      (updating the memberships took 0.45 s per batch of 10,000 at 128 MB, 0.26 s at 4 GB).
    - effective_cache_size: half the memory, which the kernel's cache mostly is.
    - max_wal_size, 1 GB by default: 4 GB, so that a large import or recompute does not start
      a checkpoint every few seconds (each one makes the next change to every page write the
      whole page to the WAL again).
    - maintenance_work_mem: 256 MB, for the indexes of an account moved between servers."""
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    shared = min(max(memory // 4, 128 * MB), 8192 * MB)
    return {
        "shared_buffers": f"{shared // MB}MB",
        "effective_cache_size": f"{max(memory // 2, shared) // MB}MB",
        "max_wal_size": "4GB",
        "maintenance_work_mem": "256MB",
    }


def tune(server, restart: bool) -> None:
    """Write server_settings into a pgserver cluster's configuration and load them. With
    `restart` (a cluster created a moment ago, that nobody else has joined yet) it restarts
    at once when shared_buffers changed; otherwise that takes effect at its next start (it
    stops when the last process attached to it exits)."""
    wanted = server_settings()
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        written = dict(
            conn.execute(
                "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE %s",
                ["%postgresql.auto.conf"],
            ).fetchall()
        )
        changed = [name for name, value in wanted.items() if written.get(name) != value]
        for name in changed:
            conn.execute(f"ALTER SYSTEM SET {name} = '{wanted[name]}'")
        if changed:
            conn.execute("SELECT pg_reload_conf()")
    if restart and "shared_buffers" in changed:
        from pgserver._commands import pg_ctl

        # Stopped and started through pgserver, which so knows the new server process: it
        # stops the server it knows when the last process attached exits (after a plain
        # `pg_ctl restart` the cluster outlived `make run`).
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()


def start(pgdata: Path, *, throwaway: bool = False) -> str:
    """Start (or attach to) the cluster in `pgdata` and return a URL for Ferry's database."""
    # pgserver logs every step at INFO; only its warnings matter to someone running Ferry.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (CI, containers) platformdirs warns and uses /tmp; fine here.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    fresh = not (pgdata / "PG_VERSION").exists()
    server = pgserver.get_server(pgdata, cleanup_mode="delete" if throwaway else "stop")
    tune(server, restart=fresh)
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
