"""Update bodies are Markdown, rendered and sanitised: no script survives anywhere."""

import json

import pytest

from status import actions
from status.rendering import plain_text, render_markdown

HOSTILE = (
    "**Fixed** [docs](https://example.com) [x](javascript:alert(1))\n\n"
    "<script>alert('s')</script><img src=x onerror=alert(1)>"
    '<a href="https://ok.example" onclick="alert(2)">ok</a><iframe src="https://evil"></iframe>'
)


def test_markdown_is_rendered():
    html = render_markdown("**bold** and *it*\n\n* one\n* two\n\n`code`")
    assert "<strong>bold</strong>" in html
    assert "<em>it</em>" in html
    assert "<li>one</li>" in html
    assert "<code>code</code>" in html


def test_scripts_handlers_and_javascript_links_are_removed():
    html = render_markdown(HOSTILE)
    assert "<strong>Fixed</strong>" in html
    assert 'href="https://example.com"' in html
    for forbidden in ("<script", "alert('s')", "onerror", "onclick", "javascript:", "<iframe",
                      "<img"):  # fmt: skip
        assert forbidden not in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_plain_text_has_no_tags_but_keeps_the_words():
    assert plain_text("Latency < 5 ms & rising <b>now</b>") == "Latency < 5 ms & rising now"
    assert "<script" not in plain_text("&lt;script&gt;alert(1)&lt;/script&gt; hi")


@pytest.mark.django_db
def test_no_script_reaches_the_page_the_api_or_the_feeds(demo, publish, status_client):
    incident = actions.open_incident(
        name="Hostile paste", status="investigating", impact="minor", body=HOSTILE
    )
    publish()
    for path in ("/", f"/incidents/{incident.code}", "/history.atom", "/history.rss",
                 "/api/v2/incidents.json", "/api/v2/summary.json"):  # fmt: skip
        body = status_client.get(path).content.decode()
        assert "<script" not in body, path
        assert "onerror" not in body, path
        if not path.endswith(".json"):
            # The API carries the Markdown source as text, where "[x](javascript:…)" is inert.
            assert "javascript:" not in body, path
    api = json.loads(status_client.get("/api/v2/incidents/unresolved.json").content)
    assert api["incidents"][0]["incident_updates"][0]["body"].startswith("**Fixed** [docs]")
