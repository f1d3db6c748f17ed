"""The wire formats Ferry accepts, turned into one internal item shape.

Customer.io's Track API (v1 and v2) and the Segment spec arrive here as parsed JSON; out come
items ready for the spool, or a WireError naming the field and the problem. Items are plain
dicts (they are stored as JSON):

    {"op": "identify", "person": {"id": "42"} | {"email": "a@b"}, "attributes": {...},
     "update_only": bool, "at": unix seconds, "anonymous_id": str | None}
    {"op": "delete", "person": {...}, "at": ...}
    {"op": "event", "person": {...} | None, "anonymous_id": str | None, "kind": "event|page|screen",
     "name": str, "data": {...}, "timestamp": unix seconds, "dedupe": str, "at": ...}
    {"op": "alias", "person": {"id": ...}, "previous_id": str, "at": ...}
    {"op": "segment_add" | "segment_remove", "segment": int, "id_type": "id|email",
     "ids": [str, ...], "at": ...}

`at` orders changes to the same attribute; `dedupe` makes applying an event twice harmless.
"""

import json
import math
import time
import uuid
from datetime import datetime
from typing import Any

import orjson

# Documented limits of the Customer.io Track API and the Segment HTTP API.
MAX_ID_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000
MAX_V2_OPERATION_BYTES = 32 * 1024
MAX_V2_BATCH_BYTES = 500 * 1024
MAX_SEGMENT_CALL_BYTES = 32 * 1024
MAX_SEGMENT_BATCH_BYTES = 500 * 1024
MAX_V1_BODY_BYTES = 1024 * 1024

# Reserved attribute keys that steer the request rather than describe the person.
CONTROL_KEYS = {"_update", "_timestamp"}
EVENT_KINDS = {"event", "page", "screen"}
SEGMENT_TYPES = {"identify", "track", "page", "screen", "group", "alias"}


