"""The segment rule tree: typed nodes, read from JSON with errors that name the bad node.

A rule is stored as JSON and read back into these frozen dataclasses; segments/compiler.py
turns a tree into one SQL query and segments/evaluator.py decides it in Python. Both follow
the semantics written here, which the property test holds them to:

- Groups: `and` (all children), `or` (any child), `not` (none of the children).
- Attribute values are JSON. The *text* of a value is the string itself, `true`/`false` for a
  boolean, the plain decimal spelling for a number (`100`, `0.5`, never `1e2`); objects,
  arrays and null have none. The *number* of a value is a JSON number, or a string spelling
  one (`-12`, `3.50`). The *time* of a value is its number as unix seconds, or an ISO-8601
  date or date-time string (`2025-01-31`, `2025-01-31T09:30:00+01:00`; UTC when no offset).
- `equals` with a string or boolean compares text; with a number, numbers. `in` is `equals`
  any of a list. `not_equals` is the negation of `equals` (people without the attribute are
  not equal). `contains` and `starts_with` read text, case-sensitively. `greater_than`,
  `less_than` and `between` (inclusive) compare numbers; `before`, `after`,
  `within_last_days` (from N days ago up to now) and `more_than_days_ago` compare times.
- Event conditions count a person's events of that name (of any kind) inside the window
  (`within_days`: from N days ago up to now; or `from`/`to` dates, `to` inclusive of its day)
  whose data match every filter (the attribute operators, on event properties).
- Email activity counts a person's deliveries (messaging's, test sends left out) that reached
  that activity (sent, delivered, opened, clicked, bounced: the first time each happened)
  inside the window, the same way.
- Segment conditions read the other segment's materialised members.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

MAX_DEPTH = 6
MAX_NODES = 100
MAX_NAME_BYTES = 150
MAX_TEXT_BYTES = 1000
MAX_LIST = 1000
MAX_DAYS = 36_500
MAX_COUNT = 1_000_000

GROUP_OPS = ("and", "or", "not")
SCALAR_OPERATORS = ("equals", "not_equals")
TEXT_OPERATORS = ("contains", "starts_with")
PRESENCE_OPERATORS = ("exists", "not_exists")
NUMBER_OPERATORS = ("greater_than", "less_than")
DATE_OPERATORS = ("before", "after")
DAYS_OPERATORS = ("within_last_days", "more_than_days_ago")
ATTRIBUTE_OPERATORS = (
    *SCALAR_OPERATORS, *TEXT_OPERATORS, *PRESENCE_OPERATORS, *NUMBER_OPERATORS, "between", "in",
    *DATE_OPERATORS, *DAYS_OPERATORS,
)  # fmt: skip
COUNT_OPERATORS = ("performed", "not_performed", "at_least", "at_most", "exactly")
EMAIL_ACTIVITIES = ("sent", "delivered", "opened", "clicked", "bounced")
SUBSCRIPTION_STATES = ("subscribed", "unsubscribed")

# Shared by the compiler (as a PostgreSQL regular expression) and the evaluator: what a
# string must look like to count as a number, and as an ISO-8601 time. Hours stop at 23,
# offsets at 14:59 and fractions at six digits, where PostgreSQL and Python still agree.
NUMBER_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
TIME_PATTERN = (
    r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-4]):?[0-5][0-9])?)?$"
)
_TIME = re.compile(TIME_PATTERN)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RuleError(Exception):
    """One problem, at one node: `path` reads like `rules.children[2].value`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


class InvalidRule(Exception):
    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class Group:
    op: str
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Comparison:
    """An operator and its value, applied to a person's attribute or an event's property."""

    name: str
    operator: str
    value: Any = None


@dataclass(frozen=True)
class AttributeCondition:
    comparison: Comparison


@dataclass(frozen=True)
class Window:
    """From `start` (inclusive) to `end` (exclusive); `days` counts back from now instead."""

    days: int | None = None
    start: datetime | None = None
    end: datetime | None = None

    def bounds(self, now: datetime) -> tuple[datetime, datetime | None]:
        if self.days is not None:
            return now - timedelta(days=self.days), None
        return self.start, self.end


