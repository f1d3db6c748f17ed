from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.lifecycle import (
    LifecycleError,
    cancel_deletion,
    purge_due_accounts,
    schedule_deletion,
)
from accounts.models import Account


class Command(BaseCommand):
    help = (
        "Schedule an account's deletion (confirm by repeating its slug), cancel it, or drop "
        "the accounts whose grace period is over (--purge-due, for cron)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", nargs="?")
        parser.add_argument("--confirm", default="", help="The slug again, to confirm.")
        parser.add_argument("--cancel", action="store_true")
        parser.add_argument("--purge-due", action="store_true")

    def handle(self, *args, **options) -> None:
        if options["purge_due"]:
            purged = purge_due_accounts()
            self.stdout.write(f"Deleted {len(purged)} accounts: {', '.join(purged) or 'none'}.")
            return
        account = Account.objects.filter(slug=options["slug"] or "").first()
        if account is None:
            raise CommandError(f"No account {options['slug']!r}")
        try:
            if options["cancel"]:
                cancel_deletion(account)
                self.stdout.write(f"Deletion of {account.slug} cancelled.")
                return
            schedule_deletion(account, options["confirm"])
        except LifecycleError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{account.slug} is scheduled for deletion after "
            f"{account.delete_after:%Y-%m-%d %H:%M} UTC; its dashboard is closed. "
            f"Cancel with `delete_account {account.slug} --cancel`."
        )