class WireError(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem

    def as_dict(self) -> dict:
        return {"field": self.field, "message": self.problem}


def size(value: Any) -> int:
    """Bytes of the value as compact UTF-8 JSON (what the documented limits count)."""
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # e.g. an integer wider than 64 bits: the slow way
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def new_dedupe_key() -> str:
    return uuid.uuid4().hex


# --- Shared checks ------------------------------------------------------------------------


NO_NUL = "must not contain the NUL character (\\u0000): it cannot be stored"


def refuse_nul(document: Any, raw: bytes) -> None:
    """PostgreSQL stores no NUL character in text or JSON, so a request that carries one is
    refused whole, naming where (accepted, its item could never be applied)."""
    if b"\\u0000" not in raw:  # the only way a JSON text spells it
        return
    path = nul_path(document, "")
    if path is not None:
        raise WireError(path or "body", NO_NUL)


def nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            found = inner if "\x00" in key else nul_path(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def require_object(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise WireError(field, "must be a JSON object")
    return value


def identifier(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise WireError(field, "must be a string or a number")
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    text = text.strip()
    if not text:
        raise WireError(field, "must not be empty")
    if "\x00" in text:
        raise WireError(field, NO_NUL)
    if len(text.encode()) > MAX_ID_BYTES:
        raise WireError(field, f"must be at most {MAX_ID_BYTES} bytes")
    return text


def person_from_path(raw: str, field: str = "identifier") -> dict:
    """A path identifier: an email if it looks like one, else the customer id."""
    text = identifier(raw, field)
    if "@" in text:
        return {"email": text.lower()}
    return {"id": text}


def unix_time(value: Any, field: str) -> float:
    """Unix seconds from a number or an ISO-8601 string."""
    if isinstance(value, bool):
        raise WireError(field, "must be a unix timestamp or an ISO-8601 date")
    if isinstance(value, int | float):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds, as JavaScript sends them
            seconds /= 1000
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise WireError(field, "must be a unix timestamp or an ISO-8601 date") from None
        if parsed.tzinfo is None:
            raise WireError(field, "must include a time zone")
        seconds = parsed.timestamp()
    else:
        raise WireError(field, "must be a unix timestamp or an ISO-8601 date")
    if not math.isfinite(seconds) or not 0 <= seconds < 32503680000:
        raise WireError(field, "is out of range")
    return seconds


def attributes(values: dict, field: str) -> dict:
    values = {key: value for key, value in values.items() if key not in CONTROL_KEYS}
    if len(values) > MAX_ATTRIBUTES:
        raise WireError(field, f"must have at most {MAX_ATTRIBUTES} attributes")
    for name, value in values.items():
        if not name.strip():
            raise WireError(field, "attribute names must not be empty")
        if len(name.encode()) > MAX_ATTRIBUTE_NAME_BYTES:
            raise WireError(
                f"{field}.{name[:40]}", f"name must be at most {MAX_ATTRIBUTE_NAME_BYTES} bytes"
            )
        if size(value) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise WireError(
                f"{field}.{name}", f"value must be at most {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
            )
    return values


def event_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WireError(field, "is required and must be a non-empty string")
    if len(value.encode()) > MAX_EVENT_NAME_BYTES:
        raise WireError(field, f"must be at most {MAX_EVENT_NAME_BYTES} bytes")
    return value


def event_data(value: Any, field: str) -> dict:
    if value is None:
        return {}
    data = require_object(value, field)
    if size(data) > MAX_EVENT_DATA_BYTES:
        raise WireError(field, f"must be at most {MAX_EVENT_DATA_BYTES} bytes")
    return data


def dedupe_key(value: Any, field: str) -> str:
    if value is None:
        return new_dedupe_key()
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise WireError(field, "must be a non-empty string of at most 100 characters")
    return value


def event_item(
    person: dict | None, anonymous_id: str | None, kind: str, name: str, data: dict,
    timestamp: float | None, dedupe: str,
) -> dict:  # fmt: skip
    now = time.time()
    return {
        "op": "event", "person": person, "anonymous_id": anonymous_id, "kind": kind,
        "name": name, "data": data, "timestamp": timestamp or now, "dedupe": dedupe, "at": now,
    }  # fmt: skip


# --- Customer.io Track API v1 -------------------------------------------------------------


def cio_identify(path_id: str, body: Any) -> dict:
    body = require_object(body, "body")
    person = person_from_path(path_id)
    at = unix_time(body["_timestamp"], "_timestamp") if "_timestamp" in body else time.time()
    update_only = body.get("_update", False)
    if not isinstance(update_only, bool):
        raise WireError("_update", "must be true or false")
    values = attributes(body, "attributes")
    if "email" in values and values["email"] is not None:
        if not isinstance(values["email"], str) or "@" not in values["email"]:
            raise WireError("email", "must be an email address")
        values["email"] = values["email"].strip().lower()
    if "unsubscribed" in values and not isinstance(values["unsubscribed"], bool):
        raise WireError("unsubscribed", "must be true or false")
    anonymous_id = values.get("anonymous_id")
    if anonymous_id is not None:
        anonymous_id = identifier(anonymous_id, "anonymous_id")
    return {
        "op": "identify", "person": person, "attributes": values, "update_only": update_only,
        "at": at, "anonymous_id": anonymous_id,
    }  # fmt: skip


def cio_delete(path_id: str) -> dict:
    return {"op": "delete", "person": person_from_path(path_id), "at": time.time()}


def cio_event(path_id: str | None, body: Any) -> dict:
    body = require_object(body, "body")
    kind = body.get("type", "event")
    if kind not in EVENT_KINDS:
        raise WireError("type", "must be one of event, page, screen")
    anonymous_id = None
    if path_id is None and body.get("anonymous_id") is not None:
        anonymous_id = identifier(body["anonymous_id"], "anonymous_id")
    timestamp = (
        unix_time(body["timestamp"], "timestamp") if body.get("timestamp") is not None else None
    )
    return event_item(
        person_from_path(path_id) if path_id is not None else None,
        anonymous_id,
        kind,
        event_name(body.get("name"), "name"),
        event_data(body.get("data"), "data"),
        timestamp,
        dedupe_key(body.get("id"), "id"),
    )


# --- Customer.io Track API v2 -------------------------------------------------------------

V2_PERSON_ACTIONS = {"identify", "delete", "event", "page", "screen"}


def cio_v2_operation(op: Any, field: str = "") -> dict:
    op = require_object(op, field or "body")
    prefix = f"{field}." if field else ""
    if size(op) > MAX_V2_OPERATION_BYTES:
        raise WireError(
            field or "body", f"an operation must be at most {MAX_V2_OPERATION_BYTES} bytes"
        )
    if op.get("type") != "person":
        raise WireError(f"{prefix}type", "only person operations are supported")
    action = op.get("action")
    if action not in V2_PERSON_ACTIONS:
        raise WireError(f"{prefix}action", f"must be one of {', '.join(sorted(V2_PERSON_ACTIONS))}")
    ids = require_object(op.get("identifiers"), f"{prefix}identifiers")
    known = [key for key in ("id", "email", "cio_id") if key in ids]
    if len(known) != 1 or len(ids) != 1:
        raise WireError(f"{prefix}identifiers", "must contain exactly one of id, email, cio_id")
    value = identifier(ids[known[0]], f"{prefix}identifiers.{known[0]}")
    person = {"email": value.lower()} if known[0] == "email" else {"id": value}
    attrs = op.get("attributes") or {}
    require_object(attrs, f"{prefix}attributes")
    if action == "identify":
        body = dict(attrs)
        if "timestamp" in op:
            body["_timestamp"] = op["timestamp"]
        item = cio_identify(value, body)
        item["person"] = person
        return item
    if action == "delete":
        return {"op": "delete", "person": person, "at": time.time()}
    name = op.get("name")
    kind = "event" if action == "event" else action
    timestamp = (
        unix_time(op["timestamp"], f"{prefix}timestamp")
        if op.get("timestamp") is not None
        else None
    )
    return event_item(
        person, None, kind, event_name(name, f"{prefix}name"),
        event_data(attrs, f"{prefix}attributes"), timestamp, dedupe_key(op.get("id"), f"{prefix}id"),
    )  # fmt: skip


def cio_v2_batch(body: Any) -> list[dict]:
    body = require_object(body, "body")
    operations = body.get("batch")
    if not isinstance(operations, list) or not operations:
        raise WireError("batch", "must be a non-empty list of operations")
    return [cio_v2_operation(op, f"batch[{index}]") for index, op in enumerate(operations)]


# --- Segment spec -------------------------------------------------------------------------


def segment_message(message: Any, field: str = "", kind: str | None = None) -> list[dict]:
    message = require_object(message, field or "body")
    prefix = f"{field}." if field else ""
    if size(message) > MAX_SEGMENT_CALL_BYTES:
        raise WireError(field or "body", f"a call must be at most {MAX_SEGMENT_CALL_BYTES} bytes")
    kind = kind or message.get("type")
    if kind not in SEGMENT_TYPES:
        raise WireError(f"{prefix}type", f"must be one of {', '.join(sorted(SEGMENT_TYPES))}")
    user_id = message.get("userId")
    anonymous_id = message.get("anonymousId")
    user_id = identifier(user_id, f"{prefix}userId") if user_id not in (None, "") else None
    anonymous_id = (
        identifier(anonymous_id, f"{prefix}anonymousId") if anonymous_id not in (None, "") else None
    )
    if kind == "alias":
        previous = identifier(message.get("previousId"), f"{prefix}previousId")
        if user_id is None:
            raise WireError(f"{prefix}userId", "is required for alias")
        return [
            {"op": "alias", "person": {"id": user_id}, "previous_id": previous, "at": time.time()}
        ]
    if user_id is None and anonymous_id is None:
        raise WireError(f"{prefix}userId", "userId or anonymousId is required")
    timestamp = (
        unix_time(message["timestamp"], f"{prefix}timestamp") if message.get("timestamp") else None
    )
    person = {"id": user_id} if user_id else None
    dedupe = dedupe_key(message.get("messageId"), f"{prefix}messageId")

    if kind == "identify":
        traits = require_object(message.get("traits") or {}, f"{prefix}traits")
        values = attributes(traits, f"{prefix}traits")
        if isinstance(values.get("email"), str):
            values["email"] = values["email"].strip().lower()
        if person is None:
            # Traits of someone not yet known: remembered as an event, merged when they are.
            return [event_item(None, anonymous_id, "event", "identify", values, timestamp, dedupe)]
        return [{
            "op": "identify", "person": person, "attributes": values, "update_only": False,
            "at": timestamp or time.time(), "anonymous_id": anonymous_id,
        }]  # fmt: skip
    if kind == "group":
        group_id = identifier(message.get("groupId"), f"{prefix}groupId")
        traits = event_data(message.get("traits"), f"{prefix}traits")
        return [event_item(person, anonymous_id if not person else None, "event", "group",
                           {"group_id": group_id, **traits}, timestamp, dedupe)]  # fmt: skip
    properties = event_data(message.get("properties"), f"{prefix}properties")
    if kind == "track":
        name = event_name(message.get("event"), f"{prefix}event")
        event_kind = "event"
    else:
        name = (
            message.get("name") or message.get("category") or properties.get("url")
            or properties.get("path") or kind
        )  # fmt: skip
        name = event_name(str(name)[:MAX_EVENT_NAME_BYTES], f"{prefix}name")
        event_kind = kind
    return [event_item(person, anonymous_id if not person else None, event_kind, name,
                       properties, timestamp, dedupe)]  # fmt: skip


def segment_batch(body: Any) -> tuple[list[dict], list[dict]]:
    """Items from a Segment batch, and the messages rejected (index and problem)."""
    body = require_object(body, "body")
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise WireError("batch", "must be a list of messages")
    items, rejected = [], []
    for index, message in enumerate(messages):
        try:
            items.extend(segment_message(message, f"batch[{index}]"))
        except WireError as error:
            rejected.append({"index": index, **error.as_dict()})
    return items, rejected


# --- Manual segments (Customer.io Track API v1) -------------------------------------------

MAX_SEGMENT_IDS = 1000
SEGMENT_ID_TYPES = ("id", "email")


def cio_segment_members(segment_id: str, body: Any, id_type: str | None, add: bool) -> dict:
    """add_customers / remove_customers: whether the segment is manual is known only to the
    account's database, so the drain checks that (a data-driven one makes a dead letter)."""
    # isdigit() alone accepts "³" and other Unicode digits that int() refuses.
    if not (segment_id.isascii() and segment_id.isdigit()) or len(segment_id) > 18:
        raise WireError("segment_id", "must be a segment's number")
    id_type = id_type or "id"
    if id_type not in SEGMENT_ID_TYPES:
        raise WireError("id_type", "must be id or email")
    body = require_object(body, "body")
    ids = body.get("ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_SEGMENT_IDS:
        raise WireError("ids", f"must be a list of 1 to {MAX_SEGMENT_IDS} identifiers")
    values = [identifier(value, f"ids[{n}]") for n, value in enumerate(ids)]
    if id_type == "email":
        values = [value.lower() for value in values]
    return {
        "op": "segment_add" if add else "segment_remove", "segment": int(segment_id),
        "id_type": id_type, "ids": values, "at": time.time(),
    }  # fmt: skip


# --- Customer.io metrics (delivery events from outside channels) -------------------------

METRICS = {
    "bounced": "bounced", "clicked": "clicked", "converted": "converted",
    "deferred": "deferred", "delivered": "delivered", "dropped": "failed",
    "opened": "opened", "spammed": "spammed",
}  # fmt: skip


def cio_metric(body: Any) -> dict:
    """`POST /api/v1/metrics`: an event for one of the account's deliveries, named by its
    id or its Message-ID (recorded by messaging/events.py)."""
    body = require_object(body, "body")
    delivery = body.get("delivery_id")
    if isinstance(delivery, str) and delivery.strip().isdigit():
        delivery = int(delivery.strip())
    elif isinstance(delivery, str) and delivery.strip():
        delivery = delivery.strip()
        if not delivery.startswith("<"):
            delivery = f"<{delivery}>"
    elif not (isinstance(delivery, int) and not isinstance(delivery, bool) and delivery > 0):
        raise WireError("delivery_id", "is required: a delivery id or its Message-ID")
    metric = body.get("metric")
    if metric not in METRICS:
        raise WireError("metric", f"must be one of {', '.join(sorted(METRICS))}")
    at = unix_time(body["timestamp"], "timestamp") if "timestamp" in body else time.time()
    detail: dict = {"source": "metrics", "metric": metric}
    for name in ("recipient", "reason", "href"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise WireError(name, "must be a string")
        if value:
            detail["url" if name == "href" else name] = value[:2000]
    return {
        "op": "delivery_event",
        "delivery": delivery,
        "event": METRICS[metric],
        "at": at,
        "detail": detail,
        "dedupe": new_dedupe_key(),
    }
