from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.forms import AccountCreateForm
from accounts.lifecycle import LifecycleError, import_account


class Command(BaseCommand):
    help = "Create an account from an export_account file (new slug, new schema)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--server", default="default", help="The data server to put it on.")

    def handle(self, *args, **options) -> None:
        form = AccountCreateForm(
            {"slug": options["slug"], "name": options["name"], "owner_email": "x@example.com"}
        )
        if not form.is_valid() and ("slug" in form.errors or "name" in form.errors):
            errors = {k: v for k, v in form.errors.items() if k in ("slug", "name")}
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        try:
            account = import_account(
                Path(options["path"]), slug=options["slug"], name=options["name"],
                server=options["server"],
            )  # fmt: skip
        except (LifecycleError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Imported {account.slug} (schema {account.schema_name} on {account.server}) "
            f"at {account.url('/login/')}."
        )
