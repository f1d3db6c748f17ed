"""Keyset pagination: "after this row" instead of OFFSET, so page 1,000 costs what page 1 does."""

from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.db.models import Q, QuerySet

SALT = "ferry.keyset"


@dataclass
class Page:
    rows: list
    next_cursor: str | None


def page_by_time(
    queryset: QuerySet, field: str, cursor: str | None, size: int, newest_first: bool = True
) -> Page:
    """Rows ordered by (`field`, id), newest or oldest first, starting after `cursor`."""
    direction = "-" if newest_first else ""
    queryset = queryset.order_by(f"{direction}{field}", f"{direction}id")
    if cursor:
        try:
            moment, row_id = signing.loads(cursor, salt=SALT)
            moment = datetime.fromisoformat(moment)
        except (signing.BadSignature, ValueError, TypeError):
            moment = None
        if moment is not None:
            before, at = ("lt", "lt") if newest_first else ("gt", "gt")
            queryset = queryset.filter(
                Q(**{f"{field}__{before}": moment}) | Q(**{field: moment, f"id__{at}": row_id})
            )
    rows = list(queryset[: size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = signing.dumps([getattr(last, field).isoformat(), last.pk], salt=SALT)
    return Page(rows, next_cursor)