@dataclass(frozen=True)
class Occurrence:
    operator: str
    count: int | None = None

    def holds(self, n: int) -> bool:
        match self.operator:
            case "performed":
                return n >= 1
            case "not_performed":
                return n == 0
            case "at_least":
                return n >= self.count
            case "at_most":
                return n <= self.count
            case _:
                return n == self.count


@dataclass(frozen=True)
class EventCondition:
    name: str
    occurrence: Occurrence
    window: Window | None = None
    filters: tuple[Comparison, ...] = ()


@dataclass(frozen=True)
class EmailCondition:
    activity: str
    occurrence: Occurrence
    window: Window | None = None


@dataclass(frozen=True)
class SegmentCondition:
    segment: int
    member: bool


@dataclass(frozen=True)
class SubscriptionCondition:
    subscribed: bool


Node = (
    Group | AttributeCondition | EventCondition | EmailCondition | SegmentCondition
    | SubscriptionCondition
)  # fmt: skip


# --- Values, as both implementations read them -------------------------------------------


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 date or date-time in the accepted spelling, as an aware datetime."""
    if not _TIME.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_seconds(moment: datetime) -> Decimal:
    """Exact unix seconds (microseconds included), as PostgreSQL's extract(epoch) gives."""
    delta = moment - EPOCH
    whole = delta.days * 86400 + delta.seconds
    return Decimal(whole) + Decimal(delta.microseconds).scaleb(-6)


# --- Reading a tree -----------------------------------------------------------------------


@dataclass
class Context:
    """What validation needs to know beyond the tree itself."""

    # Every other segment of the account: id -> the segment ids its rules read.
    segments: Mapping[int, list[int]] = field(default_factory=dict)
    # The segment being edited (None while creating one): reading itself would be a cycle.
    own_id: int | None = None
    # Days the account keeps "events" and "deliveries" (maintenance/retention.py): a window
    # reaching further back would silently miss deleted rows, so the editor refuses it.
    kept_days: Mapping[str, int] = field(default_factory=dict)


