"""Prometheus metrics: protected, and right across gunicorn workers and worker processes."""

import subprocess
import sys
from urllib.request import Request, urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.metrics import scrape
from tests.conftest import BASE_DIR, client_for, gunicorn
from tests.segments.conftest import PLAN_IS_PRO, rule_segment

pytestmark = pytest.mark.django_db


def samples(text: str, name: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_staff_read_the_metrics(cast):
    response = client_for(None, cast.stella).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"ferry_http_requests_total" in response.content


def test_a_scraper_reads_them_with_the_token(cast, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    client = client_for(None)
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secreT")
    assert wrong.status_code == 302
    assert wrong["Location"].startswith("/staff/login/")


def test_nobody_else_reads_them(cast, settings):
    settings.METRICS_TOKEN = ""
    assert client_for(None, cast.paul).get("/metrics").status_code == 403
    assert client_for(None).get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 302
    assert client_for(cast.acme, cast.alice).get("/metrics").status_code == 404
    # The status host serves only its published snapshot (503 until the first is published).
    on_status_host = client_for(cast.acme, cast.alice).get("/metrics", HTTP_HOST="status.localhost")
    assert on_status_host.status_code in (404, 503)
    assert b"ferry_" not in on_status_host.content


def test_requests_are_counted_by_route_pattern_not_path(cast):
    client = client_for(cast.acme, cast.alice)
    before = samples(scrape().decode(), "ferry_http_requests_total")
    client.get("/people/123456/")
    client.get("/people/654321/")
    after = samples(scrape().decode(), "ferry_http_requests_total")
    key = (("method", "GET"), ("route", "people/<int:person_id>/"), ("side", "account"),
           ("status", "404"))  # fmt: skip
    assert after[key] - before.get(key, 0) == 2
    assert not any("123456" in str(labels) for labels in after)


def test_spool_depth_and_oldest_age_per_account(cast, spool):
    spool.append(str(cast.acme.pk), ['{"op": "delete"}'] * 3)
    spool.append(str(cast.globex.pk), ['{"op": "delete"}'])
    text = scrape().decode()
    depth = samples(text, "ferry_spool_items")
    assert depth[(("account", str(cast.acme.pk)),)] == 3
    assert depth[(("account", str(cast.globex.pk)),)] == 1
    assert (("account", str(cast.acme.pk)),) in samples(text, "ferry_spool_oldest_item_age_seconds")


def test_segment_recompute_times_are_observed(cast):
    before = samples(scrape().decode(), "ferry_segment_recompute_seconds_count").get((), 0)
    with cast.acme:
        rule_segment("Pro", PLAN_IS_PRO)
    after = samples(scrape().decode(), "ferry_segment_recompute_seconds_count")[()]
    assert after == before + 1


@pytest.mark.slow
def test_counts_add_up_across_gunicorn_workers_and_other_processes(test_database_url, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": "t0ken"}
    with gunicorn(test_database_url, workers=3, env=env) as port:
        for _ in range(30):
            with urlopen(Request(f"http://127.0.0.1:{port}/healthz")) as answer:
                assert answer.status == 200
        # A separate process (a worker command) counts into the same directory.
        subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); "
             "from config.metrics import count_emails_sent; count_emails_sent('test', 3)"],
            cwd=BASE_DIR, check=True, timeout=60,
            env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings",
                 "PROMETHEUS_MULTIPROC_DIR": str(directory), "DATABASE_URL": test_database_url},
        )  # fmt: skip
        request = Request(f"http://127.0.0.1:{port}/metrics",
                          headers={"Authorization": "Bearer t0ken"})  # fmt: skip
        with urlopen(request) as answer:
            text = answer.read().decode()
    pids = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
    assert len(pids) >= 2  # several workers wrote, and the scrape added them up
    health = samples(text, "ferry_http_requests_total")
    key = (("method", "GET"), ("route", "/healthz"), ("side", "none"), ("status", "200"))
    assert health[key] == 30
    assert samples(text, "ferry_emails_sent_total")[(("kind", "test"),)] == 3


def test_broadcast_emails_are_counted_as_they_leave(cast, readers, mailbox):
    from tests.messaging.conftest import make_broadcast, make_segment
    from tests.messaging.test_sending import schedule, send_all

    key = (("kind", "broadcast"),)
    before = samples(scrape().decode(), "ferry_emails_sent_total").get(key, 0)
    schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    assert send_all(cast.acme) == 3
    assert len(mailbox.received) == 3
    assert samples(scrape().decode(), "ferry_emails_sent_total")[key] == before + 3
