"""The status page with its PostgreSQL server stopped, and after the server is back.

The status host runs under gunicorn against a real PostgreSQL server; staff publish an
incident through the actions they use, then the server is shut down (`pg_ctl stop -m fast`,
as in the 2015 outage). Everything public on the status host — the page, history, incident
page, Atom and RSS feeds and the Statuspage v2 JSON API — must answer 200 with the last
published snapshot, exactly as before. What needs the database (subscribing) answers 503.
After the server starts again, the same processes recover: subscribing works, and the next
update staff publish is what the page shows.
"""

import json
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import feedparser
import pytest

pytestmark = pytest.mark.slow

PUBLISH = """
from status import actions
from status.models import Component, Incident
from django.core.management import call_command
if %(first)r:
    call_command("load_status_demo", verbosity=0)
    web = Component.objects.get(key="management-interface")
    actions.open_incident(name="Database server stopped", status="identified", impact="critical",
                          body="PostgreSQL is down. Data collection keeps accepting.",
                          component_statuses={web: "major_outage"})
else:
    incident = Incident.objects.get(name="Database server stopped")
    actions.post_update(incident, status="resolved", body="PostgreSQL is back.",
                        component_statuses={Component.objects.get(key="management-interface"):
                                            "operational"})
"""

PUBLIC = [
    "/", "/history", "/history.atom", "/history.rss", "/readyz",
    "/api/v2/summary.json", "/api/v2/status.json", "/api/v2/components.json",
    "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json",
    "/api/v2/scheduled-maintenances.json", "/api/v2/scheduled-maintenances/upcoming.json",
    "/api/v2/scheduled-maintenances/active.json",
]  # fmt: skip


def fetch(port: int, path: str) -> tuple[int, dict, bytes]:
    request = Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "status.localhost"})
    try:
        with urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        return error.code, dict(error.headers), error.read()


def answers(port: int, paths: list[str]) -> dict[str, tuple[int, bytes]]:
    return {path: (status, body) for path in paths for status, _, body in [fetch(port, path)]}


def test_the_status_host_answers_from_its_snapshot_while_postgresql_is_stopped(
    drill_site, tmp_path
):
    ferry = drill_site.ferry(tmp_path, {"STATUS_SNAPSHOT_DIR": str(tmp_path / "status")})
    ferry.manage("shell", "-c", PUBLISH % {"first": True})
    try:
        ferry.start_web(workers=2)
        summary = json.loads(fetch(ferry.port, "/api/v2/summary.json")[2])
        [incident] = summary["incidents"]
        pages = [*PUBLIC, f"/incidents/{incident['id']}"]
        before = answers(ferry.port, pages)
        assert {path: status for path, (status, _) in before.items()} == dict.fromkeys(pages, 200)
        assert fetch(ferry.port, "/subscribe/")[0] == 200

        drill_site.cluster.stop()
        during = answers(ferry.port, pages)
        subscribe_during = fetch(ferry.port, "/subscribe/")
        drill_site.cluster.start()

        # The last published snapshot, unchanged, for everything public; 503 for the rest.
        assert {path: status for path, (status, _) in during.items()} == dict.fromkeys(pages, 200)
        changed = [path for path in pages if during[path][1] != before[path][1]]
        assert changed in ([], ["/readyz"]), changed
        assert json.loads(during["/api/v2/summary.json"][1])["status"]["indicator"] == "critical"
        feeds = [feedparser.parse(during[feed][1]) for feed in ("/history.atom", "/history.rss")]
        assert all("Database server stopped" in [e.title for e in f.entries] for f in feeds)
        assert b"Data collection keeps accepting" in during[f"/incidents/{incident['id']}"][1]
        assert subscribe_during[0] == 503
        assert subscribe_during[1]["Retry-After"] == "30"

        # PostgreSQL is back: the same processes use it again, and staff's next update shows.
        assert fetch(ferry.port, "/subscribe/")[0] == 200
        ferry.manage("shell", "-c", PUBLISH % {"first": False})
        summary = json.loads(fetch(ferry.port, "/api/v2/summary.json")[2])
        assert summary["status"]["indicator"] == "none"
        assert summary["incidents"] == []
        assert b"PostgreSQL is back." in fetch(ferry.port, f"/incidents/{incident['id']}")[2]
    finally:
        ferry.stop()
        drill_site.cluster.start()  # running for the drills after this one, whatever happened
