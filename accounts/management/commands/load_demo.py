from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts import actions
from accounts.models import Account, User

STAFF = ("staff@ferry.localhost", "ferry-staff-demo")
DEMO_ACCOUNTS = [
    ("acme", "Acme Corporation", "owner@acme.example", "ferry-demo-acme"),
    ("globex", "Globex Corporation", "owner@globex.example", "ferry-demo-globex"),
]


class Command(BaseCommand):
    help = "Load the demo staff user and accounts once; running it again changes nothing."

    def handle(self, *args, **options) -> None:
        email, password = STAFF
        if not User.objects.filter(email=email).exists():
            User.objects.create_superuser(email, password, name="Ferry Staff")
            self.stdout.write(f"Created staff user {email}")
        for slug, name, owner_email, owner_password in DEMO_ACCOUNTS:
            if Account.objects.filter(slug=slug).exists():
                continue
            actions.create_account(
                slug=slug, name=name, owner_email=owner_email, owner_password=owner_password
            )
            self.stdout.write(f"Created demo account {slug}")
        call_command("load_status_demo", verbosity=options["verbosity"])
        call_command("load_messaging_demo", verbosity=options["verbosity"])