class Reader:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.errors: list[RuleError] = []
        self.nodes = 0

    def fail(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    def node(self, data: Any, path: str, depth: int) -> Node | None:
        self.nodes += 1
        if self.nodes == MAX_NODES + 1:
            self.fail(path, f"a rule may have at most {MAX_NODES} conditions and groups")
        if not isinstance(data, dict):
            self.fail(path, "must be an object")
            return None
        kind = data.get("type")
        reader = {
            "group": self.group, "attribute": self.attribute, "event": self.event,
            "email": self.email, "segment": self.segment, "subscription": self.subscription,
        }.get(kind)  # fmt: skip
        if reader is None:
            self.fail(
                f"{path}.type",
                "must be one of group, attribute, event, email, segment, subscription",
            )
            return None
        if kind == "group":
            return self.group(data, path, depth)
        return reader(data, path)

    def group(self, data: dict, path: str, depth: int) -> Group | None:
        if depth >= MAX_DEPTH:
            self.fail(path, f"groups may nest at most {MAX_DEPTH} deep")
            return None
        op = data.get("op")
        if op not in GROUP_OPS:
            self.fail(f"{path}.op", "must be and, or or not")
        children = data.get("children")
        if not isinstance(children, list) or not children:
            self.fail(f"{path}.children", "must be a non-empty list of conditions or groups")
            return None
        read = [
            self.node(child, f"{path}.children[{index}]", depth + 1)
            for index, child in enumerate(children)
        ]
        if op not in GROUP_OPS or None in read:
            return None
        return Group(op, tuple(read))

    def name(self, data: dict, key: str, path: str) -> str | None:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{path}.{key}", "is required")
            return None
        if len(value.encode()) > MAX_NAME_BYTES or "\x00" in value:
            self.fail(f"{path}.{key}", f"must be at most {MAX_NAME_BYTES} bytes of text")
            return None
        return value

    def comparison(self, data: dict, key: str, path: str) -> Comparison | None:
        name = self.name(data, key, path)
        operator = data.get("operator")
        if operator not in ATTRIBUTE_OPERATORS:
            self.fail(f"{path}.operator", f"must be one of {', '.join(ATTRIBUTE_OPERATORS)}")
            return None
        value = self.operand(operator, data.get("value"), f"{path}.value")
        if name is None or value is INVALID:
            return None
        return Comparison(name, operator, value)

    def operand(self, operator: str, value: Any, path: str) -> Any:
        if operator in PRESENCE_OPERATORS:
            return None
        if operator in SCALAR_OPERATORS:
            return self.scalar(value, path)
        if operator in TEXT_OPERATORS:
            return self.text(value, path, empty=False)
        if operator in NUMBER_OPERATORS:
            return self.number(value, path)
        if operator == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.fail(path, "must be a list of two numbers, the lower bound first")
                return INVALID
            low, high = self.number(value[0], f"{path}[0]"), self.number(value[1], f"{path}[1]")
            if INVALID in (low, high):
                return INVALID
            if low > high:
                self.fail(path, "the lower bound must not be above the upper bound")
                return INVALID
            return [low, high]
        if operator == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
                self.fail(path, f"must be a list of 1 to {MAX_LIST} values")
                return INVALID
            values = [self.scalar(item, f"{path}[{n}]") for n, item in enumerate(value)]
            return INVALID if INVALID in values else values
        if operator in DATE_OPERATORS:
            if not isinstance(value, str) or parse_time(value) is None:
                self.fail(path, "must be a date (2025-01-31) or an ISO-8601 date and time")
                return INVALID
            return value
        return self.days(value, path)

    def scalar(self, value: Any, path: str) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float | Decimal):
            return self.number(value, path)
        return self.text(value, path, empty=True)

    def text(self, value: Any, path: str, empty: bool) -> Any:
        if not isinstance(value, str) or (not empty and value == ""):
            self.fail(path, "must be text" if empty else "must be non-empty text")
            return INVALID
        if len(value.encode()) > MAX_TEXT_BYTES or "\x00" in value:
            self.fail(path, f"must be at most {MAX_TEXT_BYTES} bytes of text")
            return INVALID
        return value

    def number(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            self.fail(path, "must be a number")
            return INVALID
        if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
            self.fail(path, "must be a finite number")
            return INVALID
        return value

    def days(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
            self.fail(path, f"must be a whole number of days from 1 to {MAX_DAYS}")
            return INVALID
        return value

    def attribute(self, data: dict, path: str) -> AttributeCondition | None:
        comparison = self.comparison(data, "name", path)
        return AttributeCondition(comparison) if comparison else None

    def occurrence(self, data: dict, path: str) -> Occurrence | None:
        operator = data.get("operator", "performed")
        if operator not in COUNT_OPERATORS:
            self.fail(f"{path}.operator", f"must be one of {', '.join(COUNT_OPERATORS)}")
            return None
        if operator in ("performed", "not_performed"):
            return Occurrence(operator)
        count = data.get("count")
        lowest = 1 if operator == "at_least" else 0
        if isinstance(count, bool) or not isinstance(count, int):
            self.fail(f"{path}.count", "must be a whole number")
            return None
        if not lowest <= count <= MAX_COUNT:
            self.fail(f"{path}.count", f"must be from {lowest} to {MAX_COUNT}")
            return None
        return Occurrence(operator, count)

    def window(self, data: dict, path: str, rows: str = "events") -> Window | object | None:
        read = self.window_read(data, path)
        kept = self.context.kept_days.get(rows)
        if kept is None or read in (INVALID, None):
            return read
        if read.days is not None and read.days > kept:
            self.fail(
                f"{path}.within_days",
                f"{read.days} days is longer than this account keeps {rows} ({kept} days); "
                f"older {rows} are deleted, so use at most {kept}",
            )
            return INVALID
        horizon = datetime.now(UTC) - timedelta(days=kept)
        if read.start is not None and read.start < horizon:
            self.fail(
                f"{path}.from",
                f"is before {horizon:%Y-%m-%d}: this account keeps {rows} {kept} days and "
                f"older {rows} are deleted; use a later date",
            )
            return INVALID
        return read

    def window_read(self, data: dict, path: str) -> Window | object | None:
        days, start, end = data.get("within_days"), data.get("from"), data.get("to")
        if days is not None and (start is not None or end is not None):
            self.fail(f"{path}.within_days", "use either within_days or from and to, not both")
            return INVALID
        if days is not None:
            days = self.days(days, f"{path}.within_days")
            return INVALID if days is INVALID else Window(days=days)
        if start is None and end is None:
            return None
        bounds = []
        for key, value in (("from", start), ("to", end)):
            moment = parse_time(value) if isinstance(value, str) else None
            if moment is None:
                self.fail(f"{path}.{key}", "must be a date (2025-01-31) or an ISO-8601 time")
                return INVALID
            if key == "to" and len(value) == 10:
                moment += timedelta(days=1)  # a date `to` includes its whole day
            bounds.append(moment)
        if bounds[0] >= bounds[1]:
            self.fail(f"{path}.to", "must be after from")
            return INVALID
        return Window(start=bounds[0], end=bounds[1])

    def event(self, data: dict, path: str) -> EventCondition | None:
        name = self.name(data, "name", path)
        occurrence = self.occurrence(data, path)
        window = self.window(data, path)
        filters = data.get("filters") or []
        if not isinstance(filters, list):
            self.fail(f"{path}.filters", "must be a list of property filters")
            return None
        read = [
            self.comparison(item, "property", f"{path}.filters[{n}]")
            if isinstance(item, dict)
            else self.fail(f"{path}.filters[{n}]", "must be an object")
            for n, item in enumerate(filters)
        ]
        if name is None or occurrence is None or window is INVALID or None in read:
            return None
        return EventCondition(name, occurrence, window, tuple(read))

    def email(self, data: dict, path: str) -> EmailCondition | None:
        activity = data.get("activity")
        if activity not in EMAIL_ACTIVITIES:
            self.fail(f"{path}.activity", f"must be one of {', '.join(EMAIL_ACTIVITIES)}")
            return None
        occurrence = self.occurrence(data, path)
        window = self.window(data, path, "deliveries")
        if occurrence is None or window is INVALID:
            return None
        return EmailCondition(activity, occurrence, window)

    def segment(self, data: dict, path: str) -> SegmentCondition | None:
        segment_id, operator = data.get("segment"), data.get("operator", "in")
        if operator not in ("in", "not_in"):
            self.fail(f"{path}.operator", "must be in or not_in")
            return None
        if isinstance(segment_id, bool) or not isinstance(segment_id, int):
            self.fail(f"{path}.segment", "must be the id of another segment")
            return None
        own = self.context.own_id
        if segment_id == own:
            self.fail(f"{path}.segment", "a segment cannot include itself")
            return None
        if segment_id not in self.context.segments:
            self.fail(f"{path}.segment", f"there is no segment {segment_id}")
            return None
        if own is not None and own in reachable(segment_id, self.context.segments):
            self.fail(
                f"{path}.segment",
                f"segment {segment_id} already depends on this segment; "
                "reading it here would make a cycle",
            )
            return None
        return SegmentCondition(segment_id, operator == "in")

    def subscription(self, data: dict, path: str) -> SubscriptionCondition | None:
        state = data.get("state")
        if state not in SUBSCRIPTION_STATES:
            self.fail(f"{path}.state", "must be subscribed or unsubscribed")
            return None
        return SubscriptionCondition(state == "subscribed")


INVALID = object()


def reachable(start: int, graph: Mapping[int, list[int]]) -> set[int]:
    """Every segment that `start` reads, directly or through others."""
    seen: set[int] = set()
    stack = [start]
    while stack:
        for target in graph.get(stack.pop(), []):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def parse_rule(data: Any, context: Context | None = None, path: str = "rules") -> Node:
    """The typed tree, or InvalidRule listing every problem with the path of its node."""
    reader = Reader(context or Context())
    node = reader.node(data, path, depth=0)
    if reader.errors or node is None:
        raise InvalidRule(reader.errors or [RuleError(path, "is not a valid rule")])
    return node


# --- Questions about a tree ---------------------------------------------------------------


def walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Group):
        for child in node.children:
            yield from walk(child)


def referenced_segments(node: Node) -> list[int]:
    return sorted({n.segment for n in walk(node) if isinstance(n, SegmentCondition)})


def reads(node: Node) -> list[str]:
    """What a person's answer can change with, as keys: `attribute:<name>`, `event:<name>`,
    `segment:<id>`, `subscription` and `email` (email activity). The drain says which of these
    each person's changes touched, and asks a segment only about the people it can affect."""
    keys: set[str] = set()
    for n in walk(node):
        if isinstance(n, AttributeCondition):
            keys.add(f"attribute:{n.comparison.name}")
        elif isinstance(n, EventCondition):
            keys.add(f"event:{n.name}")
        elif isinstance(n, SegmentCondition):
            keys.add(f"segment:{n.segment}")
        elif isinstance(n, SubscriptionCondition):
            keys.add("subscription")
        elif isinstance(n, EmailCondition):
            keys.add("email")
    return sorted(keys)


def is_time_dependent(node: Node) -> bool:
    """Does the answer change with the clock alone, with no new data? Email activity counts
    too: deliveries are written by messaging, not by the drain, so the periodic sweep is what
    brings those segments up to date."""
    for n in walk(node):
        if isinstance(n, EmailCondition):
            return True
        if isinstance(n, EventCondition) and n.window and n.window.days:
            return True
        comparisons: tuple[Comparison, ...] = ()
        if isinstance(n, AttributeCondition):
            comparisons = (n.comparison,)
        elif isinstance(n, EventCondition):
            comparisons = n.filters
        if any(c.operator in DAYS_OPERATORS for c in comparisons):
            return True
    return False


def dump_rule(node: Node) -> dict:
    """The JSON form of a tree, as stored (and as parse_rule reads it back)."""
    if isinstance(node, Group):
        return {"type": "group", "op": node.op, "children": [dump_rule(c) for c in node.children]}
    if isinstance(node, AttributeCondition):
        return {"type": "attribute", **_dump_comparison(node.comparison, "name")}
    if isinstance(node, EventCondition):
        data = {"type": "event", "name": node.name, **_dump_occurrence(node.occurrence)}
        data.update(_dump_window(node.window))
        if node.filters:
            data["filters"] = [_dump_comparison(f, "property") for f in node.filters]
        return data
    if isinstance(node, EmailCondition):
        data = {"type": "email", "activity": node.activity, **_dump_occurrence(node.occurrence)}
        return data | _dump_window(node.window)
    if isinstance(node, SegmentCondition):
        return {
            "type": "segment",
            "segment": node.segment,
            "operator": "in" if node.member else "not_in",
        }
    return {"type": "subscription", "state": "subscribed" if node.subscribed else "unsubscribed"}


def _dump_comparison(comparison: Comparison, key: str) -> dict:
    data = {key: comparison.name, "operator": comparison.operator}
    if comparison.operator not in PRESENCE_OPERATORS:
        data["value"] = _json_value(comparison.value)
    return data


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


def _dump_occurrence(occurrence: Occurrence) -> dict:
    data: dict[str, Any] = {"operator": occurrence.operator}
    if occurrence.count is not None:
        data["count"] = occurrence.count
    return data


def _dump_window(window: Window | None) -> dict:
    if window is None:
        return {}
    if window.days is not None:
        return {"within_days": window.days}
    return {"from": window.start.isoformat(), "to": window.end.isoformat()}
