"""The Atom and RSS history feeds, read by a real feed parser."""

import feedparser
import pytest

pytestmark = pytest.mark.django_db


def test_the_atom_feed_parses_and_lists_the_2015_incident(demo, publish, status_client):
    publish()
    response = status_client.get("/history.atom")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.title == "Ferry Status - Incident History"
    [entry] = feed.entries
    assert entry.title == "Extended outage since 11:41 pm EDT"
    assert entry.link.startswith("http://status.localhost:8000/incidents/")
    assert entry.published_parsed[:5] == (2015, 4, 28, 3, 41)
    assert "We&#x27;ve been monitoring" in entry.summary or "We've been monitoring" in entry.summary
    assert "<strong>Resolved</strong>" in entry.summary


def test_the_rss_feed_parses_too(demo, publish, status_client):
    publish()
    response = status_client.get("/history.rss")
    assert response["Content-Type"] == "application/rss+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "rss20"
    assert [entry.title for entry in feed.entries] == ["Extended outage since 11:41 pm EDT"]
