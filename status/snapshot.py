"""The status snapshot: every public document of the status host, published to disk.

Publishing renders the page, history, incident pages, feeds and `/api/v2/*.json` into a new
directory `versions/<version>/`, then points the `current` symlink at it with one
`os.replace`, so a reader sees the old snapshot or the new one, never half of either.
Serving reads only these files: the status host keeps answering while PostgreSQL is down.

    <STATUS_SNAPSHOT_DIR>/current -> versions/20260101T120000123456Z-4242
    <STATUS_SNAPSHOT_DIR>/versions/<version>/manifest.json   URL path -> file, type, ETag
    <STATUS_SNAPSHOT_DIR>/versions/<version>/files/...       the documents (+ .gz twins)
    <STATUS_SNAPSHOT_DIR>/versions/<version>/banner.json     dashboards' banner (not served)
"""

import gzip
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.http import http_date

from status.documents import Documents, status_page_url
from status.feeds import atom_feed, rss_feed
from status.models import Component, Incident
from status.uptime import WEIGHTING_NOTE, incidents_by_component_day, uptime_bars

log = logging.getLogger(__name__)

# Serialises publishers across processes, so an older render never replaces a newer one.
PUBLISH_LOCK = 0x5747_5354  # "STST"
KEEP_VERSIONS = 5
# An old version stays this long after being replaced, for requests still reading it.
PRUNE_AFTER = timedelta(minutes=5)
PAST_DAYS = 7

HTML = "text/html; charset=utf-8"
JSON = "application/json"
ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"


@dataclass
class Document:
    path: str  # the URL path it answers
    body: bytes
    content_type: str
    cors: bool = False
    immutable: bool = False


def snapshot_root() -> Path:
    return Path(settings.STATUS_SNAPSHOT_DIR)


# --- Building ----------------------------------------------------------------------------


def _asset(name: str, source: str) -> tuple[str, bytes]:
    body = Path(finders.find(source)).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:12]
    stem, dot, ext = name.rpartition(".")
    return f"/assets/{stem}.{digest}{dot}{ext}", body


def _json(data: dict) -> bytes:
    # Escaping <, > and & keeps the JSON inert if some client pastes it into HTML.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def build_documents(now: datetime) -> tuple[list[Document], dict]:
    components = list(Component.objects.select_related("group"))
    incidents = list(Incident.objects.with_timeline().order_by("-started_at", "-pk"))
    documents = Documents(components, incidents)
    css_url, css = _asset("status.css", "status/status.css")
    logo_url, logo = _asset("ferry.svg", "img/ferry.svg")

    by_day = incidents_by_component_day(
        [i for i in incidents if not i.is_maintenance and i.components.all()], now
    )
    bars = {bar.component.pk: bar for bar in uptime_bars(components, now, by_day)}
    groups = [c for c in components if c.is_group or c.group_id is None]
    shown = [
        {
            "component": c,
            "bar": bars[c.pk],
            "children": [
                {"component": child, "bar": bars[child.pk]} for child in documents.children(c)
            ],
        }
        for c in groups
    ]
    history = [i for i in incidents if i.is_finished]
    today = now.date()
    past_days = [
        (day, [i for i in history if i.started_at.date() == day and not i.is_maintenance])
        for day in (today - timedelta(days=n) for n in range(PAST_DAYS))
    ]
    context = {
        "page_name": settings.STATUS_PAGE_NAME,
        "page_url": status_page_url("/"),
        "css_url": css_url,
        "logo_url": logo_url,
        "status": documents.status,
        "components": shown,
        "active": [i for i in incidents if i.is_active],
        "upcoming": list(reversed([i for i in incidents if i.status == "scheduled"])),
        "past_days": past_days,
        "months": _by_month(history),
        "weighting_note": WEIGHTING_NOTE,
        "published_at": now,
        "updated_at": documents.updated_at,
    }
    result = [
        Document("/", render_to_string("status/page.html", context).encode(), HTML),
        Document("/history", render_to_string("status/history.html", context).encode(), HTML),
        Document("/history.atom", atom_feed(history + context["active"]), ATOM, cors=True),
        Document("/history.rss", rss_feed(history + context["active"]), RSS, cors=True),
        Document(css_url, css, "text/css; charset=utf-8", immutable=True),
        Document(logo_url, logo, "image/svg+xml", immutable=True),
    ]
    for incident in incidents:
        page = render_to_string("status/incident.html", context | {"incident": incident})
        result.append(Document(f"/incidents/{incident.code}", page.encode(), HTML))
    for name, data in documents.all().items():
        result.append(Document(f"/api/v2/{name}", _json(data), JSON, cors=True))
    return result, _banner(incidents)


def _by_month(incidents: list[Incident]) -> list[tuple[date, list[Incident]]]:
    months: dict[date, list[Incident]] = {}
    for incident in sorted(incidents, key=lambda i: i.started_at, reverse=True):
        months.setdefault(incident.started_at.date().replace(day=1), []).append(incident)
    return list(months.items())


def _banner(incidents: list[Incident]) -> dict:
    """What dashboards need for their banner: active notices and whom they concern."""
    return {
        "notices": [
            {
                "code": i.code,
                "name": i.name,
                "kind": i.kind,
                "status": i.get_status_display(),
                "impact": i.impact,
                "accounts": i.affected_accounts,
                "url": status_page_url(f"/incidents/{i.code}"),
                "until": f"{i.scheduled_until:%b %-d, %H:%M} UTC" if i.scheduled_until else "",
            }
            for i in incidents
            if i.is_active
        ]
    }


