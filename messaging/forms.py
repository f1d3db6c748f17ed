from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from messaging.models import Broadcast, Delivery, Topic
from messaging.render import check_placeholders
from segments.models import Segment


class BroadcastForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="For your team; recipients never see it.")
    subject = forms.CharField(max_length=300)
    from_email = forms.CharField(
        label="From", max_length=300, help_text='An address, or "Name <address>".'
    )
    reply_to = forms.EmailField(label="Reply to", required=False)
    segment = forms.TypedChoiceField(coerce=int, help_text="Its members when sending starts.")
    topic = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        help_text="People who opted out of the topic are skipped.",
    )
    body_format = forms.ChoiceField(label="Format", choices=Broadcast.Format.choices)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14}),
        help_text='Placeholders: {{ customer.first_name }}, {{ customer.plan | default: "free" }}, '
        "{{ unsubscribe_url }}, {{ preferences_url }}.",
    )
    text_body = forms.CharField(
        label="Plain-text part",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Leave empty to derive it from the body.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].choices = [("", "Choose a segment")] + [
            (segment.pk, f"{segment.name} ({segment.member_count:,})")
            for segment in Segment.objects.order_by("name")
        ]
        self.fields["topic"].choices = [("", "No topic")] + [
            (topic.pk, topic.name) for topic in Topic.objects.all()
        ]

    def clean_from_email(self) -> str:
        value = self.cleaned_data["from_email"].strip()
        _name, address = parseaddr(value)
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                "Give an email address, optionally as “Name <address>”."
            ) from None
        return value

    def clean(self) -> dict:
        data = super().clean()
        for name in ("subject", "body", "text_body"):
            problems = check_placeholders(data.get(name) or "")
            if problems:
                self.add_error(name, problems)
        return data


class PreviewForm(forms.Form):
    person = forms.CharField(
        label="Preview as",
        required=False,
        max_length=254,
        help_text="An email address or customer id; empty for a member of the segment.",
    )


class TestSendForm(forms.Form):
    email = forms.EmailField(label="Send a test to")
    person = forms.CharField(required=False, max_length=254)


class ScheduleForm(forms.Form):
    when = forms.ChoiceField(choices=[("now", "Now"), ("later", "At a time")], initial="now")
    send_at = forms.DateTimeField(
        label="Send at (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("when") == "later":
            send_at = data.get("send_at")
            if send_at is None:
                self.add_error("send_at", "Give the time to send at.")
            else:
                send_at = send_at.replace(tzinfo=UTC) if send_at.tzinfo is None else send_at
                if send_at < timezone.now() - timedelta(minutes=1):
                    self.add_error("send_at", "That time has passed.")
                data["send_at"] = send_at
        return data


class DeliveryFilterForm(forms.Form):
    """The delivery log's filters. The page writes its own controls (see the template):
    Django's widget templates cost more than the rest of the page."""

    state = forms.ChoiceField(choices=[("", "Any state"), *Delivery.State.choices], required=False)
    # Any broadcast id: the page offers the latest ones, a broadcast's page links to the log
    # filtered by it, however old it is.
    broadcast = forms.IntegerField(required=False, min_value=1)
    person = forms.CharField(
        required=False, max_length=254, help_text="Email address or customer id."
    )
    since = forms.DateField(label="From", required=False)
    until = forms.DateField(label="To", required=False)

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end is before the start.")
        return data

    @staticmethod
    def day_start(day) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)


class TopicForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=300, required=False)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Topic.objects.filter(name__iexact=name).exists():
            raise ValidationError("There is already a topic with this name.")
        return name
