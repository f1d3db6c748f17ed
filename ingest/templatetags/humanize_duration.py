from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """12 s, 4 min, 2 h 5 min: how long something took or will take, for people."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
