import logging
import signal
import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import InterfaceError, OperationalError, connection, transaction

from accounts.models import Account
from maintenance import governor
from segments.membership import sweep

log = logging.getLogger(__name__)


def sweep_account(account: Account) -> int:
    """One account's time-window segments recomputed, in one transaction on its schema."""
    with account, transaction.atomic():
        return len(sweep())


class Command(BaseCommand):
    help = (
        'Recompute segments whose rules change with time alone ("within the last 7 days") '
        "and record every segment's size for today, account by account."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, help="Repeat every N seconds (0: sweep once)."
        )
        parser.add_argument("--account", help="Sweep only this account (its slug).")

    stopping = False

    def handle(self, *args, **options) -> None:
        def stop(*_: object) -> None:
            self.stopping = True

        if options["every"]:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        while True:
            started = time.monotonic()
            try:
                swept = self.sweep_all(options["account"])
                self.stdout.write(f"Swept {swept} segments.")
            except governor.Stopped:
                return  # told to stop while waiting for the drain to catch up
            except (OperationalError, InterfaceError):
                if not options["every"]:
                    raise
                log.warning("PostgreSQL unreachable; the segment sweep waits")
                connection.close()
            if not options["every"]:
                return
            while not self.stopping and time.monotonic() - started < options["every"]:
                time.sleep(0.5)
            if self.stopping:
                return

    def sweep_all(self, slug: str | None) -> int:
        connection.set_schema_to_public()
        accounts = Account.objects.exclude(schema_name="public")
        if slug:
            accounts = accounts.filter(slug=slug)
        swept = 0
        # Background work yields to ingestion: one governor slot for the pass, which waits
        # while the drain is behind before each account and keeps the duty cycle after it.
        # Every job carries its account: one transaction per account, on that schema alone.
        with governor.slot("segment sweep", stop=lambda: self.stopping) as slot:
            for account in list(accounts):
                slot.wait_if_behind()
                count = sweep_account(account)
                swept += count
                slot.pace(count)
        return swept
