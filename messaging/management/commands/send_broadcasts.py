from django.core.management.base import BaseCommand, CommandParser

from config.workers import stop_requested
from messaging.sending import send_due_broadcasts, send_forever


class Command(BaseCommand):
    help = "Send due broadcasts across accounts, throttled and resumable (runs until stopped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Send everything that is due, then exit."
        )

    def handle(self, *args, **options) -> None:
        if options["once"]:
            total = 0
            while handled := send_due_broadcasts():
                total += handled
            self.stdout.write(f"Handled {total} deliveries.")
            return
        send_forever(stop=stop_requested())
