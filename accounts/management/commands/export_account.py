from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.lifecycle import LifecycleError, export_account
from accounts.models import Account


class Command(BaseCommand):
    help = "Write a backup of one account's schema (gzipped SQL) to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--output", required=True, help="The .sql.gz file to write.")

    def handle(self, *args, **options) -> None:
        account = Account.objects.filter(slug=options["slug"]).first()
        if account is None:
            raise CommandError(f"No account {options['slug']!r}")
        path = Path(options["output"])
        try:
            size = export_account(account, path)
        except LifecycleError as error:
            path.unlink(missing_ok=True)
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Exported {account.slug} ({account.schema_name}) to {path}: {size:,} bytes."
        )
