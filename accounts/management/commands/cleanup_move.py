from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import AccountMove
from accounts.moving import MoveError, cleanup_move


class Command(BaseCommand):
    help = "Drop the old copy of an account that a finished move kept on its old server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("move_id", type=int)

    def handle(self, *args, **options) -> None:
        move = AccountMove.objects.filter(pk=options["move_id"]).first()
        if move is None:
            raise CommandError(f"No move {options['move_id']}")
        try:
            cleanup_move(move)
        except MoveError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Dropped {move.source}:{move.old_schema}.")
