"""The Atom and RSS history feeds: one entry per incident or maintenance, newest first."""

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.feedgenerator import Atom1Feed, Rss201rev2Feed, SyndicationFeed

from status.documents import status_page_url
from status.models import Incident

FEED_LENGTH = 25


def _feed(feed_class: type[SyndicationFeed], incidents: list[Incident], path: str) -> bytes:
    feed = feed_class(
        title=f"{settings.STATUS_PAGE_NAME} Status - Incident History",
        link=status_page_url("/"),
        description=f"Statuspage incident history for {settings.STATUS_PAGE_NAME}",
        feed_url=status_page_url(path),
        language="en",
        feed_guid=status_page_url(path),
    )
    host = f"{settings.STATUS_SUBDOMAIN}.{settings.BASE_DOMAIN}"
    for incident in incidents[:FEED_LENGTH]:
        timeline = incident.timeline()
        feed.add_item(
            title=incident.name,
            link=status_page_url(f"/incidents/{incident.code}"),
            description=render_to_string("status/feed_entry.html", {"incident": incident}),
            unique_id=f"tag:{host},2005:Incident/{incident.code}",
            unique_id_is_permalink=False,
            pubdate=incident.created_at,
            updateddate=max([incident.updated_at, *[u.updated_at for u in timeline]]),
        )
    return feed.writeString("utf-8").encode()


def atom_feed(incidents: list[Incident]) -> bytes:
    return _feed(Atom1Feed, incidents, "/history.atom")


def rss_feed(incidents: list[Incident]) -> bytes:
    return _feed(Rss201rev2Feed, incidents, "/history.rss")
