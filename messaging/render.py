"""From a broadcast to one person's email: compiled once per broadcast, filled per person.

A broadcast's subject, HTML and text are parsed once into a list of literal strings and
slots (a person's attribute, an unsubscribe or preferences link, a tracked link, the open
pixel). Filling a message is then a join: no template engine, Markdown or HTML parsing runs
per recipient, which is what makes hundreds of messages a second possible.

Placeholders are Customer.io's Liquid spelling: `{{ customer.first_name }}`,
`{{ customer.plan | default: "free" }}`, `{{ unsubscribe_url }}`, `{{ preferences_url }}`.
"""

import html
import re
from dataclasses import dataclass, field

import markdown
from django.conf import settings
from django.core.mail.message import EmailAlternative

from messaging import links, mime
from messaging.mime import PreparedEmail

PLACEHOLDER = re.compile(
    r"\{\{\s*(?P<name>customer\.[A-Za-z0-9_\-]+|unsubscribe_url|preferences_url)\s*"
    r"(?:\|\s*default:\s*\"(?P<default>[^\"]*)\"\s*)?\}\}"
)
ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.S)
LINK = re.compile(r"""(<a\s[^>]*?href\s*=\s*)(["'])(https?://[^"'\s]+)\2""", re.I)
SLOT_MARK = re.compile(r"\ue000(\d+)\ue001")
TAGS = re.compile(r"<[^>]+>")

# Slot kinds
ATTRIBUTE, UNSUBSCRIBE, PREFERENCES, CLICK, OPEN_PIXEL = "attr", "unsub", "prefs", "click", "open"


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Slot:
    kind: str
    name: str = ""  # attribute name, or the URL of a tracked link
    default: str = ""


@dataclass
class Compiled:
    """One part (subject, HTML or text): literals and slots, alternating, literal first."""

    literals: list[str]
    slots: list[Slot]
    escape: bool

    def fill(self, person: "Recipient") -> str:
        out = [self.literals[0]]
        for slot, literal in zip(self.slots, self.literals[1:], strict=True):
            value = person.value_for(slot)
            out.append(html.escape(value) if self.escape else value)
            out.append(literal)
        return "".join(out)

    @property
    def attribute_names(self) -> set[str]:
        return {slot.name for slot in self.slots if slot.kind == ATTRIBUTE}


def check_placeholders(text: str) -> list[str]:
    """Problems with the placeholders in a text, for the compose form."""
    problems = []
    for match in ANY_PLACEHOLDER.finditer(text):
        if not PLACEHOLDER.fullmatch(match.group(0)):
            problems.append(
                f"{match.group(0)[:60]} is not a placeholder Ferry knows: use "
                '{{ customer.attribute }}, {{ customer.attribute | default: "text" }}, '
                "{{ unsubscribe_url }} or {{ preferences_url }}"
            )
    return problems


def slot_for(match: re.Match) -> Slot:
    name = match.group("name")
    if name == "unsubscribe_url":
        return Slot(UNSUBSCRIBE)
    if name == "preferences_url":
        return Slot(PREFERENCES)
    return Slot(ATTRIBUTE, name.removeprefix("customer."), match.group("default") or "")


def split(text: str, escape: bool) -> Compiled:
    literals, slots, last = [], [], 0
    for match in PLACEHOLDER.finditer(text):
        literals.append(text[last : match.start()])
        slots.append(slot_for(match))
        last = match.end()
    literals.append(text[last:])
    return Compiled(literals, slots, escape)


def compile_html(source: str, is_markdown: bool, track: bool) -> Compiled:
    """HTML with its placeholders and (when tracking) its links turned into slots."""
    slots: list[Slot] = []

    def protect(match: re.Match) -> str:
        slots.append(slot_for(match))
        return f"\ue000{len(slots) - 1}\ue001"

    # Placeholders become opaque marks first, so Markdown cannot mangle them.
    body = PLACEHOLDER.sub(protect, source)
    if is_markdown:
        body = markdown.markdown(body, extensions=["extra", "sane_lists"])
    if track:

        def tracked(match: re.Match) -> str:
            slots.append(Slot(CLICK, html.unescape(match.group(3))))
            return f"{match.group(1)}{match.group(2)}\ue000{len(slots) - 1}\ue001{match.group(2)}"

        body = LINK.sub(tracked, body)
    footer_slots_start = len(slots)
    slots.append(Slot(UNSUBSCRIBE))
    slots.append(Slot(PREFERENCES))
    footer = (
        '<p style="font-size:12px;color:#666">'
        f'<a href="\ue000{footer_slots_start}\ue001">Unsubscribe</a> · '
        f'<a href="\ue000{footer_slots_start + 1}\ue001">Email preferences</a></p>'
    )
    if track:
        slots.append(Slot(OPEN_PIXEL))
        footer += f'<img src="\ue000{len(slots) - 1}\ue001" width="1" height="1" alt="">'
    if re.search(r"</body>", body, re.I):
        body = re.sub(r"</body>", lambda _: footer + "</body>", body, count=1, flags=re.I)
    else:
        body = f"{body}\n{footer}"
    # Split on the marks: literals and slots in order of appearance.
    literals, ordered, last = [], [], 0
    for match in SLOT_MARK.finditer(body):
        literals.append(body[last : match.start()])
        ordered.append(slots[int(match.group(1))])
        last = match.end()
    literals.append(body[last:])
    return Compiled(literals, ordered, escape=True)


