"""The tracker script on a customer's page, served from another origin, in real Chromium."""

import json
import sqlite3
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CUSTOMER_PAGE = """<!doctype html>
<html><head><title>Initech pricing</title>
<script src="http://localhost:{port}/static/ferry/tracker.js" data-key="{key}"
        data-endpoint="http://localhost:{port}"></script></head>
<body>
  <button id="signup" onclick="ferry.identify('user-77', {{plan: 'pro'}}); ferry.track('Signed Up', {{plan: 'pro'}})">Sign up</button>
  <button id="upgrade" onclick="ferry.track('Upgraded', {{seats: 5}})">Upgrade</button>
</body></html>
"""


@pytest.fixture
def customer_site(tmp_path, ferry_server, committed_keys) -> Iterator[str]:
    (tmp_path / "index.html").write_text(
        CUSTOMER_PAGE.format(port=ferry_server, key=committed_keys["acme"].tracker_key)
    )
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def spooled(spool_path, since: int) -> list[tuple[str, dict]]:
    with sqlite3.connect(spool_path) as db:
        rows = db.execute("SELECT account, payload FROM items WHERE id > ? ORDER BY id", (since,))
        return [(account, json.loads(payload)) for account, payload in rows]


def last_item_id(spool_path) -> int:
    with sqlite3.connect(spool_path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY)")
        return db.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]


def wait_for_items(page: Page, spool_path, since: int, count: int) -> list[tuple[str, dict]]:
    for _ in range(100):
        items = spooled(spool_path, since)
        if len(items) >= count:
            return items
        page.wait_for_timeout(100)
    return spooled(spool_path, since)


def test_the_tracker_sends_page_views_identifies_and_events_across_origins(
    page, customer_site, cast_ids, ferry_server_spool
):
    since = last_item_id(ferry_server_spool)
    page.goto(customer_site)
    page.click("#signup")
    items = wait_for_items(page, ferry_server_spool, since, 3)
    assert {account for account, _ in items} == {cast_ids["acme"]}
    kinds = [(item["op"], item.get("name")) for _, item in items]
    assert kinds == [("event", "/index.html"), ("identify", None), ("event", "Signed Up")]
    assert items[1][1]["person"] == {"id": "user-77"}
    assert items[2][1]["person"] == {"id": "user-77"}
    assert items[0][1]["kind"] == "page"


def test_the_tracker_queues_while_ferry_is_unreachable_and_sends_later(
    page, customer_site, cast_ids, ferry_server_spool
):
    page.route("**/track/browser", lambda route: route.abort("internetdisconnected"))
    since = last_item_id(ferry_server_spool)
    page.goto(customer_site)
    page.click("#upgrade")
    page.wait_for_function("JSON.parse(localStorage.getItem('ferry_queue') || '[]').length === 2")
    assert spooled(ferry_server_spool, since) == []

    page.unroute("**/track/browser")
    page.evaluate("window.dispatchEvent(new Event('online'))")
    items = wait_for_items(page, ferry_server_spool, since, 2)
    assert [item["name"] for _, item in items] == ["/index.html", "Upgraded"]
    expect(page.locator("body")).to_be_visible()
    page.wait_for_function("JSON.parse(localStorage.getItem('ferry_queue') || '[]').length === 0")


def test_a_wrong_tracker_key_is_refused(page, ferry_server):
    response = page.request.post(
        f"http://localhost:{ferry_server}/track/browser",
        data=json.dumps(
            {"key": "pk_nope", "batch": [{"type": "track", "userId": "u", "event": "x"}]}
        ),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status == 401
    assert response.headers["access-control-allow-origin"] == "*"
