import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands.load_demo import DEMO_ACCOUNTS, STAFF
from accounts.models import Account


class Command(BaseCommand):
    help = "Migrate, load the demo data once, collect static files and serve with gunicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "3")))
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo data.")

    def handle(self, *args, **options) -> None:
        call_command("migrate_schemas", interactive=False, verbosity=0)
        if not options["no_demo"]:
            call_command("load_demo", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.print_banner(options["port"], demo=not options["no_demo"])
        gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"{options['host']}:{options['port']}",
                "--workers",
                str(options["workers"]),
                "--access-logfile",
                "-",
            ]
        )
        # Ctrl-C reaches gunicorn too; wait for it so the embedded database stops after it.
        signal.signal(signal.SIGTERM, lambda *_: gunicorn.terminate())
        while True:
            try:
                sys.exit(gunicorn.wait())
            except KeyboardInterrupt:
                gunicorn.terminate()

    def print_banner(self, port: int, *, demo: bool) -> None:
        base = f"http://{settings.BASE_DOMAIN}:{port}"
        lines = [
            "",
            "Ferry is starting.",
            f"  Staff console   {base}/staff/",
            f"  Django admin    {base}/admin/",
        ]
        if demo:
            lines.append(f"  Staff login     {STAFF[0]} / {STAFF[1]}")
            for slug, _name, email, password in DEMO_ACCOUNTS:
                if Account.objects.filter(slug=slug).exists():
                    lines.append(
                        f"  {slug:<15} http://{slug}.{settings.BASE_DOMAIN}:{port}/login/"
                        f"  {email} / {password}"
                    )
        lines.append("Press Ctrl-C to stop (the embedded database stops with it).\n")
        self.stdout.write("\n".join(lines))
