from django import forms

from ingest.apply import IDENTITY_ATTRIBUTES
from segments.attributes import parse

ATTRIBUTE_TYPES = [
    ("string", "String"),
    ("number", "Number"),
    ("boolean", "Boolean"),
    ("date", "Date"),
]
SORTS = [("newest", "Newest first"), ("oldest", "Oldest first")]
SUBSCRIPTION = [("", "Anyone"), ("subscribed", "Subscribed"), ("unsubscribed", "Unsubscribed")]


class PeopleFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=254,
                        help_text="An email or a customer id, or how either begins.")  # fmt: skip
    attribute = forms.CharField(required=False, max_length=150, label="Attribute")
    value = forms.CharField(required=False, max_length=1000, label="equals")
    subscription = forms.ChoiceField(required=False, choices=SUBSCRIPTION)
    segment = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="In segment"
    )
    sort = forms.ChoiceField(required=False, choices=SORTS)

    def __init__(self, *args, segments=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].choices = [("", "Any")] + [(s.pk, s.name) for s in segments]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("value") and not data.get("attribute"):
            self.add_error("attribute", "Name the attribute to match the value against.")
        return data


class AttributeForm(forms.Form):
    name = forms.CharField(max_length=150, label="Attribute name")
    type = forms.ChoiceField(choices=ATTRIBUTE_TYPES)
    value = forms.CharField(max_length=1000, required=False)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name or name.startswith("_"):
            raise forms.ValidationError("Attribute names cannot be empty or start with _.")
        if name in IDENTITY_ATTRIBUTES:
            # They are also columns of the person (or how anonymous activity finds them),
            # which only ingestion and imports keep in step.
            raise forms.ValidationError(f"Change “{name}” through ingestion or a CSV import.")
        return name

    def clean(self) -> dict:
        data = super().clean()
        if "type" in data:
            try:
                data["parsed"] = parse(data["type"], data.get("value", ""))
            except ValueError as error:
                self.add_error("value", str(error))
        return data


class TimelineFilterForm(forms.Form):
    name = forms.CharField(required=False, max_length=255, label="Event name")


class SegmentMembershipForm(forms.Form):
    """Add people to a manual segment, or take them out, from the profile or the list."""

    segment = forms.IntegerField()
    action = forms.ChoiceField(choices=[("add", "Add"), ("remove", "Remove")])
