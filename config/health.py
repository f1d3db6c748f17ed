"""`/healthz` and `/readyz` on every host, answered before routing (no Domain lookup).

- `/healthz`: the process is alive and answers. Never touches PostgreSQL or the spool.
- `/readyz`: what this host needs to do its work, each check named in the JSON body.
  The database (a `SELECT 1` with a short timeout), the spool (it opens and answers a
  query; the file system has room) and the drain lag (the oldest waiting item's age).

Which failures make a host not ready (503) follows what it serves. An account's host needs
PostgreSQL; the public host is ingestion's front door, which must keep accepting while
PostgreSQL is down (that is the whole point of the spool), so there a database outage is
reported in the body but the answer stays 200 while the spool is writable; the status host
needs only its published snapshot. A drain lag over `READYZ_MAX_DRAIN_LAG_SECONDS` is
reported as `lagging` and never makes a node unready: taking web nodes out of a load balancer
does not make the drain faster.
"""

import os
import shutil
from collections.abc import Callable

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port

HEALTH_PATHS = ("/healthz", "/readyz")
# Below this much free space the spool cannot be trusted to take a batch.
MIN_SPOOL_FREE_BYTES = 16 * 1024 * 1024


def json_response(body: dict, status: int = 200) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"status": "up"}
    except Exception as error:  # any failure means "not usable", and says why
        connection.close()
        return {"status": "down", "error": f"{type(error).__name__}: {error}"[:300]}


def check_spool() -> dict:
    from ingest.spool import get_spool

    try:
        spool = get_spool()
        waiting = spool.pending_count()
        free = shutil.disk_usage(spool.path.parent).free
    except Exception as error:
        return {"status": "down", "error": f"{type(error).__name__}: {error}"[:300]}
    if free < MIN_SPOOL_FREE_BYTES:
        return {"status": "down", "error": f"{free} bytes free", "waiting": waiting}
    return {"status": "up", "waiting": waiting, "free_bytes": free}


def check_drain_lag() -> dict:
    from ingest.spool import get_spool

    try:
        backlog = get_spool().backlog()
    except Exception as error:
        return {"status": "unknown", "error": f"{type(error).__name__}: {error}"[:300]}
    oldest = max((entry.oldest_age_seconds for entry in backlog), default=0.0)
    limit = settings.READYZ_MAX_DRAIN_LAG_SECONDS
    return {"status": "lagging" if oldest > limit else "ok", "oldest_seconds": round(oldest, 1)}


def check_snapshot() -> dict:
    from status.snapshot import current_snapshot

    return {"status": "up" if current_snapshot() is not None else "missing"}


class HealthMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.status_host = f"{settings.STATUS_SUBDOMAIN}.{settings.BASE_DOMAIN}"
        self.public_hosts = {settings.BASE_DOMAIN, "127.0.0.1", "[::1]", "localhost"}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in HEALTH_PATHS:
            return self.get_response(request)
        if request.path_info == "/healthz":
            return json_response({"status": "ok", "pid": os.getpid()})
        host, _port = split_domain_port(request.get_host())
        return self.readiness(host)

    def readiness(self, host: str) -> HttpResponse:
        if host == self.status_host:
            checks = {"snapshot": check_snapshot()}
            ready = checks["snapshot"]["status"] == "up"
        else:
            checks = {
                "database": check_database(),
                "spool": check_spool(),
                "drain_lag": check_drain_lag(),
            }
            needed = ["spool"] if host in self.public_hosts else ["database", "spool"]
            ready = all(checks[name]["status"] == "up" for name in needed)
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        return json_response(body, status=200 if ready else 503)
