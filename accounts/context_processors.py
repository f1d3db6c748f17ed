from django.conf import settings
from django.http import HttpRequest


def ferry(request: HttpRequest) -> dict:
    return {
        "account": getattr(request, "account", None),
        "side": getattr(request, "side", "public"),
        "base_domain": settings.BASE_DOMAIN,
    }
