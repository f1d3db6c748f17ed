from django.core.management.base import BaseCommand, CommandParser

from config.workers import stop_requested
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
        run_forever(stop=stop_requested())
