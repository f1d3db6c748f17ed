"""`migrate_schemas` (and `migrate`): the control plane, then every account schema, fast.

The public schema goes through django-tenants' standard path. Account schemas go through
accounts/migrating.py: current ones skipped by one query, the rest replayed in bounded
parallel with a progress bar; then the template schema's dump is refreshed so new accounts
are cloned from the new state. `--executor standard|multiprocessing` runs django-tenants' own
executors instead (for comparison; they know nothing about data servers).
"""

import sys

from django.core.management.base import CommandError
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

from accounts import migrating, provisioning
from accounts.models import Account


class Command(MigrateSchemasCommand):
    help = (
        "Migrate the control plane and every account schema: current schemas are skipped, "
        "the others run in bounded parallel, throttled, resumable."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--accounts-parallel", type=int, default=4, help="Schemas migrated at once (4)."
        )
        parser.add_argument(
            "--max-per-second", type=float, default=0.0,
            help="At most this many schemas started per second (0: no limit).",
        )  # fmt: skip

    def handle(self, *args, **options) -> None:
        stock = options.get("executor") or options.get("app_label") or options.get("fake")
        if stock or options.get("plan") or options.get("check_unapplied"):
            return super().handle(*args, **options)
        schema_name = options.get("schema_name")
        shared_only = options.get("shared") and not options.get("tenant")
        tenant_only = options.get("tenant") and not options.get("shared")
        if schema_name == "public":
            shared_only, schema_name = True, None
        if not tenant_only and not schema_name:
            super().handle(*args, **{**options, "shared": True, "tenant": False})
        if shared_only:
            return
        self.migrate_account_schemas(schema_name, options)

    def show_pause(self, reason: str) -> None:
        self.stderr.write(f"\rWaiting for ingestion to catch up: {reason}", ending="")

    def migrate_account_schemas(self, schema_name: str | None, options: dict) -> None:
        verbosity = int(options.get("verbosity", 1))
        targets = None
        if schema_name:
            account = Account.objects.filter(schema_name=schema_name).first()
            if account is None:
                raise CommandError(f"No account has the schema {schema_name!r}")
            targets = [migrating.Target(account.schema_name, account.server, account.slug)]
        show = migrating.progress_bar(sys.stderr) if verbosity >= 1 else None
        report = migrating.migrate_accounts(
            targets,
            parallel=options["accounts_parallel"],
            max_per_second=options["max_per_second"],
            progress=show,
            on_pause=self.show_pause if verbosity >= 1 else None,
        )
        if not report.ok:
            raise CommandError(
                f"Stopped: {report.failed.label} (schema {report.failed.schema} on server "
                f"{report.failed.server}) failed in {report.failed_migration or 'migrate'}: "
                f"{report.error}. {report.migrated} schemas were migrated before it; "
                "run the command again to resume once it is fixed."
            )
        if targets is None:
            provisioning.refresh_template(verbosity=max(0, verbosity - 1))
        if verbosity >= 1:
            self.stdout.write(
                f"Account schemas: {report.total} checked, {report.current} already current, "
                f"{report.migrated} migrated in {report.seconds:.2f}s."
            )
