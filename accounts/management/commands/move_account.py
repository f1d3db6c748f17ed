import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account, AccountMove
from accounts.moving import MoveError, abort_move, move_account


class Command(BaseCommand):
    help = (
        "Move an account's schema to another data server: pause its drain, copy, verify, "
        "switch, resume. The old copy is kept until cleanup_move. Run it again after a "
        "crash to recover and retry, or with --abort to recover only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--to", dest="target", help="A data server name.")
        parser.add_argument(
            "--abort", action="store_true",
            help="Roll back a move whose process died (or finish it if it had switched), "
                 "drop queued ones, and move nothing.",
        )  # fmt: skip
        parser.add_argument("--move-id", type=int, help="Run a move staff queued.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options) -> None:
        account = Account.objects.filter(slug=options["slug"]).first()
        if account is None:
            raise CommandError(f"No account {options['slug']!r}")
        if options["abort"]:
            self.abort(account, options)
            return
        if not options["target"]:
            raise CommandError("--to SERVER is required (or --abort)")
        move = None
        if options["move_id"]:
            move = AccountMove.objects.filter(pk=options["move_id"], account=account).first()
            if move is None or move.phase != AccountMove.Phase.QUEUED:
                raise CommandError(f"No queued move {options['move_id']} for {account.slug}")

        def show(move: AccountMove) -> None:
            if not options["json"] and int(options["verbosity"]) >= 1:
                tables = f" [{move.tables_done}/{move.tables} tables]" if move.tables else ""
                self.stderr.write(f"{move.get_phase_display()}{tables}: {move.detail}")

        try:
            move = move_account(account, options["target"], move=move, progress=show)
        except MoveError as error:
            raise CommandError(str(error)) from None
        result = {
            "move": move.pk,
            "account": account.slug,
            "from": move.source,
            "to": move.target,
            "phase": move.phase,
            "rows": move.rows,
            "write_pause_seconds": move.write_pause_seconds,
            "old_schema": move.old_schema,
            "error": move.error,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        elif move.phase == AccountMove.Phase.DONE:
            self.stdout.write(
                f"Moved {account.slug} to {move.target}: {move.rows:,} rows verified, writes "
                f"paused {move.write_pause_seconds:.2f}s. Old copy kept as {move.source}:"
                f"{move.old_schema}; drop it with `manage.py cleanup_move {move.pk}`."
            )
        if move.phase == AccountMove.Phase.FAILED:
            raise CommandError(f"Move failed, {account.slug} stays on {move.source}: {move.error}")

    def abort(self, account: Account, options: dict) -> None:
        try:
            recovered = abort_move(account)
        except MoveError as error:
            raise CommandError(str(error)) from None
        account.refresh_from_db()
        result = {
            "account": account.slug,
            "server": account.server,
            "state": account.state,
            "moves": [{"move": m.pk, "phase": m.phase, "detail": m.detail} for m in recovered],
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        for move in recovered:
            self.stdout.write(f"Move {move.pk} ({move.source} → {move.target}): {move.detail}")
        if not recovered:
            self.stdout.write(f"No interrupted or queued move of {account.slug}.")
        self.stdout.write(f"{account.slug} is {account.state} on {account.server}.")
