"""A private PostgreSQL for a benchmark run, with Ferry migrated and one account in it."""

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.drills import Cluster  # noqa: E402


@contextmanager
def ferry_database():
    """Yields (folder, database URL, {"schema", "site_id", "api_key", "write_key"})."""
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        try:
            url = cluster.create_database("bench")
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
            yield folder, url, {**key, "schema": account["schema"]}
        finally:
            cluster.close()
