"""How staff views and subscription links reach status rows.

Staff views are decorated with `accounts.access.staff_required` and then use these getters;
the public subscription views only ever reach a subscriber through a signed link.
"""

from django.conf import settings
from django.core import signing
from django.http import Http404
from django.shortcuts import get_object_or_404

from status.models import Component, Incident, Notification, Subscriber, UpdateTemplate

CONFIRM_SALT = "ferry.status.subscriber.confirm"
UNSUBSCRIBE_SALT = "ferry.status.subscriber.unsubscribe"


def get_incident_for_staff(code: str) -> Incident:
    return get_object_or_404(Incident.objects.with_timeline(), code=code)


def get_component_for_staff(code: str) -> Component:
    return get_object_or_404(Component, code=code, is_group=False)


def get_template_for_staff(template_id: int) -> UpdateTemplate:
    return get_object_or_404(UpdateTemplate, pk=template_id)


def get_notification_for_staff(notification_id: int) -> Notification:
    return get_object_or_404(Notification, pk=notification_id)


def confirm_token(subscriber: Subscriber) -> str:
    return signing.dumps(subscriber.code, salt=CONFIRM_SALT)


def unsubscribe_token(subscriber: Subscriber) -> str:
    return signing.dumps(subscriber.code, salt=UNSUBSCRIBE_SALT)


def _subscriber_from(token: str, salt: str, max_age: int) -> Subscriber:
    try:
        code = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:
        raise Http404("This link is invalid or has expired.") from None
    return get_object_or_404(Subscriber, code=code)


def get_subscriber_to_confirm(token: str) -> Subscriber:
    return _subscriber_from(token, CONFIRM_SALT, settings.STATUS_CONFIRM_MAX_AGE)


def get_subscriber_to_unsubscribe(token: str) -> Subscriber:
    return _subscriber_from(token, UNSUBSCRIBE_SALT, settings.STATUS_UNSUBSCRIBE_MAX_AGE)
