"""Reading and checking an import's CSV rows, without Django (the import reads a chunk
ahead in a thread of its own, see segments.imports.run_import)."""

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from ingest.wire import MAX_ATTRIBUTE_VALUE_BYTES, MAX_ID_BYTES

csv.field_size_limit(1024 * 1024)

# Bytes that were not UTF-8, as `surrogateescape` decoding leaves them.
UNDECODABLE = re.compile("[\udc80-\udcff]")

# (line, identify item) to apply and (line, reason) rejected, for one chunk of the file.
Chunk = tuple[list[tuple[int, dict]], list[tuple[int, str]]]


def read_rows(path: Path) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line number, fields or None, problem) for every record of the file, header included.

    Bytes that are not UTF-8 do not stop the file: that row is reported and the next is read.
    """
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        reader = csv.reader(text)
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield line, None, f"malformed CSV ({error})"
                continue
            joined = "".join(fields)
            if not joined.isascii() and UNDECODABLE.search(joined):
                yield line, None, "not valid UTF-8: save the file as UTF-8 and import again"
                continue
            if "\x00" in joined:
                # PostgreSQL cannot store NUL in text: the whole chunk would fail to apply.
                yield line, None, "contains a NUL byte, which cannot be stored"
                continue
            yield line, fields, ""


def typed(value: str) -> object:
    """CSV text as a number or boolean where it clearly is one; otherwise the text itself."""
    first = value[:1]
    if first in ("t", "f", "T", "F"):
        lowered = value.lower()
        return lowered == "true" if lowered in ("true", "false") else value
    if not (first.isdigit() or first in ("-", "+", ".")):
        return value
    lowered = value.lower()
    try:
        number = float(value)
    except ValueError:
        return value
    if value.strip() != value or lowered in ("nan", "inf", "-inf", "infinity"):
        return value
    return (
        int(number) if number.is_integer() and "." not in value and "e" not in lowered else number
    )


class RowReader:
    """Turns the rows of one import into identify items, with the column positions worked
    out once instead of a dict per row."""

    def __init__(
        self, identifier_column: str, by_email: bool, mapping: dict, header: list[str], at: float
    ) -> None:
        self.identifier_column, self.by_email = identifier_column, by_email
        self.width, self.at = len(header), at
        positions = {name: index for index, name in enumerate(header)}  # the last one wins
        self.identifier = positions.get(identifier_column)
        self.mapped = [
            (positions[column], column, name)
            for column, name in mapping.items()
            if column in positions
        ]

    def item(self, fields: list[str]) -> dict | str:
        """The identify item for one row, or the reason it cannot be imported."""
        if len(fields) != self.width:
            return f"has {len(fields)} fields where the header has {self.width}"
        identifier = fields[self.identifier].strip() if self.identifier is not None else ""
        if not identifier:
            return f"the identifier column “{self.identifier_column}” is empty"
        # A character is at most 4 bytes: short text needs no encoding to be measured.
        if len(identifier) * 4 > MAX_ID_BYTES and len(identifier.encode()) > MAX_ID_BYTES:
            return f"the identifier is longer than {MAX_ID_BYTES} bytes"
        if self.by_email:
            if "@" not in identifier:
                return f"“{identifier[:60]}” is not an email address"
            person = {"email": identifier.lower()}
        else:
            person = {"id": identifier}
        attributes = {}
        for index, column, name in self.mapped:
            value = fields[index]
            if value == "":
                continue
            if (
                len(value) * 4 > MAX_ATTRIBUTE_VALUE_BYTES
                and len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES
            ):
                return f"the value of “{column}” is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
            attributes[name] = value.strip().lower() if name == "email" else typed(value)
        if isinstance(attributes.get("email"), str) and "@" not in attributes["email"]:
            return f"“{attributes['email'][:60]}” in the email column is not an email address"
        return {"op": "identify", "person": person, "attributes": attributes,
                "update_only": False, "at": self.at, "anonymous_id": None}  # fmt: skip


def checked_chunks(path: Path, reading: dict, chunk_rows: int) -> Iterator[Chunk]:
    """The file's rows a chunk at a time: (line, item) to apply and (line, reason) rejected.

    `reading` holds RowReader's arguments but the header, which is the file's first line.
    """
    rows = read_rows(path)
    _, header, problem = next(rows, (1, None, "the file is empty"))
    if header is None:  # preview accepted it: the file changed since
        raise ValueError(f"the header line cannot be read: {problem}")
    reader = RowReader(header=[name.strip() for name in header], **reading)
    chunk: list[tuple[int, dict]] = []
    problems: list[tuple[int, str]] = []
    for line, fields, problem in rows:
        if fields is None:
            problems.append((line, problem))
        elif not "".join(fields).strip():
            pass  # a blank line is not a row
        else:
            item = reader.item(fields)
            if isinstance(item, str):
                problems.append((line, item))
            else:
                chunk.append((line, item))
        if len(chunk) >= chunk_rows or len(problems) >= chunk_rows:
            yield chunk, problems
            chunk, problems = [], []
    yield chunk, problems
