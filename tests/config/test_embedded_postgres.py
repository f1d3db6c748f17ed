"""Ferry's own PostgreSQL: started when DATABASE_URL is unset, stopped on exit, data kept."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import BASE_DIR

WRITE = """
import psycopg, sys
from pathlib import Path
from config import embedded_postgres
url = embedded_postgres.start(Path(sys.argv[1]))
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS kept (value text)")
    conn.execute("INSERT INTO kept VALUES ('still here')")
print(url)
"""

READ = """
import psycopg, sys
from pathlib import Path
from config import embedded_postgres
url = embedded_postgres.start(Path(sys.argv[1]))
with psycopg.connect(url) as conn:
    print(conn.execute("SELECT value FROM kept").fetchone()[0])
"""

SETTINGS = """
import json, psycopg, sys
from pathlib import Path
from config import embedded_postgres
import pgserver
pgdata = Path(sys.argv[1])
url = embedded_postgres.start(pgdata)
with psycopg.connect(url) as conn:
    # In bytes: SHOW prints 6144MB as 6GB.
    settings = {
        name: conn.execute(
            "SELECT pg_size_bytes(current_setting(%s)), pg_size_bytes(%s)", [name, value]
        ).fetchone()
        for name, value in embedded_postgres.server_settings().items()
    }
# The server process pgserver stops when the last process attached exits: the running one.
known = pgserver.PostgresServer._instances[pgdata].get_pid()
running = int((pgdata / "postmaster.pid").read_text().split()[0])
print(json.dumps({"settings": settings, "pids": [known, running]}))
"""


def run(script: str, pgdata: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, str(pgdata)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.slow
def test_it_starts_stops_on_exit_and_keeps_the_data():
    # Not under pytest's tmp_path: another pytest run on the machine may reset that tree to
    # 0700 at any moment, and the server runs as the unprivileged `pgserver` user when root.
    with tempfile.TemporaryDirectory(prefix="ferry-embedded-") as scratch:
        os.chmod(scratch, 0o755)
        starts_stops_and_keeps(Path(scratch) / "pgdata")


def starts_stops_and_keeps(pgdata: Path) -> None:
    # A new cluster runs with the settings sized to the machine from its first start on.
    shown = json.loads(run(SETTINGS, pgdata))
    settings = shown["settings"]
    assert set(settings) == {"shared_buffers", "effective_cache_size", "max_wal_size",
                             "maintenance_work_mem"}  # fmt: skip
    assert all(running == wanted for running, wanted in settings.values()), settings
    # Restarted to take them, through pgserver: it knows the new server process (after a
    # plain `pg_ctl restart` it knew the old one, and the cluster outlived `make run`).
    known, running = shown["pids"]
    assert known == running
    assert not (pgdata / "postmaster.pid").exists()
    url = run(WRITE, pgdata)
    assert url.startswith("postgresql://postgres:@/ferry?host=")
    assert (pgdata / "PG_VERSION").exists()
    # The process that started it has exited, so the server has stopped.
    assert not (pgdata / "postmaster.pid").exists()
    assert run(READ, pgdata) == "still here"


def test_the_server_settings_are_sized_to_the_machine():
    from config.embedded_postgres import server_settings

    gib = 1024**3
    assert server_settings(24 * gib) == {
        "shared_buffers": "6144MB",
        "effective_cache_size": "12288MB",
        "max_wal_size": "4GB",
        "maintenance_work_mem": "256MB",
    }
    assert server_settings(2 * gib)["shared_buffers"] == "512MB"
    assert server_settings(256 * gib)["shared_buffers"] == "8192MB"  # at most 8 GB
    small = server_settings(256 * 1024**2)  # never below PostgreSQL's own default
    assert (small["shared_buffers"], small["effective_cache_size"]) == ("128MB", "128MB")
