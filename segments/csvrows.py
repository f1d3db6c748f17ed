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
            problem = unreadable("".join(fields))
            yield line, None if problem else fields, problem


def unreadable(joined: str) -> str:
    """Why a record (its fields joined) cannot be imported whatever its columns, or ""."""
    if not joined.isascii() and UNDECODABLE.search(joined):
        return "not valid UTF-8: save the file as UTF-8 and import again"
    if "\x00" in joined:
        # PostgreSQL cannot store NUL in text: the whole chunk would fail to apply.
        return "contains a NUL byte, which cannot be stored"
    return ""


# First characters that make a cell worth trying as a boolean or a number (typed); any other
# ASCII one means text. (Other scripts' digits are numbers too: float reads them.)
MAYBE_BOOLEAN = frozenset("tfTF")
MAYBE_NUMBER = frozenset("0123456789-+.")


def typed(value: str) -> object:
    """CSV text as a number or boolean where it clearly is one; otherwise the text itself."""
    first = value[:1]
    if first in MAYBE_BOOLEAN:
        lowered = value.lower()
        return lowered == "true" if lowered in ("true", "false") else value
    if first not in MAYBE_NUMBER and (first.isascii() or not first.isdigit()):
        return value
    if len(value) < 16 and value.isascii() and value.isdigit():
        return int(value)  # what float gives below (exact up to 15 digits), without it
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


def email_value(value: str) -> str:
    return value.strip().lower()


# Text this many characters long or shorter is within the limits in any encoding (a character
# is at most 4 bytes): only longer text is encoded to be measured.
SHORT_ID = MAX_ID_BYTES // 4
SHORT_VALUE = MAX_ATTRIBUTE_VALUE_BYTES // 4


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
            (positions[column], column, name, email_value if name == "email" else typed)
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
        if len(identifier) > SHORT_ID and len(identifier.encode()) > MAX_ID_BYTES:
            return f"the identifier is longer than {MAX_ID_BYTES} bytes"
        if self.by_email:
            if "@" not in identifier:
                return f"“{identifier[:60]}” is not an email address"
            person = {"email": identifier.lower()}
        else:
            person = {"id": identifier}
        attributes = {}
        for index, column, name, convert in self.mapped:
            value = fields[index]
            if not value:
                continue
            if len(value) > SHORT_VALUE and len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
                return f"the value of “{column}” is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
            attributes[name] = convert(value)
        email = attributes.get("email")
        if email is not None and "@" not in email:
            return f"“{email[:60]}” in the email column is not an email address"
        # As the Track API has it: a boolean, never text (the drain would take "no" as true).
        unsubscribed = attributes.get("unsubscribed")
        if unsubscribed is not None and type(unsubscribed) is not bool:
            return f"“{str(unsubscribed)[:60]}” for unsubscribed is not true or false"
        return {"op": "identify", "person": person, "attributes": attributes,
                "update_only": False, "at": self.at, "anonymous_id": None}  # fmt: skip


def checked_chunks(path: Path, reading: dict, chunk_rows: int) -> Iterator[Chunk]:
    """The file's rows a chunk at a time: (line, item) to apply and (line, reason) rejected.

    `reading` holds RowReader's arguments but the header, which is the file's first line.
    One loop over the csv reader, where read_rows' generator would cost a step per row.
    """
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        records = csv.reader(text)
        try:
            header = next(records, None)
        except csv.Error as error:
            header, problem = None, f"malformed CSV ({error})"
        else:
            problem = "the file is empty" if header is None else unreadable("".join(header))
        if header is None or problem:  # preview accepted it: the file changed since
            raise ValueError(f"the header line cannot be read: {problem}")
        reader = RowReader(header=[name.strip() for name in header], **reading)
        item = reader.item
        chunk: list[tuple[int, dict]] = []
        problems: list[tuple[int, str]] = []
        line = records.line_num + 1  # where the next record begins
        while True:
            try:
                for fields in records:
                    joined = "".join(fields)
                    if problem := unreadable(joined):
                        problems.append((line, problem))
                    elif joined and not joined.isspace():  # else a blank line, not a row
                        checked = item(fields)
                        if type(checked) is str:
                            problems.append((line, checked))
                        else:
                            chunk.append((line, checked))
                    line = records.line_num + 1
                    if len(chunk) >= chunk_rows or len(problems) >= chunk_rows:
                        yield chunk, problems
                        chunk, problems = [], []
            except csv.Error as error:
                problems.append((line, f"malformed CSV ({error})"))
                line = records.line_num + 1
                if len(problems) >= chunk_rows:
                    yield chunk, problems
                    chunk, problems = [], []
                continue
            break
        yield chunk, problems
