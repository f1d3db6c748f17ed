"""Looking at an account's schema from tests: which indexes a table carries."""

from django.db import connection


def indexes_on(table: str, column: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of `table` in the current schema whose first
    column is `column`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = %s AND indexdef LIKE %s ORDER BY indexname",
            [table, f"%({column}%"],
        )
        return cursor.fetchall()


def only_a_unique_index(indexes: list[tuple[str, str]], name: str) -> bool:
    """Exactly one index, `name`, unique and without a LIKE operator class beside it."""
    return (
        [n for n, _ in indexes] == [name]
        and "UNIQUE" in indexes[0][1]
        and ("pattern_ops" not in indexes[0][1])
    )
