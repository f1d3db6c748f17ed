"""Ferry's own PostgreSQL: started when DATABASE_URL is unset, stopped on exit, data kept."""

import subprocess
import sys
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
def test_it_starts_stops_on_exit_and_keeps_the_data(tmp_path):
    pgdata = tmp_path / "pgdata"
    url = run(WRITE, pgdata)
    assert url.startswith("postgresql://postgres:@/ferry?host=")
    assert (pgdata / "PG_VERSION").exists()
    # The process that started it has exited, so the server has stopped.
    assert not (pgdata / "postmaster.pid").exists()
    assert run(READ, pgdata) == "still here"
