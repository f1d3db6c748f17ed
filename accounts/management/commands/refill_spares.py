import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import InterfaceError, OperationalError, connection

from accounts import pool
from config.workers import stop_requested
from maintenance import governor

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Keep ACCOUNT_SPARE_POOL spare account schemas built ahead, so creating an account "
        "claims one (runs until stopped with --every)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0,
            help="Check the pool every N seconds (0: fill it once, then exit).",
        )  # fmt: skip
        parser.add_argument("--size", type=int, help="Spares to keep (ACCOUNT_SPARE_POOL).")

    def handle(self, *args, **options) -> None:
        stop = stop_requested() if options["every"] else (lambda: False)
        size = settings.ACCOUNT_SPARE_POOL if options["size"] is None else options["size"]
        while not stop():
            started = time.monotonic()
            try:
                built = self.round(size, stop)
                if built or not options["every"]:
                    self.stdout.write(f"Built {built} spare schemas; {pool.ready_count()} ready.")
            except governor.Stopped:
                return
            except (OperationalError, InterfaceError):
                if not options["every"]:
                    raise
                log.warning("PostgreSQL unreachable; the spare pool waits")
                connection.close()
            if not options["every"]:
                return
            while not stop() and time.monotonic() - started < options["every"]:
                time.sleep(0.5)

    def round(self, size: int, stop) -> int:
        connection.set_schema_to_public()
        if pool.ready_count() >= size:
            pool.discard_stale()
            return 0
        # Building a schema is a burst of catalog writes: a governor slot, and not while the
        # drain is behind.
        with governor.slot("refill_spares", stop=stop) as slot:
            return pool.refill(
                size, before_each=slot.wait_if_behind, after_each=lambda: slot.pace(1)
            )
