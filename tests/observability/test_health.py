"""/healthz and /readyz on every host."""

import json
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.test import Client

from status.snapshot import publish_snapshot
from tests.conftest import gunicorn

pytestmark = pytest.mark.django_db

HOSTS = ["localhost", "acme.localhost", "status.localhost", "nobody.localhost", "127.0.0.1"]


@pytest.mark.parametrize("host", HOSTS)
def test_healthz_answers_on_every_host_without_a_query(cast, host, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host", ["localhost", "acme.localhost"])
def test_readyz_reports_the_database_the_spool_and_the_drain_lag(cast, spool, host):
    response = Client(HTTP_HOST=host).get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "up"
    assert checks["spool"]["status"] == "up"
    assert checks["drain_lag"] == {"status": "ok", "oldest_seconds": 0.0}


def test_readyz_says_the_drain_is_lagging_without_taking_the_node_out(cast, spool, settings):
    settings.READYZ_MAX_DRAIN_LAG_SECONDS = 1
    spool.append(str(cast.acme.pk), ['{"op": "delete"}'])
    spool.db.execute("UPDATE items SET received_at = ?", (time.time() - 60,))
    response = Client(HTTP_HOST="localhost").get("/readyz")
    assert response.status_code == 200
    lag = response.json()["checks"]["drain_lag"]
    assert lag["status"] == "lagging"
    assert lag["oldest_seconds"] >= 59


def test_readyz_is_unavailable_when_the_spool_cannot_be_opened(cast, settings, tmp_path):
    from ingest import spool as spool_module

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.INGEST_SPOOL_PATH = blocker / "spool.sqlite3"
    spool_module._spools.clear()
    try:
        response = Client(HTTP_HOST="localhost").get("/readyz")
    finally:
        spool_module._spools.clear()
    assert response.status_code == 503
    assert response.json()["checks"]["spool"]["status"] == "down"


def test_readyz_on_the_status_host_needs_only_the_snapshot(settings, tmp_path: Path):
    settings.STATUS_SNAPSHOT_DIR = tmp_path / "status"
    client = Client(HTTP_HOST="status.localhost")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"snapshot": {"status": "missing"}}
    publish_snapshot()
    assert client.get("/readyz").status_code == 200


def get(port: str, path: str, host: str) -> tuple[int, dict]:
    try:
        with urlopen(Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_with_postgresql_unreachable_ingestion_stays_ready_and_dashboards_do_not(tmp_path):
    """A database outage must not take the ingestion front door out of the load balancer."""
    nowhere = "postgresql://nobody@127.0.0.1:1/ferry?connect_timeout=1"
    env = {"INGEST_SPOOL_PATH": str(tmp_path / "spool.sqlite3")}
    with gunicorn(nowhere, workers=1, env=env) as port:
        assert get(port, "/healthz", "acme.localhost")[0] == 200
        status, body = get(port, "/readyz", "localhost")
        assert status == 200
        assert body["checks"]["database"]["status"] == "down"
        assert body["checks"]["spool"]["status"] == "up"
        status, body = get(port, "/readyz", "acme.localhost")
        assert status == 503
        assert body["status"] == "unavailable"
