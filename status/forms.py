from datetime import UTC, datetime

from django import forms

from accounts.models import Account
from status.models import (
    INCIDENT_STATUSES,
    Component,
    ComponentStatus,
    Impact,
    IncidentStatus,
    UpdateTemplate,
)

NO_CHANGE = ""
UTC_HELP = "UTC. Leave empty for now."


class UTCDateTimeField(forms.DateTimeField):
    """A datetime-local input read as UTC, whatever the server's or browser's zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value) -> datetime | None:
        result = super().to_python(value)
        return result.replace(tzinfo=UTC) if result and result.tzinfo is None else result

    def prepare_value(self, value):
        return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


class ComponentStatusesMixin:
    """One "new status" choice per component, named `component_<code>`."""

    def add_component_fields(self, components: list[Component]) -> None:
        self.components = components
        choices = [(NO_CHANGE, "No change"), *ComponentStatus.choices]
        for component in components:
            self.fields[f"component_{component.code}"] = forms.ChoiceField(
                label=component.name, choices=choices, required=False
            )

    def component_fields(self) -> list:
        return [self[f"component_{c.code}"] for c in self.components]

    def component_statuses(self) -> dict[Component, str]:
        return {
            c: self.cleaned_data[f"component_{c.code}"]
            for c in self.components
            if self.cleaned_data.get(f"component_{c.code}")
        }


class AccountSlugsField(forms.CharField):
    def clean(self, value) -> list[str]:
        slugs = sorted({slug.strip().lower() for slug in (value or "").split(",") if slug.strip()})
        known = set(Account.objects.filter(slug__in=slugs).values_list("slug", flat=True))
        unknown = [slug for slug in slugs if slug not in known]
        if unknown:
            raise forms.ValidationError(f"No account with the slug {', '.join(unknown)}.")
        return slugs


class UpdateForm(ComponentStatusesMixin, forms.Form):
    status = forms.ChoiceField(choices=IncidentStatus.choices)
    body = forms.CharField(
        label="Message", widget=forms.Textarea(attrs={"rows": 5}), help_text="Markdown."
    )
    display_at = UTCDateTimeField(label="Shown as posted at", required=False, help_text=UTC_HELP)
    deliver_notifications = forms.BooleanField(
        label="Notify subscribers", required=False, initial=True
    )

    def __init__(self, *args, status_choices, components: list[Component], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = status_choices
        self.add_component_fields(components)


class IncidentForm(UpdateForm):
    name = forms.CharField(max_length=200)
    impact = forms.ChoiceField(
        choices=[c for c in Impact.choices if c[0] != Impact.MAINTENANCE], initial=Impact.MINOR
    )
    affected_accounts = AccountSlugsField(
        required=False, help_text="Account slugs, comma-separated. Empty: every account."
    )
    field_order = ["name", "status", "impact", "body", "affected_accounts", "display_at"]

    def __init__(self, *args, components: list[Component], **kwargs):
        statuses = [c for c in IncidentStatus.choices if c[0] in INCIDENT_STATUSES]
        super().__init__(*args, status_choices=statuses, components=components, **kwargs)


class MaintenanceForm(forms.Form):
    name = forms.CharField(max_length=200)
    scheduled_for = UTCDateTimeField(help_text="UTC.")
    scheduled_until = UTCDateTimeField(help_text="UTC.")
    body = forms.CharField(
        label="Message", widget=forms.Textarea(attrs={"rows": 4}), help_text="Markdown."
    )
    components = forms.ModelMultipleChoiceField(
        Component.objects.filter(is_group=False),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Set under maintenance while it runs.",
    )
    affected_accounts = AccountSlugsField(
        required=False, help_text="Account slugs, comma-separated. Empty: every account."
    )
    auto_start = forms.BooleanField(
        label="Start by itself at its time", required=False, initial=True
    )
    auto_complete = forms.BooleanField(
        label="Complete by itself at its end", required=False, initial=True
    )
    deliver_notifications = forms.BooleanField(
        label="Notify subscribers", required=False, initial=True
    )

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("scheduled_for"), data.get("scheduled_until")
        if start and end and end <= start:
            self.add_error("scheduled_until", "The end must come after the start.")
        return data


class ComponentStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ComponentStatus.choices)


class PostmortemForm(forms.Form):
    body = forms.CharField(
        label="Postmortem",
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="Markdown. Saved as a draft until you publish it.",
    )


class UpdateTemplateForm(forms.ModelForm):
    class Meta:
        model = UpdateTemplate
        fields = ["name", "status", "title", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 3})}


class PreviewForm(forms.Form):
    body = forms.CharField(required=False)


class SubscribeForm(forms.Form):
    email = forms.EmailField(label="Email address")
    endpoint = forms.URLField(
        label="Webhook URL (optional)",
        required=False,
        assume_scheme="https",
        help_text="We POST Statuspage-format JSON here; the email address confirms it and "
        "hears about failures.",
    )
    components = forms.ModelMultipleChoiceField(
        Component.objects.filter(is_group=False),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every component.",
    )
