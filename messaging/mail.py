"""The SMTP backend broadcasts go through: Django's, with a fast path for plain addresses."""

import re
import smtplib

from django.core.mail.backends.smtp import EmailBackend

PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def envelope_address(address: str) -> str:
    """smtplib's quoteaddr parses every address again; a plain one only needs brackets."""
    return f"<{address}>" if PLAIN_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


class BroadcastSMTP(smtplib.SMTP):
    def mail(self, sender: str, options=()) -> tuple[int, bytes]:
        if options:
            return super().mail(sender, options)
        self.putcmd("mail", f"FROM:{envelope_address(sender)}")
        return self.getreply()

    def rcpt(self, recip: str, options=()) -> tuple[int, bytes]:
        if options:
            return super().rcpt(recip, options)
        self.putcmd("rcpt", f"TO:{envelope_address(recip)}")
        return self.getreply()


class BroadcastSMTPBackend(EmailBackend):
    """Parsing every address with the email package's header parser costs more than writing
    the whole message: a plain `local@domain` needs no parsing, and the From address of a
    broadcast is the same for every message."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._prepared: dict[str, str] = {}

    @property
    def connection_class(self):
        return smtplib.SMTP_SSL if self.use_ssl else BroadcastSMTP

    def prep_address(self, address: str, force_ascii: bool = True) -> str:
        if PLAIN_ADDRESS.fullmatch(address):
            return address
        if address not in self._prepared:
            self._prepared[address] = super().prep_address(address, force_ascii)
        return self._prepared[address]
