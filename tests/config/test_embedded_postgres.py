"""Ferry's own PostgreSQL: started when DATABASE_URL is unset, stopped on exit, data kept."""

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
    url = run(WRITE, pgdata)
    assert url.startswith("postgresql://postgres:@/ferry?host=")
    assert (pgdata / "PG_VERSION").exists()
    # The process that started it has exited, so the server has stopped.
    assert not (pgdata / "postmaster.pid").exists()
    assert run(READ, pgdata) == "still here"
