"""Publishing the snapshot and serving the status host from it."""

import os

import pytest
from django.test import Client

from status import actions
from status.snapshot import current_snapshot

pytestmark = pytest.mark.django_db


def test_publishing_swaps_the_current_link_to_a_complete_new_version(demo, publish, snapshot_dir):
    first = publish()
    second = publish()
    assert first != second
    assert os.readlink(snapshot_dir / "current") == f"versions/{second.name}"
    assert (second / "manifest.json").exists()
    assert (first / "manifest.json").exists()  # kept a while for requests still reading it
    assert current_snapshot().version == f"versions/{second.name}"


def test_a_staff_write_publishes_after_the_commit(demo, snapshot_dir, status_client, committed):
    with committed():
        actions.open_incident(
            name="Queue stuck", status="identified", impact="minor", body="On it."
        )
    assert b"Queue stuck" in status_client.get("/").content


def test_a_write_publishes_nothing_until_it_commits(demo, publish, status_client):
    published = publish()
    actions.open_incident(name="Never committed", status="identified", impact="minor", body="x")
    assert current_snapshot().version == f"versions/{published.name}"
    assert b"Never committed" not in status_client.get("/").content


def test_the_status_host_answers_503_before_anything_is_published(db, status_client):
    response = status_client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert b"not published yet" in response.content


def test_the_page_shows_components_uptime_and_the_weighting(demo, publish, status_client):
    publish()
    response = status_client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "All Systems Operational" in page
    assert "Email Sending" in page
    assert page.count('<li class="d-') == 6 * 90
    assert "partial outage at 30 %" in page
    assert "UTC" in page


def test_history_and_incident_pages_show_the_postmortem(demo, publish, status_client):
    publish()
    history = status_client.get("/history").content.decode()
    assert "April 2015" in history
    code = demo["email-sending"].incidents.get().code
    assert f'href="/incidents/{code}"' in history
    page = status_client.get(f"/incidents/{code}").content.decode()
    assert "Postmortem" in page
    assert "8.5 TB installation of FoundationDB" in page
    assert "Apr 28, 2015 - 03:41 UTC" in page
    assert status_client.get("/history/").status_code == 200


def test_unknown_paths_are_404(demo, publish, status_client):
    publish()
    assert status_client.get("/incidents/nope").status_code == 404


def test_responses_carry_validators_and_answer_304(demo, publish, status_client):
    publish()
    response = status_client.get("/api/v2/summary.json")
    assert response["Cache-Control"] == "public, max-age=30, stale-while-revalidate=60"
    assert response["Vary"] == "Accept-Encoding"
    assert response["Last-Modified"]
    again = status_client.get("/api/v2/summary.json", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    # The same content published again keeps its ETag.
    publish()
    assert status_client.get("/api/v2/summary.json")["ETag"] == response["ETag"]


def test_gzip_is_served_to_clients_that_ask(demo, publish, status_client):
    import gzip

    publish()
    plain = status_client.get("/")
    zipped = status_client.get("/", HTTP_ACCEPT_ENCODING="gzip, br")
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert zipped["ETag"] != plain["ETag"]


def test_the_snapshot_is_served_without_touching_the_database(
    demo, publish, status_client, django_assert_num_queries
):
    publish()
    with django_assert_num_queries(0):
        for path in ("/", "/history", "/history.atom", "/api/v2/summary.json"):
            assert status_client.get(path).status_code == 200


def test_other_hosts_are_not_answered_from_the_snapshot(demo, publish):
    publish()
    assert Client(HTTP_HOST="localhost").get("/api/v2/summary.json").status_code == 404
