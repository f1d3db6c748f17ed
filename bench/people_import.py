"""CSV import rate: rows per second for a large file, end to end (read, check, apply),
beside a raw COPY of the same rows into segments_person measured in the same run.

    python3 -m uv run python bench/people_import.py [--rows 1000000]
"""

import argparse
import csv
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database  # noqa: E402
from bench.ingest_drain import postgres_cpu_seconds  # noqa: E402

PLANS = ["free", "basic", "pro", "enterprise"]


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first name", "plan", "seats", "country", "company"])
        for n in range(rows):
            writer.writerow([f"user{n}@example{n % 100}.com", f"Name{n % 5000}", PLANS[n % 4], n % 50,
                             ["NO", "SE", "DE", "US"][n % 4], f"Company {n % 20000}"])  # fmt: skip


def raw_copy(schema: str, path: Path) -> float:
    import orjson
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL search_path TO "{schema}"')
        # A table of its own, like segments_person (same indexes), dropped by the rollback: a
        # COPY into segments_person itself left its rolled-back rows in the heap and indexes
        # the import then wrote into.
        cursor.execute("CREATE TABLE raw_person (LIKE segments_person INCLUDING ALL)")
        columns = (
            "customer_id, email, attributes, attribute_times, unsubscribed, created_at, updated_at"
        )
        with (
            open(path, newline="") as source,
            cursor.copy(f"COPY raw_person ({columns}) FROM STDIN") as copy,
        ):
            reader = csv.reader(source)
            header = next(reader)
            for n, row in enumerate(reader):
                attributes = dict(zip(header[1:], row[1:], strict=True))
                copy.write_row((f"raw-{n}", f"raw-{row[0]}", orjson.dumps(attributes).decode(), "{}",
                                False, "2026-01-01", "2026-01-01"))  # fmt: skip
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    with ferry_database() as (folder, url, _info):
        os.environ.update(DATABASE_URL=url, FERRY_VAR_DIR=str(folder / "var"), LOG_LEVEL="WARNING",
                          DJANGO_SETTINGS_MODULE="config.settings")  # fmt: skip
        import django

        django.setup()
        from accounts.models import Account
        from segments import imports
        from segments.models import Import, Person

        account = Account.objects.get(slug="bench")
        with account:
            folder_path = imports.account_folder()
            folder_path.mkdir(parents=True, exist_ok=True)
            path = folder_path / "bench.csv"
            write_csv(path, rows)
            pgdata = folder / "pgdata"
            before = time.process_time(), postgres_cpu_seconds(pgdata)
            baseline = raw_copy(account.schema_name, path)
            baseline_cpu = cpu_since(before, pgdata)
            job = Import.objects.create(
                filename="bench.csv", stored_as="bench.csv", size_bytes=path.stat().st_size,
                columns=["email", "first name", "plan", "seats", "country", "company"],
                identifier_column="email", identifier_kind="email",
                mapping={"email": "email", "first name": "first_name", "plan": "plan", "seats": "seats",
                         "country": "country", "company": "company"},
            )  # fmt: skip
            started = time.perf_counter()
            before = time.process_time(), postgres_cpu_seconds(pgdata)
            imports.run_import(job)
            elapsed = time.perf_counter() - started
            import_cpu = cpu_since(before, pgdata)
            job.refresh_from_db()
            assert job.rows_imported == rows and Person.objects.count() == rows, (
                job.rows_imported,
                rows,
            )

    print(f"\nCSV import of {rows:,} rows (6 columns, new people)\n")
    print(f"| {'what':<32} | seconds | rows/s | x raw COPY | CPU s Python | CPU s PostgreSQL |")
    print(f"|{'-' * 34}|---------|--------|------------|--------------|------------------|")
    for label, seconds, (python, postgres) in [
        ("raw COPY of the rows (baseline)", baseline, baseline_cpu),
        ("import: read, check, apply", elapsed, import_cpu),
    ]:
        print(
            f"| {label:<32} | {seconds:>7.1f} | {rows / seconds:>6,.0f} | {baseline / seconds:>10.2f} "
            f"| {python:>12.1f} | {postgres:>16.1f} |"
        )


def cpu_since(before: tuple[float, float], pgdata: Path) -> tuple[float, float]:
    """CPU seconds since `before` of this process (all its threads) and of PostgreSQL."""
    return time.process_time() - before[0], postgres_cpu_seconds(pgdata) - before[1]


if __name__ == "__main__":
    main()
