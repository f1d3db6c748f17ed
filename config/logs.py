"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to.

A request's id comes from its `X-Request-ID` header when a proxy already set a sane one, else
it is made here; it goes back in the response's `X-Request-ID` and onto every log record
written while the request runs (a context variable, so threads and workers never mix them).
"""

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson
from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from outside are echoed into logs and headers: letters, digits and - _ . : only.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
NO_REQUEST = "-"

current_request_id: ContextVar[str] = ContextVar("current_request_id", default=NO_REQUEST)
access_log = logging.getLogger("ferry.request")

# Attributes every LogRecord has; anything else was passed in `extra` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", current_request_id.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def request_id_for(request: HttpRequest) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    """First of all middleware: names the request, and logs one line when it is answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.id = request_id_for(request)
        token = current_request_id.set(request.id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request.id
            account = getattr(request, "account", None)
            access_log.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={
                    "method": request.method, "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "account": account.slug if account else None,
                },
            )  # fmt: skip
            return response
        finally:
            current_request_id.reset(token)
