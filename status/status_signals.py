"""The status app's own signal: the Management Interface's 5xx rate.

Counted by `status.middleware.ServerErrorCounterMiddleware` (dashboards, staff console, API;
never the status host) into `RequestMinute`.
"""

from datetime import timedelta

from django.db.models import Sum
from django.utils import timezone

from status.component_signals import Reading, signal_provider, status_for
from status.models import Channel, Component, ComponentStatus, DeliveryAttempt, RequestMinute

WINDOW = timedelta(minutes=5)
# Fewer requests than this say nothing either way.
MINIMUM_REQUESTS = 20
THRESHOLDS = [
    (0.25, ComponentStatus.MAJOR_OUTAGE),
    (0.05, ComponentStatus.PARTIAL_OUTAGE),
    (0.01, ComponentStatus.DEGRADED_PERFORMANCE),
]


@signal_provider("management-interface")
def server_error_rate(component: Component) -> Reading:
    since = timezone.now().replace(second=0, microsecond=0) - WINDOW
    totals = RequestMinute.objects.filter(minute__gte=since).aggregate(
        requests=Sum("requests"), errors=Sum("server_errors")
    )
    requests, errors = totals["requests"] or 0, totals["errors"] or 0
    label = "5xx answers, last 5 minutes"
    if requests < MINIMUM_REQUESTS:
        return Reading(label, f"{errors} of {requests} requests (too few to judge)")
    rate = errors / requests
    return Reading(label, f"{rate:.1%} of {requests} requests", status_for(rate, THRESHOLDS))


EMAIL_WINDOW = timedelta(hours=1)
EMAIL_MINIMUM_ATTEMPTS = 10
EMAIL_THRESHOLDS = [
    (0.5, ComponentStatus.MAJOR_OUTAGE),
    (0.2, ComponentStatus.PARTIAL_OUTAGE),
    (0.05, ComponentStatus.DEGRADED_PERFORMANCE),
]


@signal_provider("email-sending")
def email_send_errors(component: Component) -> Reading:
    """Failed SMTP hand-offs of the mail Ferry sends today (subscriber notifications); the
    messaging module's sends are to be counted here too once it exists."""
    since = timezone.now() - EMAIL_WINDOW
    attempts = DeliveryAttempt.objects.filter(
        attempted_at__gte=since, notification__channel=Channel.EMAIL
    )
    total = attempts.count()
    failed = attempts.filter(succeeded=False).count()
    label = "Email send errors, last hour"
    if total < EMAIL_MINIMUM_ATTEMPTS:
        return Reading(label, f"{failed} of {total} sends (too few to judge)")
    return Reading(
        label,
        f"{failed / total:.1%} of {total} sends",
        status_for(failed / total, EMAIL_THRESHOLDS),
    )
