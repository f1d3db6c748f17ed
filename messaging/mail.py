"""The SMTP backend broadcasts go through: Django's, with a fast path for plain addresses."""

import re

from django.core.mail.backends.smtp import EmailBackend

PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class BroadcastSMTPBackend(EmailBackend):
    """Parsing every address with the email package's header parser costs more than writing
    the whole message: a plain `local@domain` needs no parsing, and the From address of a
    broadcast is the same for every message."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._prepared: dict[str, str] = {}

    def prep_address(self, address: str, force_ascii: bool = True) -> str:
        if PLAIN_ADDRESS.fullmatch(address):
            return address
        if address not in self._prepared:
            self._prepared[address] = super().prep_address(address, force_ascii)
        return self._prepared[address]
