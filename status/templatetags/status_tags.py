from django import template
from django.utils.safestring import SafeString, mark_safe

from status.rendering import render_markdown

register = template.Library()


@register.filter
def markdown(source: str) -> SafeString:
    # Safe because render_markdown sanitises with an allow-list.
    return mark_safe(render_markdown(source or ""))
