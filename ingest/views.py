"""The ingestion API: Customer.io Track v1/v2, the Segment spec and the browser tracker.

Every view validates the whole request first, then appends its items to the local spool in
one fsync'd transaction, then answers. Nothing here needs PostgreSQL to be up.
"""

import base64
import binascii
import logging
import sqlite3
import zlib
from collections.abc import Callable
from functools import wraps

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ingest import ratelimit, wire
from ingest.credentials import (
    Sender,
    digest,
    sender_for_track,
    sender_for_tracker,
    sender_for_write_key,
)
from ingest.spool import get_spool
from ingest.wire import WireError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 512 * 1024 + 1024  # the largest documented batch, plus envelope slack
MAX_GZIP_RATIO_BYTES = 4 * 1024 * 1024


class Refused(Exception):
    def __init__(
        self, status: int, message: str, errors: list[dict] | None = None, headers=None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []
        self.headers = headers or {}


def limit_rate(credential: str) -> None:
    """429 with Retry-After when this credential is over its rate (ingest/ratelimit.py)."""
    decision = ratelimit.check(credential)
    if decision is not None and not decision.allowed:
        raise Refused(
            429,
            f"Rate limit exceeded: at most {settings.INGEST_RATE_LIMIT_PER_SECOND} requests "
            f"a second per credential; retry after {decision.retry_after} s",
            headers={
                "Retry-After": str(decision.retry_after),
                "X-RateLimit-Limit": str(decision.limit),
                "X-RateLimit-Remaining": str(decision.remaining),
            },
        )


def error_response(status: int, message: str, errors: list[dict] | None = None) -> JsonResponse:
    # Customer.io's error shape (`meta.error`), plus every problem with the field it concerns.
    body = {"meta": {"error": message}, "errors": errors or []}
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = "5"
    return response


def api_view(*methods: str, cross_origin: bool = False) -> Callable:
    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if cross_origin and request.method == "OPTIONS":
                response = HttpResponse(status=204)
            elif request.method not in methods:
                response = error_response(405, f"Method {request.method} not allowed")
            else:
                try:
                    response = view(request, *args, **kwargs)
                except WireError as error:
                    response = error_response(400, str(error), [error.as_dict()])
                except Refused as refused:
                    response = error_response(refused.status, refused.message, refused.errors)
                    for header, value in refused.headers.items():
                        response[header] = value
            return cors(response) if cross_origin else response

        return wrapper

    return decorator


def cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = "86400"
    return response


def read_json(request: HttpRequest, limit: int = MAX_BODY_BYTES) -> object:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > limit:
        raise Refused(
            400, f"body: must be at most {limit} bytes", [{"field": "body", "message": "too large"}]
        )
    raw = request.body
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, MAX_GZIP_RATIO_BYTES)
        except zlib.error:
            raise WireError("body", "is not valid gzip") from None
    if len(raw) > limit:
        raise WireError("body", f"must be at most {limit} bytes")
    if not raw.strip():
        return {}
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise WireError("body", f"is not valid JSON ({error})") from None
    wire.refuse_nul(document, raw)
    return document


