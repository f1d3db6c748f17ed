"""Two middlewares for the status module.

`StatusSnapshotMiddleware` answers the status host's public documents straight from the
published snapshot, before sessions, users, CSRF or URL routing run: like WhiteNoise for
static files, and for the same reason (it must not need the database, and it must be cheap
when everyone reloads the page at once). Anything it does not find goes on to the status
URLconf (subscription forms, the 503 when nothing was ever published).

`ServerErrorCounterMiddleware` counts management-interface requests and their 5xx answers
per minute for the Management Interface signal. See `RequestCounter` for why it counts in
memory and writes to PostgreSQL once a minute.
"""

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.http.request import split_domain_port
from django.utils import timezone
from django.utils.csp import build_policy
from django.utils.http import parse_http_date_safe

from accounts.middleware import request_host
from status.snapshot import Snapshot, SnapshotFile, current_snapshot

log = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], HttpResponse]
SHORT_CACHE = "public, max-age=30, stale-while-revalidate=60"
LONG_CACHE = "public, max-age=31536000, immutable"


def status_host() -> str:
    return f"{settings.STATUS_SUBDOMAIN}.{settings.BASE_DOMAIN}"


class StatusSnapshotMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.host = status_host()
        # Later middlewares (CSP, X-Frame-Options) never see these responses; add their headers.
        self.policy = build_policy(settings.SECURE_CSP) if settings.SECURE_CSP else ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD") or request_host(request) != self.host:
            return self.get_response(request)
        snapshot = current_snapshot()
        entry = snapshot.lookup(request.path_info) if snapshot else None
        if entry is None:
            return self.get_response(request)
        return self.serve(request, snapshot, entry)

    def serve(self, request: HttpRequest, snapshot: Snapshot, entry: SnapshotFile) -> HttpResponse:
        gzipped = entry.gzip_path is not None and "gzip" in request.headers.get(
            "Accept-Encoding", ""
        )
        etag = f'"{entry.etag}-gzip"' if gzipped else f'"{entry.etag}"'
        headers = {
            "ETag": etag,
            "Last-Modified": snapshot.last_modified,
            "Cache-Control": LONG_CACHE if entry.immutable else SHORT_CACHE,
            "Vary": "Accept-Encoding",
            "X-Frame-Options": "DENY",
        }
        if self.policy:
            headers["Content-Security-Policy"] = self.policy
        if entry.cors:
            headers["Access-Control-Allow-Origin"] = "*"
        if not_modified(request, etag, snapshot):
            response = HttpResponseNotModified()
            for name, value in headers.items():
                response[name] = value
            return response
        body = snapshot.read(entry.gzip_path if gzipped else entry.path)
        response = HttpResponse(b"" if request.method == "HEAD" else body, headers=headers)
        response["Content-Type"] = entry.content_type
        response["Content-Length"] = str(len(body))
        if gzipped:
            response["Content-Encoding"] = "gzip"
        return response


def not_modified(request: HttpRequest, etag: str, snapshot: Snapshot) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    return since is not None and int(snapshot.published_at.timestamp()) <= since


class RequestCounter:
    """Requests and 5xx answers per minute, counted in memory, summed in PostgreSQL.

    Why not per request in the database: that would add a write to every request and fail
    exactly when the database does. Why not the cache: the default cache is per process, so
    each gunicorn worker would see only its own share. So each process counts in a dict (no
    I/O) and adds its finished minutes to `status_requestminute` with one upsert the first
    time it answers a request in a later minute. A failed write keeps the counts for the next
    minute, for up to an hour.
    """

    KEEP_MINUTES = 60

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.minutes: dict[datetime, list[int]] = {}

    def count(self, status_code: int, now: datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        with self.lock:
            counts = self.minutes.setdefault(minute, [0, 0])
            counts[0] += 1
            counts[1] += status_code >= 500
            finished = [m for m in self.minutes if m < minute]
        if finished:
            self.flush(minute)

    def flush(self, current_minute: datetime) -> None:
        with self.lock:
            finished = {m: c for m, c in self.minutes.items() if m < current_minute}
            for minute in finished:
                del self.minutes[minute]
        if not finished:
            return
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(
                    # Qualified: an account request leaves only its own schema on the path.
                    "INSERT INTO public.status_requestminute (minute, requests, server_errors) "
                    "VALUES (%s, %s, %s) ON CONFLICT (minute) DO UPDATE SET "
                    "requests = status_requestminute.requests + EXCLUDED.requests, "
                    "server_errors = status_requestminute.server_errors + EXCLUDED.server_errors",
                    [(minute, req, err) for minute, (req, err) in finished.items()],
                )
        except Exception as error:
            log.warning("could not store request counts: %s", error)
            oldest = current_minute.timestamp() - self.KEEP_MINUTES * 60
            with self.lock:
                for minute, (req, err) in finished.items():
                    if minute.timestamp() >= oldest:
                        counts = self.minutes.setdefault(minute, [0, 0])
                        counts[0] += req
                        counts[1] += err


request_counter = RequestCounter()


class ServerErrorCounterMiddleware:
    """Counts every answer of the dashboards, staff console and API; not the status host."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.host = status_host()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # The raw header: a host Django refused has already been answered with a 400.
        host, _port = split_domain_port(request.META.get("HTTP_HOST", ""))
        if host != self.host:
            request_counter.count(response.status_code, timezone.now())
        return response
