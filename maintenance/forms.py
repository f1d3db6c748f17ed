from django import forms
from django.conf import settings

from maintenance.models import RetentionPolicy

LABELS = {
    "events": "Events",
    "deliveries": "Deliveries and their events",
    "dead_letters": "Dead letters (items that could not be applied)",
}


def _days_field(label: str, maximum: int, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=settings.RETENTION_MIN_DAYS,
        max_value=maximum,
        help_text=help_text,
        error_messages={
            "max_value": "At most %(limit_value)s days: that is as long as this account may keep it.",
            "min_value": "At least %(limit_value)s day.",
        },
    )


class RetentionForm(forms.Form):
    """An account's own choice: as long as its ceiling allows, or shorter."""

    def __init__(self, policy: RetentionPolicy, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy
        for kind in RetentionPolicy.KINDS:
            limit = policy.limit(kind)
            self.fields[f"{kind}_days"] = _days_field(
                LABELS[kind], limit, f"Days, at most {limit}. Empty: keep the full {limit} days."
            )
            self.initial.setdefault(f"{kind}_days", policy.chosen(kind))


class StaffRetentionForm(forms.Form):
    """Staff set each kind's ceiling for one account; empty means the default in settings."""

    def __init__(self, policy: RetentionPolicy, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for kind in RetentionPolicy.KINDS:
            default = settings.RETENTION_DEFAULT_DAYS[kind]
            self.fields[f"{kind}_limit_days"] = _days_field(
                LABELS[kind], settings.RETENTION_MAX_DAYS, f"Days. Empty: the default, {default}."
            )
            self.fields[f"{kind}_limit_days"].error_messages["max_value"] = (
                "At most %(limit_value)s days."
            )
            self.initial.setdefault(f"{kind}_limit_days", getattr(policy, f"{kind}_limit_days"))