def basic_auth(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, _, password = decoded.partition(":")
    return username, password


def track_sender(request: HttpRequest) -> Sender:
    credentials = basic_auth(request)
    sender = sender_for_track(*credentials) if credentials and all(credentials) else None
    if sender is None:
        raise Refused(401, "Unauthorized request: use HTTP Basic with your site id and API key")
    limit_rate(f"track:{credentials[0]}")
    return sender


def segment_sender(request: HttpRequest, body: object) -> Sender:
    credentials = basic_auth(request)
    write_key = credentials[0] if credentials else None
    if not write_key and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        write_key = body["writeKey"]
    sender = sender_for_write_key(write_key) if write_key else None
    if sender is None:
        raise Refused(
            401, "Unauthorized request: send your write key as the Basic username or writeKey"
        )
    limit_rate(f"write:{digest(write_key)}")
    return sender


def spool(sender: Sender, items: list[dict]) -> None:
    if sender.credential:
        items = [{**item, "credential": sender.credential} for item in items]
    try:
        get_spool().append(sender.account, [orjson.dumps(item).decode() for item in items])
    except sqlite3.Error:
        # Full disk or a broken spool: say so. Answering success would lose the data.
        log.exception("spool append failed")
        raise Refused(503, "Ingestion is temporarily unavailable; retry later") from None


def accepted(extra: dict | None = None) -> JsonResponse:
    return JsonResponse(extra or {}, status=200)


# --- Customer.io Track API ----------------------------------------------------------------


@api_view("PUT", "DELETE")
def customer(request: HttpRequest, identifier: str) -> HttpResponse:
    sender = track_sender(request)
    if request.method == "DELETE":
        spool(sender, [wire.cio_delete(identifier)])
    else:
        spool(sender, [wire.cio_identify(identifier, read_json(request, wire.MAX_V1_BODY_BYTES))])
    return accepted()


@api_view("POST")
def customer_event(request: HttpRequest, identifier: str) -> HttpResponse:
    sender = track_sender(request)
    spool(sender, [wire.cio_event(identifier, read_json(request, wire.MAX_V1_BODY_BYTES))])
    return accepted()


@api_view("POST")
def anonymous_event(request: HttpRequest) -> HttpResponse:
    sender = track_sender(request)
    spool(sender, [wire.cio_event(None, read_json(request, wire.MAX_V1_BODY_BYTES))])
    return accepted()


@api_view("POST")
def v2_entity(request: HttpRequest) -> HttpResponse:
    sender = track_sender(request)
    spool(sender, [wire.cio_v2_operation(read_json(request, wire.MAX_V2_OPERATION_BYTES))])
    return accepted()


@api_view("POST")
def v2_batch(request: HttpRequest) -> HttpResponse:
    sender = track_sender(request)
    spool(sender, wire.cio_v2_batch(read_json(request, wire.MAX_V2_BATCH_BYTES)))
    return accepted()


# --- Segment spec -------------------------------------------------------------------------


@api_view("POST")
def segment_call(request: HttpRequest, kind: str) -> HttpResponse:
    body = read_json(request, wire.MAX_SEGMENT_CALL_BYTES)
    sender = segment_sender(request, body)
    spool(sender, wire.segment_message(body, kind=kind))
    return accepted()


@api_view("POST")
def segment_batch(request: HttpRequest) -> HttpResponse:
    body = read_json(request, wire.MAX_SEGMENT_BATCH_BYTES)
    sender = segment_sender(request, body)
    items, rejected = wire.segment_batch(body)
    # Like Segment: bad messages are reported and the rest kept, unless the client asks for
    # strict mode, where any bad message refuses the whole batch.
    if rejected and request.headers.get("X-Strict-Mode") == "1":
        raise Refused(400, "batch: some messages are invalid; nothing was stored", rejected)
    if items:
        spool(sender, items)
    return accepted({"rejected": rejected} if rejected else None)


# --- Browser tracker ----------------------------------------------------------------------

BROWSER_TYPES = {"identify", "page", "track"}


@api_view("POST", cross_origin=True)
def browser(request: HttpRequest) -> HttpResponse:
    """Calls from the tracker script on a customer's pages, from any origin.

    The tracker key is public; it can only send these three kinds of call.
    """
    body = wire.require_object(read_json(request, wire.MAX_SEGMENT_BATCH_BYTES), "body")
    key = body.get("key")
    sender = sender_for_tracker(key) if isinstance(key, str) and key else None
    if sender is None:
        raise Refused(401, "Unknown tracker key")
    limit_rate(f"tracker:{key}")
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise WireError("batch", "must be a list of messages")
    items = []
    for index, message in enumerate(messages):
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in BROWSER_TYPES:
            raise WireError(f"batch[{index}].type", "must be one of identify, page, track")
        items.extend(wire.segment_message(message, f"batch[{index}]"))
    if items:
        spool(sender, items)
    return accepted()


@api_view("POST")
def metrics(request: HttpRequest) -> HttpResponse:
    """Customer.io's delivery metrics from outside channels (recorded by messaging)."""
    sender = track_sender(request)
    spool(sender, [wire.cio_metric(read_json(request, wire.MAX_V1_BODY_BYTES))])
    return accepted()


# --- Manual segments ----------------------------------------------------------------------


@api_view("POST")
def segment_add_customers(request: HttpRequest, segment_id: str) -> HttpResponse:
    sender = track_sender(request)
    body = read_json(request, wire.MAX_V1_BODY_BYTES)
    spool(sender, [wire.cio_segment_members(segment_id, body, request.GET.get("id_type"), True)])
    return accepted()


@api_view("POST")
def segment_remove_customers(request: HttpRequest, segment_id: str) -> HttpResponse:
    sender = track_sender(request)
    body = read_json(request, wire.MAX_V1_BODY_BYTES)
    spool(sender, [wire.cio_segment_members(segment_id, body, request.GET.get("id_type"), False)])
    return accepted()
