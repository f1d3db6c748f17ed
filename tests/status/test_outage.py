"""With PostgreSQL unreachable, the status host still answers from the snapshot.

The snapshot is published by the test; gunicorn then runs with a DATABASE_URL where nothing
listens, as during the 2015 outage.
"""

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import feedparser
import pytest

from status import actions
from tests.conftest import free_port, gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def fetch(port: str, host: str, path: str, headers: dict | None = None):
    request = Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": f"{host}:{port}", **(headers or {})}
    )
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def published(demo, publish, snapshot_dir: Path) -> Path:
    actions.open_incident(
        name="Database unreachable", status="identified", impact="critical",
        body="PostgreSQL is down. Data collection keeps accepting.",
        component_statuses={demo["management-interface"]: "major_outage"},
    )  # fmt: skip
    publish()
    return snapshot_dir


@pytest.fixture
def outage_server(published: Path) -> Iterator[str]:
    nothing_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/ferry?connect_timeout=2"
    with gunicorn(nothing_listens, workers=1, env={"STATUS_SNAPSHOT_DIR": str(published)}) as port:
        yield port


def test_page_api_and_feeds_answer_200_while_postgresql_is_down(outage_server):
    port = outage_server
    status, headers, body = fetch(port, "status.localhost", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"Database unreachable" in body
    assert b"Major Service Outage" in body

    status, headers, body = fetch(port, "status.localhost", "/api/v2/summary.json")
    assert status == 200
    summary = json.loads(body)
    assert summary["status"]["indicator"] == "critical"
    assert summary["incidents"][0]["name"] == "Database unreachable"

    for path in ("/api/v2/status.json", "/api/v2/components.json", "/api/v2/incidents.json",
                 "/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances.json",
                 "/api/v2/scheduled-maintenances/upcoming.json",
                 "/api/v2/scheduled-maintenances/active.json", "/history"):  # fmt: skip
        assert fetch(port, "status.localhost", path)[0] == 200, path

    status, _, body = fetch(port, "status.localhost", "/history.atom")
    assert status == 200
    assert "Database unreachable" in [e.title for e in feedparser.parse(body).entries]

    incident = summary["incidents"][0]["id"]
    status, _, body = fetch(port, "status.localhost", f"/incidents/{incident}")
    assert status == 200
    assert b"Data collection keeps accepting" in body

    stylesheet = body.split(b'rel="stylesheet" href="')[1].split(b'"')[0].decode()
    status, headers, _ = fetch(port, "status.localhost", stylesheet)
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_conditional_and_compressed_answers_work_without_the_database(outage_server):
    port = outage_server
    _, headers, body = fetch(port, "status.localhost", "/", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert b"Database unreachable" in gzip.decompress(body)
    status, _, _ = fetch(port, "status.localhost", "/", {"If-None-Match": headers["ETag"],
                                                         "Accept-Encoding": "gzip"})  # fmt: skip
    assert status == 304


def test_subscriptions_staff_console_and_dashboards_answer_503(outage_server):
    port = outage_server
    # A logged-in staff member's session lives in the database.
    session = {"Cookie": "ferry_session=abcdefghijklmnopqrstuvwxyz012345"}
    for host, path in (("status.localhost", "/subscribe/"), ("localhost", "/staff/status/"),
                       ("acme.localhost", "/")):  # fmt: skip
        status, headers, body = fetch(port, host, path, session)
        assert status == 503, (host, path)
        assert headers["Retry-After"] == "30"
        assert b"Ferry cannot reach its database right now" in body
