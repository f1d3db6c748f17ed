"""The status module's background work, in a loop beside gunicorn (`serve` starts it).

Each round: start and complete scheduled maintenance whose time has come, send due
notifications from the outbox, and publish the snapshot if none exists. Every round is
safe to run in several processes at once (rows are taken with SKIP LOCKED, publishing holds
an advisory lock). A database outage is waited out, never a reason to exit: the run command
stops everything when one of its processes exits.
"""

import logging
import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from config.workers import stop_requested
from status.actions import advance_maintenances
from status.notifications import deliver_due_notifications
from status.snapshot import current_snapshot, publish_snapshot

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start/complete maintenance, send queued notifications, keep the snapshot published."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one round and exit.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between rounds.")

    def handle(self, *args, **options) -> None:
        if options["once"]:
            self.run_round(publish_at_start=False)
            return
        stopping = stop_requested()
        # A fresh start republishes, so a deploy's new templates reach the page at once.
        publish_at_start = True
        while not stopping():
            try:
                close_old_connections()
                self.run_round(publish_at_start)
                publish_at_start = False
            except DatabaseError as error:
                log.warning("status worker: database unavailable (%s); retrying", error)
                connection.close()
            except Exception:
                log.exception("status worker round failed; retrying")
            deadline = time.monotonic() + options["interval"]
            while not stopping() and time.monotonic() < deadline:
                time.sleep(0.1)

    def run_round(self, publish_at_start: bool) -> None:
        connection.set_schema_to_public()
        now = timezone.now()
        moved = advance_maintenances(now)
        sent = deliver_due_notifications(now)
        if publish_at_start or current_snapshot() is None:
            publish_snapshot()
        if moved or sent:
            self.stdout.write(f"maintenance moved: {len(moved)}, notifications tried: {sent}")
