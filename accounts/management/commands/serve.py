import os
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands.load_demo import DEMO_ACCOUNTS, STAFF
from accounts.models import Account
from config.workers import stop_requested

# Background processes the run command keeps beside the web server, as manage.py commands.
# Drain workers serialise per account and run in parallel across accounts.
WORKER_COMMANDS: list[list[str]] = [
    *[["drain"]] * int(os.environ.get("INGEST_DRAIN_WORKERS", "2")),
    ["status_worker"],
    ["run_imports"],
    ["sweep_segments", "--every", "60"],
    ["send_broadcasts"],
    ["run_retention", "--every", str(settings.RETENTION_EVERY_SECONDS)],
    ["refill_spares", "--every", "5"],
]


def supervise(web: list[str], workers: list[list[str]], address: tuple[str, int]) -> int:
    """Run the web server and the workers until one exits or we are told to stop; then stop
    them all. The workers start once the web server listens: on two cores, six Pythons
    booting at once would only delay the first page.

    The embedded database (if any) stops after them, when this process exits.
    """
    stop = stop_requested()
    processes = [subprocess.Popen(web)]
    deadline = time.monotonic() + 30
    while not stop() and processes[0].poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    processes += [subprocess.Popen(command) for command in workers]
    while not stop() and all(process.poll() is None for process in processes):
        time.sleep(0.2)
    exited = [process.returncode for process in processes if process.poll() is not None]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        process.wait()
    return 0 if stop() else (exited[0] or 1)


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
        # --preload: Django is imported once and forked, not once per worker on two cores.
        web = [
            sys.executable, "-m", "gunicorn", "config.wsgi",
            "--bind", f"{options['host']}:{options['port']}",
            "--workers", str(options["workers"]), "--preload",
            "--access-logfile", "-",
        ]  # fmt: skip
        workers = [[sys.executable, "manage.py", *command] for command in WORKER_COMMANDS]
        sys.exit(supervise(web, workers, (options["host"], options["port"])))

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
