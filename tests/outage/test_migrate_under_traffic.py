"""`migrate_schemas` run while the server takes traffic: no 5xx.

Before the server starts, every schema is taken back one real migration (the people table's
GIN index is rebuilt by segments 0005: DROP INDEX and CREATE INDEX, which take locks on the
table dashboards read). Then, while a client keeps asking for dashboard pages, ingestion and
the status host, `manage.py migrate_schemas` applies it again in every schema. Requests may
wait for a lock; none may fail.
"""

import base64
import http.client
import json
import re
import threading
import time
from collections import Counter
from urllib.parse import urlencode

import pytest

from tests.conftest import PASSWORD, gunicorn, manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def ask(port, method, path, host, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    response = connection.getresponse()
    text = response.read().decode(errors="replace")
    connection.close()
    return response, text


def log_in(port: str) -> str:
    page, html = ask(port, "GET", "/login/", "acme.localhost")
    cookie = page.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    body = urlencode({"username": "mia@acme.example", "password": PASSWORD,
                      "csrfmiddlewaretoken": token})  # fmt: skip
    answer, _ = ask(port, "POST", "/login/", "acme.localhost", {
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, body)  # fmt: skip
    assert answer.status == 302
    session = next(c for c in answer.headers.get_all("Set-Cookie") if c.startswith("ferry_"))
    return session.split(";")[0]


def test_migrating_every_schema_under_traffic_answers_no_5xx(
    test_database_url, committed_keys, tmp_path
):
    env = {"DATABASE_URL": test_database_url}
    back = manage("migrate_schemas", "segments", "0004", env=env, timeout=300)
    assert back.returncode == 0, back.stderr
    forward = None
    try:
        server_env = {"INGEST_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
                      "STATUS_SNAPSHOT_DIR": str(tmp_path / "status")}  # fmt: skip
        with gunicorn(test_database_url, workers=2, env=server_env) as port:
            session = log_in(port)
            key = committed_keys["acme"]
            auth = base64.b64encode(f"{key.site_id}:{key.api_key}".encode()).decode()
            targets = [
                ("GET", "/people/", "acme.localhost", {"Cookie": session}, None),
                ("GET", "/people/?q=someone", "acme.localhost", {"Cookie": session}, None),
                ("GET", "/", "acme.localhost", {"Cookie": session}, None),
                ("POST", "/api/v1/customers/mig-1/events", "localhost",
                 {"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
                 json.dumps({"name": "during-migrate"})),
                ("GET", "/readyz", "acme.localhost", {}, None),
            ]  # fmt: skip
            statuses: Counter = Counter()
            failures: list[str] = []
            stop = threading.Event()

            def load() -> None:
                while not stop.is_set():
                    for method, path, host, headers, body in targets:
                        try:
                            response, text = ask(port, method, path, host, headers, body)
                        except OSError as error:
                            failures.append(f"{path}: {error}")
                            continue
                        statuses[response.status] += 1
                        if response.status >= 500:
                            failures.append(f"{path}: {response.status} {text[:200]}")

            threads = [threading.Thread(target=load) for _ in range(3)]
            for thread in threads:
                thread.start()
            time.sleep(1)
            started = time.monotonic()
            forward = manage("migrate_schemas", env=env, timeout=300)
            took = time.monotonic() - started
            time.sleep(1)
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
    finally:
        if forward is None or forward.returncode != 0:  # leave the test database current
            manage("migrate_schemas", env=env, timeout=300)
    assert forward.returncode == 0, forward.stderr
    assert "segments.0005" in forward.stdout or "0005_person_attributes" in forward.stdout, (
        forward.stdout[-2000:]
    )
    print(f"\nmigrate_schemas took {took:.1f} s under traffic; answers: {dict(statuses)}")
    assert not failures, failures[:5]
    assert statuses[200] > 20
