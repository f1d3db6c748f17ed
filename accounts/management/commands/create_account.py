import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import actions
from accounts.forms import AccountCreateForm


class Command(BaseCommand):
    help = "Create an account with its own schema, its subdomain and its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="Subdomain of the account, e.g. acme")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument(
            "--owner-password", help="Without it the owner is emailed a link to choose one."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options) -> None:
        form = AccountCreateForm(
            {
                "slug": options["slug"],
                "name": options["name"],
                "owner_email": options["owner_email"],
                "owner_password": options["owner_password"] or "",
            }
        )
        if not form.is_valid():
            problems = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
            )
            raise CommandError(problems)

        def show_provisioning(account) -> None:
            self.stderr.write(
                f"Provisioning {account.slug}: no spare schema was ready, building it from "
                "the template (the refill worker keeps spares; see ACCOUNT_SPARE_POOL)."
            )

        account = actions.create_account(**form.cleaned_data, on_provisioning=show_provisioning)
        result = {
            "slug": account.slug,
            "name": account.name,
            "schema": account.schema_name,
            "domain": account.host,
            "login_url": account.url("/login/"),
            "owner_email": form.cleaned_data["owner_email"],
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"Created {result['slug']} (schema {result['schema']}) at {result['login_url']}"
            )
