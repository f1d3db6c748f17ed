import signal

from django.core.management.base import BaseCommand, CommandParser

from ingest.imports_worker import claim_task, run_forever, run_task


class Command(BaseCommand):
    help = "Run queued CSV imports, each in its own account (runs until stopped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run what is queued, then exit.")

    def handle(self, *args, **options) -> None:
        if options["once"]:
            while task := claim_task():
                run_task(task)
            return
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        run_forever(stop=lambda: stopping)
