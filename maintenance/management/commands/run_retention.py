import logging
import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import InterfaceError, OperationalError, connection
from django.db.models import F

from accounts.models import Account
from config.workers import stop_requested
from maintenance import governor
from maintenance.retention import Cleaned, clean_account, clean_control_plane

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Delete events, deliveries and dead letters past each account's retention, account by "
        "account in small batches under the governor (runs until stopped with --every)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=float,
            default=0,
            help="Start a round every N seconds (0: one round, then exit).",
        )
        parser.add_argument("--account", help="Clean only this account (its slug).")

    def handle(self, *args, **options) -> None:
        stop = stop_requested() if options["every"] else (lambda: False)
        while not stop():
            started = time.monotonic()
            try:
                cleaned = self.round(options["account"], stop)
                self.stdout.write(
                    f"Deleted {cleaned.events} events, {cleaned.deliveries} deliveries, "
                    f"{cleaned.dead_letters} dead letters; "
                    f"recomputed {cleaned.segments_recomputed} segments."
                )
            except governor.Stopped:
                return
            except (OperationalError, InterfaceError):
                if not options["every"]:
                    raise
                log.warning("PostgreSQL unreachable; retention cleanup waits")
                connection.close()
            if not options["every"]:
                return
            while not stop() and time.monotonic() - started < options["every"]:
                time.sleep(0.5)

    def round(self, slug: str | None, stop) -> Cleaned:
        connection.set_schema_to_public()
        accounts = Account.objects.exclude(schema_name="public")
        if slug:
            accounts = accounts.filter(slug=slug)
        # Longest since its last cleanup first, so a restarted worker does not starve anyone.
        accounts = accounts.order_by(F("retention__cleaned_at").asc(nulls_first=True), "pk")
        total = Cleaned()
        for account in list(accounts):
            with governor.slot("retention", account, stop=stop) as slot:
                total += clean_account(account, slot)
        if not slug:
            with governor.slot("retention", None, stop=stop) as slot:
                total += clean_control_plane(slot)
        return total
