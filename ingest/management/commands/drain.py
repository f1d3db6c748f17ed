import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from config.workers import stop_requested
from ingest.drain import drain_batches, drain_forever
from ingest.spool import get_spool


class Command(BaseCommand):
    help = "Apply spooled ingestion items to the accounts' schemas (runs until stopped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Drain until the spool is empty, then exit."
        )
        parser.add_argument("--batch-size", type=int, default=settings.INGEST_BATCH_SIZE)
        parser.add_argument("--lease", type=float, default=settings.INGEST_LEASE_SECONDS)

    def handle(self, *args, **options) -> None:
        spool = get_spool()
        if options["once"]:
            total, started, claimed = 0, time.time(), True
            cpu_started = time.process_time()
            while claimed:
                claimed = False
                for result in drain_batches(spool, options["batch_size"], options["lease"]):
                    if result.database_down:
                        raise SystemExit("PostgreSQL is unreachable; the items stay in the spool.")
                    total += result.applied
                    claimed = True
            # Start and end as unix times, so that several workers can be timed together; the
            # CPU time of this process (both threads) for the benchmark's accounts.
            self.stdout.write(
                f"Applied {total} items from {started:.3f} to {time.time():.3f}"
                f" using {time.process_time() - cpu_started:.3f} s of CPU."
            )
            return
        drain_forever(spool, options["batch_size"], options["lease"], stop=stop_requested())
