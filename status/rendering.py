"""Markdown for incident updates and postmortems: rendered, then sanitised.

Staff write Markdown; visitors get HTML that has been through an allow-list (nh3), so a
pasted `<script>`, an `onerror=` attribute or a `javascript:` link never reaches a page, a
feed or an email. The API and webhooks carry the text with every HTML tag removed.
"""

import html

import markdown
import nh3

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
DROPPED_WITH_CONTENT = {"script", "style", "iframe", "object", "template", "noscript", "svg"}


def render_markdown(source: str) -> str:
    """Sanitised HTML for a Markdown text; safe to mark safe in a template."""
    rendered = markdown.markdown(source, extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def plain_text(source: str) -> str:
    """The text with all HTML removed, for JSON consumers that may render it as HTML.

    Unescaping can turn `&lt;b&gt;` into a tag again, so strip until nothing changes.
    """
    text = source
    for _ in range(5):
        cleaned = html.unescape(
            nh3.clean(text, tags=set(), clean_content_tags=DROPPED_WITH_CONTENT)
        )
        if cleaned == text:
            break
        text = cleaned
    return text
