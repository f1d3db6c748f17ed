from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import connection


class AccountPasswordResetTokenGenerator(PasswordResetTokenGenerator):
    """Password reset tokens that are only valid in the schema that issued them.

    User ids repeat across account schemas; the schema in the salt keeps a token minted for
    user 3 of one account from ever matching user 3 of another.
    """

    @property
    def key_salt(self) -> str:  # type: ignore[override]
        return f"ferry.password-reset.{connection.schema_name}"


password_reset_tokens = AccountPasswordResetTokenGenerator()
