"""The README's run command: migrate, load the demo once, serve with gunicorn."""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from urllib.request import Request, urlopen

import psycopg
import pytest

from tests.conftest import BASE_DIR, database_url, free_port, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture
def empty_database(django_db_setup) -> Iterator[str]:
    name = "ferry_serve_test"
    admin_url = database_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def serve_once(url: str) -> tuple[str, str]:
    """Run the serve command until it answers, fetch the acme login page, stop it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "1"],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(
            f"http://127.0.0.1:{port}/login/", f"acme.localhost:{port}", process, timeout=120
        )
        request = Request(
            f"http://127.0.0.1:{port}/login/", headers={"Host": f"acme.localhost:{port}"}
        )
        page = urlopen(request, timeout=10).read().decode()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    return page, output


def test_serve_migrates_loads_the_demo_once_and_answers(empty_database):
    page, output = serve_once(empty_database)
    assert "Log in to Acme Corporation" in page
    assert re.search(r"Staff login\s+staff@ferry\.localhost / \S+", output)
    assert re.search(
        r"acme\s+http://acme\.localhost:\d+/login/\s+owner@acme\.example / \S+", output
    )
    assert "globex" in output

    page, output = serve_once(empty_database)
    assert "Log in to Acme Corporation" in page
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM accounts_account").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM accounts_user").fetchone()[0] == 1
