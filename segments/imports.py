"""CSV imports: reading the file, checking each row, applying rows through ingestion's apply.

Rows are applied in chunks by ingest.apply.apply_items, the same code the drain uses, so an
import follows the same rules as the API (attribute timestamps, suppressions). Every row is
either imported or listed with its line number and the reason it was not.
"""

import csv
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Full, Queue

from django.conf import settings
from django.db import connection
from django.utils import timezone

from ingest.apply import apply_items, collector_paused
from ingest.wire import MAX_ATTRIBUTE_VALUE_BYTES, MAX_ID_BYTES
from segments.models import Import, ImportRejection

PREVIEW_ROWS = 5
CHUNK_ROWS = 20_000
csv.field_size_limit(1024 * 1024)


def account_folder() -> Path:
    return Path(settings.IMPORTS_DIR) / connection.schema_name


def store_upload(upload) -> tuple[str, int]:
    """Keep the uploaded file in the account's own folder; returns (name, size)."""
    folder = account_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.csv"
    size = 0
    with open(folder / name, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
            size += len(chunk)
    return name, size


def stored_path(job: Import) -> Path:
    return account_folder() / job.stored_as


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
            if any("\x00" in field for field in fields):
                # PostgreSQL cannot store NUL in text: the whole chunk would fail to apply.
                yield line, None, "contains a NUL byte, which cannot be stored"
                continue
            yield line, fields, ""


# Bytes that were not UTF-8, as `surrogateescape` decoding leaves them.
UNDECODABLE = re.compile("[\udc80-\udcff]")


def preview(path: Path) -> tuple[list[str], list[list[str]], str]:
    """The header, the first rows and a problem with the header if there is one."""
    rows = read_rows(path)
    first = next(rows, None)
    if first is None:
        return [], [], "The file is empty."
    _, header, problem = first
    if header is None:
        return [], [], f"The header line cannot be read: {problem}."
    header = [name.strip() for name in header]
    if not any(header):
        return [], [], "The first line must name the columns."
    if len(set(header)) != len(header):
        return header, [], "Column names must be unique."
    sample = [
        fields
        for _, fields, _ in (next(rows, (0, None, "")) for _ in range(PREVIEW_ROWS))
        if fields
    ]
    return header, sample, ""


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

    def __init__(self, job: Import, header: list[str], at: float) -> None:
        self.job, self.width, self.at = job, len(header), at
        positions = {name: index for index, name in enumerate(header)}  # the last one wins
        self.identifier = positions.get(job.identifier_column)
        self.by_email = job.identifier_kind == Import.IdentifierKind.EMAIL
        self.mapped = [
            (positions[column], column, name)
            for column, name in job.mapping.items()
            if column in positions
        ]

    def item(self, fields: list[str]) -> dict | str:
        """The identify item for one row, or the reason it cannot be imported."""
        if len(fields) != self.width:
            return f"has {len(fields)} fields where the header has {self.width}"
        identifier = fields[self.identifier].strip() if self.identifier is not None else ""
        if not identifier:
            return f"the identifier column “{self.job.identifier_column}” is empty"
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


def run_import(job: Import) -> None:
    """Import every row; the connection is on the job's account schema.

    A thread reads and checks the file a chunk ahead while this one applies the chunk before
    (mostly waiting on PostgreSQL), so the two overlap. Only this thread touches the database.
    """
    path = stored_path(job)
    job.state, job.started_at = Import.State.RUNNING, timezone.now()
    job.rows_total = max(0, _count_lines(path) - 1)
    job.save(update_fields=["state", "started_at", "rows_total"])
    with collector_paused():
        for chunk, problems in in_background(checked_chunks(job, path)):
            _reject(job, problems)
            _apply(job, chunk)
    job.rows_total = job.rows_done  # exact now: quoted line breaks and blank lines counted right
    job.state, job.finished_at = Import.State.DONE, timezone.now()
    job.save(update_fields=["state", "finished_at", "rows_total"])


Chunk = tuple[list[tuple[int, dict]], list[tuple[int, str]]]


def checked_chunks(job: Import, path: Path) -> Iterator[Chunk]:
    """The file's rows a chunk at a time: (line, item) to apply and (line, reason) rejected."""
    rows = read_rows(path)
    _, header, _ = next(rows)
    reader = RowReader(job, [name.strip() for name in header], time.time())
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
        if len(chunk) >= CHUNK_ROWS or len(problems) >= CHUNK_ROWS:
            yield chunk, problems
            chunk, problems = [], []
    yield chunk, problems


def in_background[T](source: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The values of `source`, produced by a thread of their own up to `depth` ahead."""
    queue: Queue = Queue(maxsize=depth)
    stopped = threading.Event()
    end = object()

    def put(value: object) -> None:
        while not stopped.is_set():
            try:
                queue.put(value, timeout=0.1)
                return
            except Full:
                continue

    def produce() -> None:
        try:
            for value in source:
                put(value)
                if stopped.is_set():
                    return
            put(end)
        except BaseException as error:  # handed to the consumer, raised there
            put(error)

    threading.Thread(target=produce, name="import-reader", daemon=True).start()
    try:
        while (value := queue.get()) is not end:
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stopped.set()


def _apply(job: Import, chunk: list[tuple[int, dict]]) -> None:
    if chunk:
        outcome = apply_items([item for _, item in chunk])
        failed = {index for index, _ in outcome.failures}
        _reject(job, [(chunk[index][0], reason) for index, reason in outcome.failures], count=False)
        suppressed = outcome.suppressed
        job.rows_imported += len(chunk) - len(failed) - suppressed
        job.rows_rejected += len(failed)
        if suppressed:
            # Apply skips suppressed people without naming them; find their lines here.
            _reject(job, _suppressed_lines(chunk, failed), count=True)
    job.rows_done = job.rows_imported + job.rows_rejected
    job.save(update_fields=["rows_imported", "rows_rejected", "rows_done"])


def _suppressed_lines(chunk: list[tuple[int, dict]], failed: set[int]) -> list[tuple[int, str]]:
    from segments.models import Suppression

    keys = {(kind, value) for kind, value in Suppression.objects.values_list("kind", "value")}
    lines = []
    for index, (line, item) in enumerate(chunk):
        person = item["person"]
        email = item["attributes"].get("email")
        if index not in failed and (
            {("id", person.get("id")), ("email", person.get("email")), ("email", email)} & keys
        ):
            lines.append((line, "this person is suppressed"))
    return lines


def _reject(job: Import, problems: list[tuple[int, str]], count: bool = True) -> None:
    if not problems:
        return
    ImportRejection.objects.bulk_create(
        [ImportRejection(job=job, line=line, reason=reason) for line, reason in problems]
    )
    if count:
        job.rows_rejected += len(problems)
        job.rows_done = job.rows_imported + job.rows_rejected


def _count_lines(path: Path) -> int:
    """Lines in the file, fast: the progress bar's total until the exact count is known."""
    with open(path, "rb") as data:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: data.read(1 << 20), b""))


def fail(job: Import, error: str) -> None:
    job.state, job.error, job.finished_at = Import.State.FAILED, error, timezone.now()
    job.save(update_fields=["state", "error", "finished_at"])
