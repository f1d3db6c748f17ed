"""Attribute values as people see them: a type, a display, and parsing from a form."""

from datetime import UTC, datetime

DATE_SUFFIXES = ("_at", "_date", "_on", "_time")
# Unix seconds between 1990 and 2100: a number in that range named like a date is one.
PLAUSIBLE_SECONDS = (631152000, 4102444800)


def attribute_type(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        if name.endswith(DATE_SUFFIXES) and PLAUSIBLE_SECONDS[0] <= value <= PLAUSIBLE_SECONDS[1]:
            return "date"
        return "number"
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return "date" if len(value) >= 10 and value[4] == "-" else "string"
        except ValueError:
            return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "string"


def display(name: str, value: object) -> str:
    kind = attribute_type(name, value)
    if kind == "date" and isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def parse(kind: str, raw: str) -> object:
    """A form's text as the value of the chosen type; ValueError names the problem."""
    raw = raw.strip()
    if kind == "string":
        return raw
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError("Enter a number, like 42 or 3.5.") from None
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        if raw.lower() in ("true", "yes", "1"):
            return True
        if raw.lower() in ("false", "no", "0"):
            return False
        raise ValueError("Enter true or false.")
    if kind == "date":
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("Enter a date like 2026-11-25 or 2026-11-25T14:30.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    raise ValueError(f"Unknown type {kind}.")
