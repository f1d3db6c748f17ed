"""CSV imports: reading the file, checking each row, applying rows through ingestion's apply.

Rows are applied in chunks by ingest.apply.apply_items, the same code the drain uses, so an
import follows the same rules as the API (attribute timestamps, suppressions). Every row is
either imported or listed with its line number and the reason it was not.
"""

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ingest.apply import (
    Batch,
    Outcome,
    WriterConnection,
    another_writer_waits,
    apply_items,
    collector_paused,
    prepare,
    write_batch,
    writer_fed_promptly,
)  # fmt: skip
from segments.csvrows import checked_chunks, read_rows
from segments.models import Import, ImportRejection

log = logging.getLogger(__name__)

PREVIEW_ROWS = 5
CHUNK_ROWS = 20_000
# How often an import holding the account's writer lock looks for someone waiting for it (the
# drain, a dashboard edit); if someone is, it lets its chunks in flight finish and releases
# the lock so that they get their turn (see _apply_overlapped).
STRETCH_SECONDS = 5.0


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


def run_import(job: Import) -> None:
    """Import every row; the connection is on the job's account schema.

    The file is read and checked a chunk ahead by a thread while the chunks before are applied.
    (A process of its own for large files was tried: no faster at the same load, and about
    60 % more CPU time for the import's Python, spent pickling chunks and unpickling them.)
    Chunks are planned on this thread's connection while the one before is written on another
    (_apply_overlapped), unless the caller holds a transaction open: another connection would
    not see its rows, so the chunks are applied one after another here.
    """
    path = stored_path(job)
    job.state, job.started_at = Import.State.RUNNING, timezone.now()
    job.rows_total = max(0, _count_lines(path) - 1)
    job.save(update_fields=["state", "started_at", "rows_total"])
    reading = {
        "identifier_column": job.identifier_column,
        "by_email": job.identifier_kind == Import.IdentifierKind.EMAIL,
        "mapping": job.mapping,
        "at": time.time(),
    }
    chunks = in_background(checked_chunks(path, reading, CHUNK_ROWS))
    with collector_paused(), writer_fed_promptly():
        if connection.in_atomic_block:
            for chunk, problems in chunks:
                _apply_chunk(job, chunk, problems)
        else:
            _apply_overlapped(job, chunks)
    job.rows_total = job.rows_done  # exact now: quoted line breaks and blank lines counted right
    job.state, job.finished_at = Import.State.DONE, timezone.now()
    job.save(update_fields=["state", "finished_at", "rows_total"])


class ChunkWriter(WriterConnection):
    """The import's writer connection (ingest.apply.WriterConnection): it writes the planned
    chunks and keeps the job's report. Only this thread touches the job while a write is under
    way."""

    def __init__(self, job: Import) -> None:
        self.job = job
        super().__init__("import-writer")

    def write(self, planned: "Planned") -> Future:
        return self.submit(self._write, planned)

    def _write(self, planned: "Planned") -> Exception | None:
        """Write and report a chunk; the database's error if the chunk's transaction failed
        (nothing of it committed, nothing reported). Errors after the commit are raised: the
        chunk must not be applied again. (Apply's own cursors raise psycopg's errors, not
        Django's.)"""
        try:
            with transaction.atomic():
                write_batch(planned.batch, planned.outcome, planned.items, planned.received_at)
        except (DatabaseError, psycopg.Error) as error:
            return error
        _reject(self.job, planned.problems)
        _report(self.job, planned.chunk, planned.outcome)
        return None


@dataclass
class Planned:
    """A chunk read and planned, to be written: its rows, the reader's rejections, the items
    and what apply made of them."""

    chunk: list[tuple[int, dict]]
    problems: list[tuple[int, str]]
    items: list[dict]
    received_at: float
    batch: Batch
    outcome: Outcome


def _plan(chunk: list[tuple[int, dict]], problems: list, previous: Batch | None) -> Planned:
    items = [item for _, item in chunk]
    received_at = time.time()
    return Planned(chunk, problems, items, received_at, *prepare(items, received_at, previous))


def _apply_overlapped(job: Import, chunks: Iterator) -> None:
    """Plan each chunk on this thread while the one before is written on the writer's.

    While chunk N is written (not committed), chunk N+1 is read from the database and given
    N's people as N leaves them (Batch.carry_over); N+1 is handed to the writer only after N
    committed. The writer holds the account's writer lock from before N+1's read to after its
    write. Every STRETCH_SECONDS or so it looks whether another writer waits for the lock; if
    one does, it lets go once no chunk is in flight, so the drain waits seconds, not the whole
    import. Nobody waiting, it keeps the lock: letting go emptied the pipeline for nothing
    every few seconds (a chunk written with nothing planned beside it, then one planned with
    nothing written beside it). A chunk whose write fails (a person created meanwhile
    by something that does not take the lock, say) is applied again on its own from the
    database, the next one planned again after it: its rows are counted once, when written.
    """
    writer = ChunkWriter(job)
    pending: tuple[Planned, Future] | None = None
    try:
        stretch_began = 0.0
        for chunk, problems in chunks:
            if pending is None:
                writer.lock()
                stretch_began = time.monotonic()
            planned = _plan(chunk, problems, pending[0].batch if pending else None)
            if pending is not None and not _settle(writer, job, pending):
                writer.lock()
                planned = _plan(chunk, problems, None)
            pending = (planned, writer.write(planned))
            if time.monotonic() - stretch_began >= STRETCH_SECONDS:
                if another_writer_waits():
                    settling, pending = pending, None
                    _settle(writer, job, settling)
                    writer.unlock()
                else:
                    stretch_began = time.monotonic()
        if pending is not None:
            _settle(writer, job, pending)
    finally:
        if pending is not None:
            pending[1].exception()  # an error here leaves the report as far as it was written
        writer.close()


def _settle(writer: ChunkWriter, job: Import, pending: tuple[Planned, Future]) -> bool:
    """Wait for the chunk in flight; False if its transaction failed, after applying it again
    on its own (the writer lock let go first): what was planned on it is void."""
    planned, future = pending
    failure = future.result()
    if failure is None:
        return True
    log.warning("an import chunk failed to write, applied again on its own: %s", failure)
    writer.unlock()
    # Read afresh on this connection; if this fails too, the import fails with the error.
    _apply_chunk(job, planned.chunk, planned.problems)
    return False


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


def _apply_chunk(job: Import, chunk: list[tuple[int, dict]], problems: list) -> None:
    """A chunk applied whole on this connection: the reader's rejections, then its rows."""
    _reject(job, problems)
    outcome = apply_items([item for _, item in chunk]) if chunk else Outcome()
    _report(job, chunk, outcome)


def _report(job: Import, chunk: list[tuple[int, dict]], outcome: Outcome) -> None:
    """Count and list a written chunk's rows."""
    if chunk:
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