# --- Writing -----------------------------------------------------------------------------


def _file_name(path: str, content_type: str) -> str:
    if path == "/":
        return "index.html"
    name = path.strip("/")
    return f"{name}.html" if content_type == HTML else name


def write_snapshot(documents: list[Document], banner: dict, now: datetime) -> Path:
    root = snapshot_root()
    version = f"{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{os.getpid()}"
    directory = root / "versions" / version
    (directory / "files").mkdir(parents=True)
    manifest = {"published_at": now.isoformat(), "files": {}}
    for document in documents:
        name = _file_name(document.path, document.content_type)
        target = directory / "files" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(document.body)
        zipped = None
        if len(document.body) > 512 and not document.content_type.startswith("image/"):
            zipped = f"{name}.gz"
            (directory / "files" / zipped).write_bytes(gzip.compress(document.body, mtime=0))
        manifest["files"][document.path] = {
            "file": name,
            "gzip": zipped,
            "type": document.content_type,
            "etag": hashlib.sha256(document.body).hexdigest()[:24],
            "cors": document.cors,
            "immutable": document.immutable,
        }
    (directory / "banner.json").write_text(json.dumps(banner))
    # The manifest is written last: a version without one was never finished.
    (directory / "manifest.json").write_text(json.dumps(manifest))
    link = root / f".current-{version}"
    os.symlink(f"versions/{version}", link)
    os.replace(link, root / "current")
    _prune(root, keep=version)
    return directory


def _prune(root: Path, keep: str) -> None:
    versions = sorted((root / "versions").iterdir(), key=lambda p: p.name, reverse=True)
    cutoff = time.time() - PRUNE_AFTER.total_seconds()
    for old in versions[KEEP_VERSIONS:]:
        if old.name != keep and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)


def publish_snapshot() -> Path:
    """Render and publish everything from the database as it is now."""
    connection.set_schema_to_public()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PUBLISH_LOCK])
        now = timezone.now()
        documents, banner = build_documents(now)
        directory = write_snapshot(documents, banner, now)
    log.info("published status snapshot %s (%d documents)", directory.name, len(documents))
    return directory


_pending = threading.local()


def publish_after_commit() -> None:
    """Publish once the current transaction commits, however many writes it made.

    Every write registers a callback; the first to run after the commit publishes and the
    others find nothing left to do. A rolled-back transaction's callbacks never run, and
    the flag it leaves set only means the next commit publishes, which it would anyway.
    """
    _pending.publish = True
    transaction.on_commit(_publish_if_pending)


def _publish_if_pending() -> None:
    if not getattr(_pending, "publish", False):
        return
    _pending.publish = False
    # The write is committed whatever happens here; the worker republishes a missing
    # snapshot, so a full disk must not turn the staff member's request into a 500.
    try:
        publish_snapshot()
    except Exception:
        log.exception("publishing the status snapshot failed")


# --- Reading -----------------------------------------------------------------------------


@dataclass
class SnapshotFile:
    path: Path
    gzip_path: Path | None
    content_type: str
    etag: str
    cors: bool
    immutable: bool


class Snapshot:
    """One published version, read once per process and kept in memory while current."""

    def __init__(self, root: Path, version: str):
        self.version = version
        self.directory = root / version
        manifest = json.loads((self.directory / "manifest.json").read_text())
        self.published_at = datetime.fromisoformat(manifest["published_at"])
        self.last_modified = http_date(self.published_at.timestamp())
        files = self.directory / "files"
        self.files = {
            path: SnapshotFile(
                files / entry["file"],
                files / entry["gzip"] if entry["gzip"] else None,
                entry["type"],
                entry["etag"],
                entry["cors"],
                entry["immutable"],
            )
            for path, entry in manifest["files"].items()
        }
        self._bodies: dict[Path, bytes] = {}
        self._banner: dict | None = None

    def asset_urls(self) -> dict[str, str]:
        """The snapshot's stylesheet and logo, for pages rendered outside it."""
        urls = {}
        for path in self.files:
            if path.startswith("/assets/status."):
                urls["css_url"] = path
            elif path.startswith("/assets/ferry."):
                urls["logo_url"] = path
        return urls

    def lookup(self, path: str) -> SnapshotFile | None:
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        return self.files.get(path)

    def read(self, path: Path) -> bytes:
        body = self._bodies.get(path)
        if body is None:
            body = self._bodies[path] = path.read_bytes()
        return body

    @property
    def banner(self) -> dict:
        if self._banner is None:
            self._banner = json.loads((self.directory / "banner.json").read_text())
        return self._banner


_loaded: dict[Path, Snapshot] = {}


def current_snapshot() -> Snapshot | None:
    """The snapshot `current` points at, or None if nothing was ever published."""
    root = snapshot_root()
    try:
        version = os.readlink(root / "current")
    except OSError:
        return None
    cached = _loaded.get(root)
    if cached is not None and cached.version == version:
        return cached
    try:
        snapshot = Snapshot(root, version)
    except (OSError, ValueError, KeyError):
        log.exception("status snapshot %s is unreadable", version)
        return cached
    _loaded[root] = snapshot
    return snapshot
