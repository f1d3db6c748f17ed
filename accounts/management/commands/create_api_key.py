import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account, ApiKey


class Command(BaseCommand):
    help = "Issue API credentials for an account and print them (the secrets are shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="Default")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options) -> None:
        account = Account.objects.filter(slug=options["slug"]).first()
        if account is None:
            raise CommandError(f"No account {options['slug']!r}.")
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        key, issued = ApiKey.issue(account, name, created_by="manage.py")
        result = {
            "account": account.slug,
            "name": key.name,
            "site_id": issued.site_id,
            "api_key": issued.api_key,
            "write_key": issued.write_key,
            "tracker_key": issued.tracker_key,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for label, value in result.items():
                self.stdout.write(f"{label:>12}: {value}")
