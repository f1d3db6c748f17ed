"""The status host's dynamic side: subscription forms and the links in their emails.

The page, history, incident pages, feeds and API are answered from the snapshot by
`status.middleware.StatusSnapshotMiddleware`; only what it does not find arrives here.
These views need PostgreSQL; while it is down they answer the 503 page.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from status import actions
from status.access import get_subscriber_to_confirm, get_subscriber_to_unsubscribe
from status.forms import SubscribeForm
from status.snapshot import current_snapshot


def page_context(**extra) -> dict:
    # The snapshot's own stylesheet: these pages then look right even before collectstatic.
    snapshot = current_snapshot()
    assets = snapshot.asset_urls() if snapshot else {}
    return {"page_name": settings.STATUS_PAGE_NAME, **assets, **extra}


@require_http_methods(["GET", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    form = SubscribeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        actions.subscribe(
            email=form.cleaned_data["email"],
            endpoint=form.cleaned_data["endpoint"],
            components=list(form.cleaned_data["components"]),
        )
        return redirect("status:subscribe_sent")
    return render(request, "status/subscribe.html", page_context(form=form))


def subscribe_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "status/subscribe.html", page_context(sent=True))


@require_http_methods(["GET", "POST"])
def confirm_subscription(request: HttpRequest, token: str) -> HttpResponse:
    # GET only shows a button: mail scanners follow links, and must not confirm for people.
    subscriber = get_subscriber_to_confirm(token)
    if request.method == "POST":
        actions.confirm_subscription(subscriber)
    return render(request, "status/confirm.html", page_context(subscriber=subscriber))


@csrf_exempt  # RFC 8058 one-click: the mail client POSTs without our form; the token is the key
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = get_subscriber_to_unsubscribe(token)
    if request.method == "POST":
        actions.unsubscribe(subscriber)
        return render(request, "status/unsubscribe.html", page_context(done=True))
    return render(request, "status/unsubscribe.html", page_context(subscriber=subscriber))


def not_in_snapshot(request: HttpRequest, path: str = "") -> HttpResponse:
    """Anything the snapshot middleware did not answer: a 404, or 503 if nothing is published.

    Rendered without the request: its context would reach for the session and the user.
    """
    if current_snapshot() is None:
        body = render_to_string("status/unavailable.html", page_context())
        return HttpResponse(body, status=503, headers={"Retry-After": "30"})
    return HttpResponse(render_to_string("status/not_found.html", page_context()), status=404)
