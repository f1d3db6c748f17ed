"""Error pages that must render when the database is what failed."""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template import loader


def server_error(request: HttpRequest) -> HttpResponse:
    """500, or a clear 503 when PostgreSQL cannot be reached.

    Rendered without the request's context: the context processors (user, session) would reach
    for the database that just failed.
    """
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        body = loader.render_to_string("503.html")
        return HttpResponse(body, status=503, headers={"Retry-After": "30"})
    return HttpResponseServerError(loader.render_to_string("500.html"))