def text_from(source: str, is_markdown: bool) -> str:
    if is_markdown:
        return source
    text = re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", "", source)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</h\d>|</li>|</tr>", "\n", text)
    text = html.unescape(TAGS.sub("", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass
class CompiledBroadcast:
    subject: Compiled
    html: Compiled
    text: Compiled
    from_email: str
    reply_to: str
    account: str
    boundary: str = field(default_factory=mime.new_boundary)
    # The From and Reply-To headers are the same in every message: parsed once.
    from_header: str = ""
    reply_to_header: str = ""

    def __post_init__(self) -> None:
        self.from_header = mime.address_header(self.from_email or settings.DEFAULT_FROM_EMAIL)
        self.reply_to_header = mime.address_header(self.reply_to) if self.reply_to else ""

    @property
    def attribute_names(self) -> set[str]:
        return self.subject.attribute_names | self.html.attribute_names | self.text.attribute_names


def compile_broadcast(broadcast, account: str, track: bool = True) -> CompiledBroadcast:
    is_markdown = broadcast.body_format == broadcast.Format.MARKDOWN
    text_source = broadcast.text_body or text_from(broadcast.body, is_markdown)
    text_source += (
        "\n\n--\nUnsubscribe: {{ unsubscribe_url }}\nPreferences: {{ preferences_url }}\n"
    )
    return CompiledBroadcast(
        subject=split(broadcast.subject, escape=False),
        html=compile_html(broadcast.body, is_markdown, track),
        text=split(text_source, escape=False),
        from_email=broadcast.from_email,
        reply_to=broadcast.reply_to,
        account=account,
    )


def person_values(customer_id: str | None, email: str | None, attributes: dict) -> dict:
    values = {key: value for key, value in attributes.items()}
    values["email"] = email or attributes.get("email") or ""
    values["id"] = customer_id or ""
    return values


@dataclass
class Recipient:
    """One person's side of a message: their values and their delivery's signed links."""

    account: str
    delivery: int
    email: str
    values: dict
    used: dict = field(default_factory=dict)
    _unsubscribe_url: str = ""
    _preferences_url: str = ""

    def value_for(self, slot: Slot) -> str:
        if slot.kind == ATTRIBUTE:
            value = self.values.get(slot.name)
            text = slot.default if value in (None, "") else stringify(value)
            self.used[slot.name] = text
            return text
        if slot.kind == UNSUBSCRIBE:
            return self.unsubscribe_url
        if slot.kind == PREFERENCES:
            if not self._preferences_url:
                self._preferences_url = self.link(links.PREFERENCES_SALT, "/email/preferences/")
            return self._preferences_url
        if slot.kind == OPEN_PIXEL:
            return self.link(links.OPEN_SALT, "/email/open/", suffix="o.gif")
        return self.link(links.CLICK_SALT, "/email/click/", url=slot.name)

    @property
    def unsubscribe_url(self) -> str:
        # The header and the footer carry the same link.
        if not self._unsubscribe_url:
            self._unsubscribe_url = self.link(links.UNSUBSCRIBE_SALT, "/email/unsubscribe/")
        return self._unsubscribe_url

    def link(self, salt: str, prefix: str, url: str = "", suffix: str = "") -> str:
        token = links.sign(salt, self.account, self.delivery, url)
        return links.public_url(f"{prefix}{token}/{suffix}")

    @property
    def recorded_values(self) -> dict | None:
        return dict(self.used) or None


def stringify(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_message(
    compiled: CompiledBroadcast, recipient: Recipient, message_id: str, connection=None
) -> PreparedEmail:
    """The message for one recipient, its MIME bytes written directly (see mime.py)."""
    subject = compiled.subject.fill(recipient)
    text = compiled.text.fill(recipient)
    body_html = compiled.html.fill(recipient)
    from_email = compiled.from_email or settings.DEFAULT_FROM_EMAIL
    headers = {
        "Subject": mime.header_value("Subject", subject),
        "From": compiled.from_header,
        "To": mime.recipient_address(recipient.email),
        "Date": mime.now_header(),
        "Message-ID": message_id,
        "List-Unsubscribe": f"<{recipient.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Ferry-Delivery": message_id.strip("<>").split("@")[0],
    }
    if compiled.reply_to:
        headers["Reply-To"] = compiled.reply_to_header
    message = PreparedEmail(
        subject,
        text,
        from_email,
        [recipient.email],
        reply_to=[compiled.reply_to] if compiled.reply_to else None,
        connection=connection,
    )
    message.alternatives = [EmailAlternative(body_html, "text/html")]
    message.prepare(headers, text, body_html, compiled.boundary)
    return message
