"""Rate limits on the ingestion API: per credential, 429 with Retry-After, shared by every
worker of a node, and honoured by the client libraries (they retry)."""

import base64
import json
import math
import time
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from customerio import CustomerIO
from segment.analytics import Client as SegmentClient

from ingest import ratelimit
from tests.conftest import gunicorn
from tests.ingest.conftest import api_client, basic, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(settings, monkeypatch):
    """limit(rate, burst): this test's own limits (and bucket file, beside its spool), on a
    clock that stands still unless the test moves it (`limit.clock[0] += seconds`), so that
    a slow machine refills no token between two requests."""
    clock = [1_000_000.0]
    monkeypatch.setattr(ratelimit, "clock", lambda: clock[0])

    def set_limit(rate: int, burst: int) -> None:
        settings.INGEST_RATE_LIMIT_PER_SECOND, settings.INGEST_RATE_LIMIT_BURST = rate, burst

    set_limit.clock = clock
    yield set_limit
    ratelimit._limiters.clear()


def test_a_credential_over_its_burst_gets_429_with_retry_after(cast, spool, acme_key, limit):
    limit(1, 3)
    client = api_client(acme_key)
    answers = [send(client, "post", "/api/v1/events", {"name": f"e{n}"}) for n in range(5)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert refused["Retry-After"] == "1"
    assert refused["X-RateLimit-Limit"] == "3"
    assert refused["X-RateLimit-Remaining"] == "0"
    assert "Rate limit exceeded" in refused.json()["meta"]["error"]
    assert spool.pending_count() == 3  # nothing of a refused request was kept


def test_each_credential_has_its_own_bucket(cast, spool, acme_key, globex_key, limit):
    limit(1, 1)
    acme, globex = api_client(acme_key), api_client(globex_key)
    assert send(acme, "post", "/api/v1/events", {"name": "a"}).status_code == 200
    assert send(acme, "post", "/api/v1/events", {"name": "a"}).status_code == 429
    assert send(globex, "post", "/api/v1/events", {"name": "g"}).status_code == 200
    # The Segment write key of the same ApiKey is another credential with its own bucket.
    segment = send(api_client(), "post", "/v1/track", {"userId": "u", "event": "e"},
                   HTTP_AUTHORIZATION=basic(acme_key.write_key))  # fmt: skip
    assert segment.status_code == 200


def test_the_bucket_refills_at_the_rate(cast, spool, acme_key, limit):
    limit(20, 1)
    client = api_client(acme_key)
    assert send(client, "post", "/api/v1/events", {"name": "a"}).status_code == 200
    assert send(client, "post", "/api/v1/events", {"name": "a"}).status_code == 429
    limit.clock[0] += 0.1  # 20 a second: two tokens back, one kept (burst 1)
    assert send(client, "post", "/api/v1/events", {"name": "a"}).status_code == 200
    assert send(client, "post", "/api/v1/events", {"name": "a"}).status_code == 429


def test_bad_credentials_are_refused_before_any_bucket_is_made(cast, spool, acme_key, limit):
    limit(1, 1)
    for _ in range(3):
        response = send(api_client(), "post", "/api/v1/events", {"name": "x"},
                        HTTP_AUTHORIZATION=basic(acme_key.site_id, "wrong"))  # fmt: skip
        assert response.status_code == 401
    assert ratelimit.limiter().db.execute("SELECT count(*) FROM buckets").fetchone()[0] == 0


def test_a_broken_bucket_file_lets_requests_through(cast, spool, acme_key, limit, tmp_path):
    limit(1, 1)
    ratelimit._limiters[ratelimit.limiter().path] = ratelimit.RateLimiter(tmp_path)  # a directory
    client = api_client(acme_key)
    assert [send(client, "post", "/api/v1/events", {"name": "a"}).status_code
            for _ in range(3)] == [200, 200, 200]  # fmt: skip


def post_event(port: str, key) -> int:
    auth = base64.b64encode(f"{key.site_id}:{key.api_key}".encode()).decode()
    request = Request(
        f"http://127.0.0.1:{port}/api/v1/events", data=json.dumps({"name": "x"}).encode(),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json",
                 "Connection": "close"},
    )  # fmt: skip
    try:
        with urlopen(request) as answer:
            return answer.status
    except HTTPError as error:
        return error.code


@pytest.mark.slow
def test_every_worker_of_a_node_takes_from_the_same_bucket(
    test_database_url, committed_keys, tmp_path
):
    env = {"INGEST_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
           "INGEST_RATE_LIMIT_PER_SECOND": "1", "INGEST_RATE_LIMIT_BURST": "6"}  # fmt: skip
    with gunicorn(test_database_url, workers=3, env=env) as port:
        started = time.monotonic()
        answers = [post_event(port, committed_keys["acme"]) for _ in range(12)]
        elapsed = time.monotonic() - started
    # The burst, plus a token a second while the requests ran; a bucket per worker would
    # have let all 12 through (18 tokens).
    assert elapsed < 5, "too slow for the count to tell one bucket from three"
    assert 6 <= answers.count(200) <= 6 + math.ceil(elapsed)
    assert answers.count(429) == 12 - answers.count(200)


@pytest.mark.slow
def test_both_client_libraries_wait_and_retry_after_a_429(
    test_database_url, committed_keys, tls_files, tmp_path, monkeypatch, settings
):
    """customerio (urllib3 honours Retry-After on 429) and segment-analytics-python (it
    pauses its queue until Retry-After) deliver everything; nothing is lost or doubled."""
    spool_path = tmp_path / "spool.sqlite3"
    env = {"INGEST_SPOOL_PATH": str(spool_path), "INGEST_RATE_LIMIT_PER_SECOND": "2",
           "INGEST_RATE_LIMIT_BURST": "1"}  # fmt: skip
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files[3])
    key = committed_keys["acme"]
    with gunicorn(test_database_url, workers=1, env=env, tls=tls_files[:3]) as port:
        cio = CustomerIO(key.site_id, key.api_key, host="127.0.0.1", port=int(port), retries=3)
        for number in range(3):
            cio.track(customer_id="rl-1", name=f"event-{number}")
        segment = SegmentClient(write_key=key.write_key, host=f"https://127.0.0.1:{port}",
                                upload_size=1)  # fmt: skip
        for number in range(3):
            segment.track(user_id="rl-2", event=f"segment-{number}")
        segment.flush()
    settings.INGEST_SPOOL_PATH = spool_path
    from ingest import spool as spool_module

    spool_module._spools.clear()
    try:
        payloads = [json.loads(row[0]) for row in spool_module.get_spool().db.execute(
            "SELECT payload FROM items")]  # fmt: skip
    finally:
        spool_module._spools.clear()
    names = sorted(item.get("name") or item.get("event") or "" for item in payloads)
    assert len(payloads) == 6, names
