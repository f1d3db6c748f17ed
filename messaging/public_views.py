"""What a message's recipient reaches: unsubscribe, preferences, the open pixel, click
redirects, and the provider's webhooks.

These live on the public side under /email/ and, except the preferences page, never touch
PostgreSQL: the signed token names the account and the delivery, and what happened goes to
the ingestion spool, to be recorded by the drain. An unsubscribe therefore works while the
database is down, and is applied as soon as it is back.
"""

import base64
import logging
import sqlite3
import time

import orjson
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import EventType
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django.conf import settings
from django.db import DatabaseError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ingest.spool import get_spool
from messaging import access, events, links

log = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def spool(account: str, items: list[dict]) -> bool:
    try:
        get_spool().append(account, [orjson.dumps(item).decode() for item in items])
    except sqlite3.Error:
        log.exception("messaging spool append failed")
        return False
    return True


def unavailable(request: HttpRequest) -> HttpResponse:
    response = render(request, "messaging/public/unavailable.html", status=503)
    response["Retry-After"] = "30"
    return response


@csrf_exempt  # the signed token is the authority; mail clients post without a form
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    target = access.link_target(
        links.UNSUBSCRIBE_SALT, token, settings.MESSAGING_UNSUBSCRIBE_MAX_AGE
    )
    if request.method == "GET":
        # A GET never unsubscribes: link scanners fetch every URL in a message.
        preferences_token = links.sign(links.PREFERENCES_SALT, target.account, target.delivery)
        return render(
            request,
            "messaging/public/unsubscribe.html",
            {"token": token, "preferences_token": preferences_token},
        )
    # RFC 8058: the one-click POST carries List-Unsubscribe=One-Click; the confirmation
    # form posts `confirm`. Either is the person's decision.
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    if not one_click and "confirm" not in request.POST:
        return HttpResponseBadRequest("Send List-Unsubscribe=One-Click to unsubscribe.")
    item = events.unsubscribe_item(
        target.delivery, None, time.time(), "one-click" if one_click else "link"
    )
    if not spool(target.account, [item]):
        return unavailable(request)
    if one_click:
        return HttpResponse("Unsubscribed.", content_type="text/plain")
    return render(request, "messaging/public/unsubscribed.html", {"token": token})


@never_cache
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    target = links.read(links.OPEN_SALT, token, settings.MESSAGING_TRACKING_MAX_AGE)
    if target is not None:
        detail = {"source": "pixel", "user_agent": request.headers.get("User-Agent", "")[:300]}
        spool(target.account, [events.event_item(target.delivery, "opened", time.time(), detail)])
    # The image is served whatever the token: a broken image tells nobody anything useful.
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
def click(request: HttpRequest, token: str) -> HttpResponse:
    target = links.read(links.CLICK_SALT, token, settings.MESSAGING_TRACKING_MAX_AGE)
    if target is None:
        # An old but genuine link still goes where it pointed, unrecorded; a forged one
        # goes nowhere (no open redirect).
        target = links.read(links.CLICK_SALT, token, max_age=None)
        if target is None or not target.url.startswith(("http://", "https://")):
            raise Http404("This link is not valid.")
        return HttpResponseRedirect(target.url)
    if not target.url.startswith(("http://", "https://")):
        raise Http404("This link is not valid.")
    detail = {
        "source": "link",
        "url": target.url,
        "user_agent": request.headers.get("User-Agent", "")[:300],
    }
    spool(target.account, [events.event_item(target.delivery, "clicked", time.time(), detail)])
    return HttpResponseRedirect(target.url)


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    target = access.link_target(
        links.PREFERENCES_SALT, token, settings.MESSAGING_UNSUBSCRIBE_MAX_AGE
    )
    try:
        with access.recipient_for(target) as recipient:
            if request.method == "POST":
                recipient.save_preferences(
                    subscribed=request.POST.get("subscribed") == "on",
                    topics={int(t) for t in request.POST.getlist("topic") if t.isdigit()},
                )
                return render(
                    request,
                    "messaging/public/preferences.html",
                    {"recipient": recipient, "saved": True, "token": token},
                )
            return render(
                request,
                "messaging/public/preferences.html",
                {"recipient": recipient, "token": token},
            )
    except DatabaseError:
        log.warning("preferences page without a database", exc_info=True)
        return render(
            request,
            "messaging/public/preferences_unavailable.html",
            {
                "unsubscribe_token": links.sign(
                    links.UNSUBSCRIBE_SALT, target.account, target.delivery
                )
            },
            status=503,
        )


# --- Provider webhooks, through django-anymail's normalised tracking events ----------------

# Anymail's normalised event types and what they mean for a delivery. Queued and sent are
# Ferry's own to record; unknown types are ignored.
ANYMAIL_KINDS = {
    EventType.DELIVERED: "delivered",
    EventType.BOUNCED: "bounced",
    EventType.REJECTED: "failed",
    EventType.FAILED: "failed",
    EventType.DEFERRED: "deferred",
    EventType.OPENED: "opened",
    EventType.CLICKED: "clicked",
    EventType.COMPLAINED: "spammed",
    EventType.UNSUBSCRIBED: "unsubscribed",
}


class SpoolingWebhookMixin:
    """Instead of sending anymail's signal, route each event by the Message-ID it echoes
    (which names the account and the delivery) and spool it."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        self.run_validators(request)
        by_account: dict[str, list[dict]] = {}
        for event in self.parse_events(request):
            item = item_for_event(event, self.esp_name)
            if item is not None:
                account, payload = item
                by_account.setdefault(account, []).append(payload)
        for account, items in by_account.items():
            if not spool(account, items):
                # 5xx: the provider retries later, and nothing acknowledged is lost.
                return HttpResponse("spool unavailable", status=503)
        return HttpResponse()


def item_for_event(event, esp_name: str) -> tuple[str, dict] | None:
    kind = ANYMAIL_KINDS.get(event.event_type)
    parsed = links.parse_message_id(event.message_id or "")
    if kind is None or parsed is None:
        return None
    account, delivery = parsed
    at = event.timestamp.timestamp() if event.timestamp else time.time()
    source = f"webhook:{esp_name.lower()}"
    if kind == "unsubscribed":
        return account, events.unsubscribe_item(delivery, None, at, source)
    detail = {
        key: value
        for key, value in {
            "source": source,
            "reason": event.reject_reason,
            "description": event.description,
            "mta_response": event.mta_response,
            "url": event.click_url,
            "user_agent": event.user_agent,
            "recipient": event.recipient,
            "event_id": event.event_id,
        }.items()
        if value
    }
    dedupe = f"{esp_name.lower()}:{event.event_id}" if event.event_id else ""
    return account, events.event_item(delivery, kind, at, detail, dedupe)


class MailgunWebhook(SpoolingWebhookMixin, MailgunTrackingWebhookView):
    pass


def configured_webhook(view_class, required: str):
    """The provider's view, or a 404 while its secret is not configured: an endpoint that
    anyone could post events to would let strangers suppress addresses."""
    view = view_class.as_view()

    @csrf_exempt
    def webhook(request: HttpRequest) -> HttpResponse:
        if not (settings.ANYMAIL or {}).get(required):
            raise Http404("This webhook is not configured.")
        try:
            return view(request)
        except AnymailWebhookValidationFailure:
            return HttpResponse("invalid signature or credentials", status=400)

    return webhook


mailgun_webhook = configured_webhook(MailgunWebhook, "MAILGUN_WEBHOOK_SIGNING_KEY")
