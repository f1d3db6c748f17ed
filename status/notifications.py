"""The notification outbox: what goes in (in the writer's transaction) and how it goes out.

Rows are inserted by `status.actions` in the same transaction as the change they announce,
so a committed incident update always has its notices queued, and a rolled-back one never
does. `status_worker` sends due rows; a failure is retried with exponential backoff
(30 s, 1 min, 2 min, ... capped at an hour) and, after the last attempt, kept as "gave up" in
the delivery log, where staff can retry it.
"""

import ipaddress
import json
import logging
import socket
from datetime import datetime
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPRedirectHandler, Request, build_opener

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string

from config.metrics import count_emails_sent
from status.access import confirm_token, unsubscribe_token
from status.documents import (
    incident_json,
    status_page_url,
    webhook_component_update,
    webhook_meta,
    webhook_page,
)
from status.models import (
    Channel,
    Component,
    ComponentStatusChange,
    Incident,
    IncidentUpdate,
    Notification,
    Subscriber,
    SubscriberMode,
)
from status.rendering import plain_text

log = logging.getLogger(__name__)


def retry_delays() -> list[int]:
    """Seconds to wait after the 1st, 2nd, ... failed attempt; its length bounds the tries."""
    base, cap = settings.STATUS_NOTIFY_BACKOFF_SECONDS, settings.STATUS_NOTIFY_BACKOFF_CAP
    return [min(base * 2**n, cap) for n in range(settings.STATUS_NOTIFY_MAX_ATTEMPTS - 1)]


def unsubscribe_url(subscriber: Subscriber) -> str:
    return status_page_url(f"/unsubscribe/{unsubscribe_token(subscriber)}/")


# --- Enqueueing (inside the writer's transaction) ------------------------------------------


def enqueue_confirmation(subscriber: Subscriber) -> Notification:
    link = status_page_url(f"/subscribe/confirm/{confirm_token(subscriber)}/")
    context = {"subscriber": subscriber, "link": link, "page_name": settings.STATUS_PAGE_NAME}
    return Notification.objects.create(
        subscriber=subscriber,
        channel=Channel.EMAIL,
        target=subscriber.email,
        event="Subscription confirmation",
        subject=f"Confirm your subscription to {settings.STATUS_PAGE_NAME} Status",
        body=render_to_string("status/email/confirm.txt", context),
    )


def _recipients(components: list[Component]) -> list[Subscriber]:
    return list(Subscriber.objects.confirmed().interested_in(components))


def enqueue_incident_notifications(incident: Incident, update: IncidentUpdate) -> int:
    components = list(incident.components.all())
    page = webhook_page(list(Component.objects.all()), list(Incident.objects.active()))
    notifications = []
    for subscriber in _recipients(components):
        unsubscribe = unsubscribe_url(subscriber)
        if subscriber.mode == SubscriberMode.WEBHOOK:
            notifications.append(
                Notification(
                    subscriber=subscriber,
                    incident=incident,
                    channel=Channel.WEBHOOK,
                    target=subscriber.endpoint,
                    event=f"{incident.name}: {update.get_status_display()}",
                    payload={
                        "meta": webhook_meta(unsubscribe),
                        "page": page,
                        "incident": incident_json(incident),
                    },
                )
            )
            continue
        context = {
            "incident": incident,
            "update": update,
            "body": plain_text(update.body),
            "link": status_page_url(f"/incidents/{incident.code}"),
            "unsubscribe": unsubscribe,
            "page_name": settings.STATUS_PAGE_NAME,
        }
        notifications.append(
            Notification(
                subscriber=subscriber,
                incident=incident,
                channel=Channel.EMAIL,
                target=subscriber.email,
                event=f"{incident.name}: {update.get_status_display()}",
                subject=f"[{settings.STATUS_PAGE_NAME} Status] "
                f"{update.get_status_display()}: {incident.name}",
                body=render_to_string("status/email/update.txt", context),
                headers={
                    "List-Unsubscribe": f"<{unsubscribe}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            )
        )
    Notification.objects.bulk_create(notifications)
    return len(notifications)


def enqueue_component_webhooks(change: ComponentStatusChange) -> int:
    component = change.component
    page = webhook_page(list(Component.objects.all()), list(Incident.objects.active()))
    notifications = [
        Notification(
            subscriber=subscriber,
            incident=change.incident,
            channel=Channel.WEBHOOK,
            target=subscriber.endpoint,
            event=f"{component.name}: {change.get_new_status_display()}",
            payload={"meta": webhook_meta(unsubscribe_url(subscriber)), "page": page}
            | webhook_component_update(change, component),
        )
        for subscriber in _recipients([component])
        if subscriber.mode == SubscriberMode.WEBHOOK
    ]
    Notification.objects.bulk_create(notifications)
    return len(notifications)


# --- Delivering (the worker) ----------------------------------------------------------------


class NoRedirects(HTTPRedirectHandler):
    # Statuspage counts a 3xx as a failure; following it could also reach an internal host.
    def redirect_request(self, *args, **kwargs):
        return None


def refuse_private_target(url: str) -> str | None:
    """Why this webhook URL must not be called, or None.

    Anyone can subscribe a webhook, so without this the worker would POST wherever it is
    told, including services that only listen on the private network.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "only http and https URLs are allowed"
    if settings.STATUS_WEBHOOK_ALLOW_PRIVATE:
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    except OSError as error:
        return f"cannot resolve {parts.hostname}: {error}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            return f"{parts.hostname} resolves to a private address ({ip})"
    return None


def post_webhook(url: str, payload: dict) -> tuple[str, int | None]:
    """POST the payload; ('', status) on a 2xx answer, (error, status or None) otherwise."""
    refused = refuse_private_target(url)
    if refused:
        return refused, None
    request = Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "Ferry-Status-Webhook/1"},
    )
    try:
        with build_opener(NoRedirects).open(
            request, timeout=settings.STATUS_WEBHOOK_TIMEOUT
        ) as response:
            return "", response.status
    except HTTPError as error:
        return f"HTTP {error.code}", error.code
    except (URLError, OSError) as error:
        return f"{type(error).__name__}: {getattr(error, 'reason', error)}", None


def send_email(notification: Notification) -> tuple[str, int | None]:
    message = EmailMessage(
        notification.subject,
        notification.body,
        to=[notification.target],
        headers=notification.headers or None,
    )
    try:
        message.send()
    except Exception as error:
        return f"{type(error).__name__}: {error}", None
    count_emails_sent("status")
    return "", None


def deliver(notification: Notification, now: datetime) -> bool:
    if notification.channel == Channel.WEBHOOK:
        error, status_code = post_webhook(notification.target, notification.payload or {})
    else:
        error, status_code = send_email(notification)
    notification.record_attempt(
        now=now, error=error, status_code=status_code, retry_delays=retry_delays()
    )
    return not error


def deliver_due_notifications(now: datetime, limit: int = 100) -> int:
    """Send up to `limit` due notifications, one transaction each; returns how many tried.

    The row stays locked while it is sent, so two workers never send the same notice;
    SKIP LOCKED lets the other worker take the next one meanwhile.
    """
    tried = 0
    while tried < limit:
        with transaction.atomic():
            notification = Notification.objects.due(now).select_for_update(skip_locked=True).first()
            if notification is None:
                break
            deliver(notification, now)
        tried += 1
    return tried
