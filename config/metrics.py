"""Prometheus metrics at `/metrics`, right across gunicorn workers and worker processes.

prometheus_client's multiprocess mode: every process writes its counters and histograms to
files in `PROMETHEUS_MULTIPROC_DIR` (set by the settings before anything imports the client),
and a scrape adds them up. No Redis, no push gateway. What is a state rather than a count
(the spool's depth and oldest item per account, the drain's recent rate) is read at scrape
time from the spool by `SpoolCollector`, so no process has to keep a gauge up to date.

Other apps count through the functions below (`count_emails_sent`, `time_segment_recompute`)
rather than touching prometheus_client themselves.

`/metrics` answers staff (a session on the public host) or a scraper sending
`Authorization: Bearer <METRICS_TOKEN>`; everyone else gets 404 or the staff login.
"""

import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from accounts.middleware import PUBLIC_SIDE
from config.processes import alive

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

http_requests = Counter(
    "ferry_http_requests", "HTTP requests answered, by side, route and status.",
    ["side", "route", "method", "status"],
)  # fmt: skip
http_duration = Histogram(
    "ferry_http_request_duration_seconds", "Time to answer a request, by side and route.",
    ["side", "route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
emails_sent = Counter("ferry_emails_sent", "Emails handed to the mail server, by kind.", ["kind"])
segment_recompute = Histogram(
    "ferry_segment_recompute_seconds", "Time to recompute a segment for everyone.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)  # fmt: skip


def count_emails_sent(kind: str, count: int = 1) -> None:
    """Count emails that left Ferry (`kind`: status, broadcast, transactional, ...)."""
    emails_sent.labels(kind=kind).inc(count)


@contextmanager
def time_segment_recompute() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        segment_recompute.observe(time.perf_counter() - started)


def route_of(request: HttpRequest, response: HttpResponse) -> str:
    """A bounded label: the URL pattern, never the path (ids would make endless series)."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.route or "/"
    if request.path_info.startswith(settings.STATIC_URL):
        return "static"
    if request.path_info in ("/healthz", "/readyz"):
        return request.path_info
    return "snapshot" if getattr(request, "side", None) is None else "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        side = getattr(request, "side", None) or "none"
        route = route_of(request, response)
        method = request.method if request.method in HTTP_METHODS else "other"
        http_requests.labels(side, route, method, str(response.status_code)).inc()
        http_duration.labels(side, route).observe(time.perf_counter() - started)
        return response


class SpoolCollector:
    """The spool's state per account at scrape time (accounts by id: no database needed)."""

    def collect(self):
        from ingest.spool import get_spool

        depth = GaugeMetricFamily(
            "ferry_spool_items", "Accepted items waiting in this node's spool.", labels=["account"]
        )
        oldest = GaugeMetricFamily(
            "ferry_spool_oldest_item_age_seconds", "Age of the oldest waiting item.",
            labels=["account"],
        )  # fmt: skip
        rate = GaugeMetricFamily(
            "ferry_drain_applied_items_per_second",
            "Items applied by the drain per second, over the last five minutes.",
            labels=["account"],
        )
        try:
            backlog = get_spool().backlog()
        except Exception:  # a broken spool must not break the scrape; readyz says why
            backlog = []
        for entry in backlog:
            depth.add_metric([entry.account], entry.waiting)
            oldest.add_metric([entry.account], entry.oldest_age_seconds)
            rate.add_metric([entry.account], entry.applied_per_second)
        yield from (depth, oldest, rate)


def scrape() -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(SpoolCollector())
    return generate_latest(registry)


def has_metrics_token(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if getattr(request, "side", None) != PUBLIC_SIDE:
        raise Http404
    if not has_metrics_token(request):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), "staff:login")
        if not request.user.is_staff:
            return HttpResponse("Staff only.", status=403, content_type="text/plain")
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)


def forget_dead_processes(directory: Path) -> None:
    """Remove the files of processes that no longer run (at server start: the docs' advice
    is to wipe the directory, but other live processes may share it)."""
    for path in directory.glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)
