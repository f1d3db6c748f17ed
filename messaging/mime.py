"""The bytes of a broadcast message, written directly instead of through `email.message`.

Django 6's EmailMessage builds every message with the standard library's modern email API,
which parses and re-folds every header it is given: several milliseconds a message, which
caps one core at about a hundred messages a second. A broadcast's messages all have the same
shape, so Ferry writes them itself: a fixed set of headers (ASCII, or RFC 2047 encoded
words where a value is not), a multipart/alternative body with two quoted-printable UTF-8
parts, and a boundary that quoted-printable text cannot contain.

`PreparedEmail` is still a Django EmailMessage: every mail backend (SMTP, the file sink,
locmem in tests) sends it as usual; only its `message()` returns these bytes.
"""

import binascii
import email
import email.policy
import secrets
import time
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

from django.core.mail import EmailMultiAlternatives

HEADER_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


class InvalidRecipient(ValueError):
    pass


def new_boundary() -> str:
    # "=_" never occurs in quoted-printable output ("=" is always written "=3D").
    return f"=_ferry_{secrets.token_hex(12)}"


def header_value(name: str, value: str) -> str:
    """One header's value, on one line if ASCII, else as folded encoded words."""
    value = value.translate(HEADER_NEWLINES)  # no header injection through a value
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\n")


def address_header(address: str) -> str:
    name, addr = parseaddr(address.translate(HEADER_NEWLINES))
    return formataddr((name, addr), charset="utf-8")


def recipient_address(address: str) -> str:
    if not address.isascii() or any(c.isspace() for c in address) or address.count("@") != 1:
        raise InvalidRecipient(f"{address!r} is not an address this sender can use")
    return address


def quoted_printable(text: str) -> bytes:
    body = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(body, quotetabs=False, istext=True, header=False)


class PreparedMime:
    """Just enough of email.message.Message for Django's mail backends."""

    def __init__(self, data: bytes, policy=None) -> None:
        self.data = data  # "\n" line endings
        self.policy = policy  # the one message() was asked with (SMTP: CRLF)

    def as_bytes(self, unixfrom: bool = False, policy=None) -> bytes:
        policy = policy or self.policy
        if policy is not None and policy.linesep == "\r\n":
            return self.data.replace(b"\n", b"\r\n")
        return self.data

    def as_string(self, unixfrom: bool = False, policy=None) -> str:
        return self.as_bytes(policy=policy).decode("ascii")

    def get_charset(self) -> None:
        return None

    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class PreparedEmail(EmailMultiAlternatives):
    """An EmailMultiAlternatives whose MIME form is written once, by `prepare`."""

    prepared: PreparedMime

    def message(self, *, policy=None) -> PreparedMime:  # type: ignore[override]
        return PreparedMime(self.prepared.data, policy)

    def prepare(self, headers: dict[str, str], text: str, html: str, boundary: str) -> None:
        lines = [
            "MIME-Version: 1.0",
            *(f"{name}: {value}" for name, value in headers.items()),
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
        ]
        parts = [
            "\n".join(lines).encode("ascii"),
            b"\n",
            quoted_printable(text),
            (
                f"\n--{boundary}\n"
                'Content-Type: text/html; charset="utf-8"\n'
                "Content-Transfer-Encoding: quoted-printable\n\n"
            ).encode("ascii"),
            quoted_printable(html),
            f"\n--{boundary}--\n".encode("ascii"),
        ]
        self.prepared = PreparedMime(b"".join(parts))


_date_header: tuple[int, str] = (0, "")


def now_header() -> str:
    """The Date header, written once a second rather than once a message."""
    global _date_header
    second = int(time.time())
    if _date_header[0] != second:
        _date_header = (second, formatdate(second, usegmt=True))
    return _date_header[1]
