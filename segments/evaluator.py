"""The reference: a rule tree decided for one person in plain Python.

It reads the semantics in segments/rules.py literally, with none of the compiler's shortcuts
(activity summaries, joins, scopes), so that the property test can hold the SQL to it. It is
also handy where a question is about one person already in memory.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from segments.compiler import DELIVERY_COLUMNS, number, text
from segments.rules import (
    NUMBER_PATTERN,
    AttributeCondition,
    Comparison,
    EmailCondition,
    EventCondition,
    Group,
    Node,
    SegmentCondition,
    SubscriptionCondition,
    Window,
    epoch_seconds,
    parse_time,
)

_NUMBER = re.compile(NUMBER_PATTERN)
MISSING = object()


@dataclass
class EventRecord:
    name: str
    timestamp: datetime
    data: dict


@dataclass
class PersonRecord:
    id: int
    attributes: dict
    unsubscribed: bool = False
    events: list[EventRecord] = field(default_factory=list)
    # One dict per delivery: activity column (sent_at, opened_at, ...) -> datetime or None,
    # and is_test.
    deliveries: list[dict] = field(default_factory=list)


def matches(
    node: Node, person: PersonRecord, now: datetime, members: Mapping[int, set[int]]
) -> bool:
    """Does the rule match the person at `now`? `members` gives other segments' members."""
    if isinstance(node, Group):
        answers = (matches(child, person, now, members) for child in node.children)
        if node.op == "and":
            return all(answers)
        if node.op == "or":
            return any(answers)
        return not any(answers)
    if isinstance(node, AttributeCondition):
        return compare(node.comparison, person.attributes, now)
    if isinstance(node, SubscriptionCondition):
        return person.unsubscribed != node.subscribed
    if isinstance(node, SegmentCondition):
        return (person.id in members.get(node.segment, set())) == node.member
    if isinstance(node, EventCondition):
        count = sum(
            1
            for event in person.events
            if event.name == node.name
            and in_window(event.timestamp, node.window, now)
            and all(compare(f, event.data, now) for f in node.filters)
        )
        return node.occurrence.holds(count)
    assert isinstance(node, EmailCondition)
    column = DELIVERY_COLUMNS[node.activity]
    count = sum(
        1
        for delivery in person.deliveries
        if not delivery.get("is_test")
        and delivery.get(column) is not None
        and in_window(delivery[column], node.window, now)
    )
    return node.occurrence.holds(count)


def in_window(moment: datetime, window: Window | None, now: datetime) -> bool:
    if window is None:
        return True
    start, end = window.bounds(now)
    if end is None:
        return start <= moment <= now
    return start <= moment < end


# --- The text, number and time of a JSON value ---------------------------------------------


def text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        # PostgreSQL spells numbers in plain decimal notation and has no negative zero.
        exact = number(value)
        return format(exact.copy_abs() if exact.is_zero() else exact, "f")
    return None


def number_of(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return number(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
    return None


def time_of(value: Any) -> Decimal | None:
    seconds = number_of(value)
    if seconds is not None or not isinstance(value, str):
        return seconds
    moment = parse_time(value)
    return epoch_seconds(moment) if moment else None


def equals(value: Any, expected: Any) -> bool:
    if isinstance(expected, str | bool):
        return text_of(value) == text(expected)
    found = number_of(value)
    return found is not None and found == number(expected)


def compare(c: Comparison, values: dict, now: datetime) -> bool:
    value = values.get(c.name, MISSING)
    if c.operator == "exists":
        return value is not MISSING
    if c.operator == "not_exists":
        return value is MISSING
    if c.operator == "not_equals":
        return not equals(value, c.value)
    if c.operator == "equals":
        return equals(value, c.value)
    if c.operator == "in":
        return any(equals(value, expected) for expected in c.value)
    if c.operator in ("contains", "starts_with"):
        found = text_of(value)
        if found is None:
            return False
        return c.value in found if c.operator == "contains" else found.startswith(c.value)
    if c.operator in ("greater_than", "less_than", "between"):
        found = number_of(value)
        if found is None:
            return False
        if c.operator == "greater_than":
            return found > number(c.value)
        if c.operator == "less_than":
            return found < number(c.value)
        return number(c.value[0]) <= found <= number(c.value[1])
    found = time_of(value)
    if found is None:
        return False
    if c.operator == "before":
        return found < epoch_seconds(parse_time(c.value))
    if c.operator == "after":
        return found > epoch_seconds(parse_time(c.value))
    since = epoch_seconds(now - timedelta(days=c.value))
    if c.operator == "within_last_days":
        return since <= found <= epoch_seconds(now)
    return found < since
