"""Forms of the segment pages, and the rule editor's form <-> rule tree translation.

The editor is one HTML form: every node of the tree is a set of inputs named after its place
(`r`, `r-0`, `r-0-2`, filters `r-1.f0`), so it works as a plain POST without JavaScript; htmx
only posts the same form on change. Structural edits are buttons named `edit`.
"""

import csv
import io
from typing import Any

from django import forms

from segments.rules import (
    ATTRIBUTE_OPERATORS,
    COUNT_OPERATORS,
    DAYS_OPERATORS,
    EMAIL_ACTIVITIES,
    NUMBER_OPERATORS,
    PRESENCE_OPERATORS,
    RuleError,
)

MAX_UPLOAD_ROWS = 1_000_000


class SegmentDetailsForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MembersForm(forms.Form):
    ACTIONS = [("add", "Add"), ("remove", "Remove")]
    action = forms.ChoiceField(choices=ACTIONS)
    person = forms.TypedMultipleChoiceField(coerce=int, choices=[])

    def __init__(self, data: Any = None) -> None:
        super().__init__(data)
        # Any whole number may be offered; people of another account simply are not found.
        ids = data.getlist("person") if data is not None and hasattr(data, "getlist") else []
        self.fields["person"].choices = [(value, value) for value in ids if value.isdigit()]


class UploadForm(forms.Form):
    MODES = [("append", "Append to the current members"), ("replace", "Replace every member")]
    ID_TYPES = [("id", "Customer id"), ("email", "Email address")]
    file = forms.FileField(label="CSV file")
    id_type = forms.ChoiceField(choices=ID_TYPES, label="The first column holds")
    # No default: replacing everyone must be a choice the user makes.
    mode = forms.ChoiceField(choices=MODES, widget=forms.RadioSelect)

    def clean_file(self) -> list[str]:
        upload = self.cleaned_data["file"]
        text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", errors="replace")
        values: list[str] = []
        for line, row in enumerate(csv.reader(text), start=1):
            if not row or not row[0].strip():
                continue
            if len(values) >= MAX_UPLOAD_ROWS:
                raise forms.ValidationError(f"At most {MAX_UPLOAD_ROWS:,} rows per upload.")
            value = row[0].strip()
            if line == 1 and value.lower() in ("id", "customer_id", "email", "identifier"):
                continue  # a header
            values.append(value)
        if not values:
            raise forms.ValidationError("The file has no identifiers in its first column.")
        return values


# --- The rule editor ----------------------------------------------------------------------

NEW_CONDITION = {"type": "attribute", "name": "", "operator": "equals", "value": ""}
NEW_RULE = {"type": "group", "op": "and", "children": [NEW_CONDITION]}
NODE_TYPES = ["attribute", "event", "email", "segment", "subscription", "group"]


def number_or_text(raw: str) -> Any:
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def _comparison(data: Any, prefix: str, key: str) -> dict:
    operator = data.get(f"{prefix}.operator", "equals")
    node = {key: data.get(f"{prefix}.{key}", "").strip(), "operator": operator}
    raw = data.get(f"{prefix}.value", "").strip()
    if operator in PRESENCE_OPERATORS:
        return node
    if operator == "in":
        node["value"] = [item.strip() for item in raw.split(",") if item.strip()]
    elif operator in NUMBER_OPERATORS or operator in DAYS_OPERATORS:
        node["value"] = number_or_text(raw)
    elif operator == "between":
        node["value"] = [
            number_or_text(raw), number_or_text(data.get(f"{prefix}.value_to", "").strip())
        ]  # fmt: skip
    else:
        node["value"] = raw
    return node


def _occurrence(data: Any, prefix: str, node: dict) -> None:
    node["operator"] = data.get(f"{prefix}.operator", "performed")
    if node["operator"] not in ("performed", "not_performed"):
        node["count"] = number_or_text(data.get(f"{prefix}.count", "").strip())
    window = data.get(f"{prefix}.window", "")
    if window == "days":
        node["within_days"] = number_or_text(data.get(f"{prefix}.within_days", "").strip())
    elif window == "dates":
        node["from"] = data.get(f"{prefix}.from", "").strip()
        node["to"] = data.get(f"{prefix}.to", "").strip()


def rule_from_post(data: Any, prefix: str = "r") -> dict:
    """The (unvalidated) JSON tree the editor's inputs describe."""
    kind = data.get(f"{prefix}.type", "attribute")
    if kind == "group":
        indexes = sorted(
            {int(key[len(prefix) + 1 :].split(".")[0].split("-")[0])
             for key in data
             if key.startswith(f"{prefix}-") and key[len(prefix) + 1 :].split(".")[0].isdigit()}
        )  # fmt: skip
        return {
            "type": "group",
            "op": data.get(f"{prefix}.op", "and"),
            "children": [rule_from_post(data, f"{prefix}-{n}") for n in indexes],
        }
    if kind == "attribute":
        return {"type": "attribute", **_comparison(data, prefix, "name")}
    if kind == "event":
        node: dict = {"type": "event", "name": data.get(f"{prefix}.name", "").strip()}
        _occurrence(data, prefix, node)
        filters = sorted(
            {int(key[len(prefix) + 2 :].split(".")[0])
             for key in data
             if key.startswith(f"{prefix}.f") and key[len(prefix) + 2 :].split(".")[0].isdigit()}
        )  # fmt: skip
        if filters:
            node["filters"] = [_comparison(data, f"{prefix}.f{n}", "property") for n in filters]
        return node
    if kind == "email":
        node = {"type": "email", "activity": data.get(f"{prefix}.activity", "opened")}
        _occurrence(data, prefix, node)
        return node
    if kind == "segment":
        return {
            "type": "segment",
            "segment": number_or_text(data.get(f"{prefix}.segment", "")),
            "operator": data.get(f"{prefix}.operator", "in"),
        }
    return {"type": "subscription", "state": data.get(f"{prefix}.state", "subscribed")}


def _find(tree: dict, prefix: str) -> tuple[dict | None, dict | None, int]:
    """The node at a prefix, its parent group and its index there."""
    parent, index, node = None, -1, tree
    for part in prefix.split("-")[1:]:
        if node.get("type") != "group" or not part.isdigit():
            return None, None, -1
        parent, index = node, int(part)
        if index >= len(node["children"]):
            return None, None, -1
        node = node["children"][index]
    return node, parent, index


def apply_edit(tree: dict, edit: str) -> dict:
    """Add a condition or group, remove a node, add or remove an event filter."""
    action, _, target = edit.partition(":")
    target, _, filter_index = target.partition(":")
    node, parent, index = _find(tree, target)
    if node is None:
        return tree
    if action == "add-condition" and node.get("type") == "group":
        node["children"].append(dict(NEW_CONDITION))
    elif action == "add-group" and node.get("type") == "group":
        node["children"].append({"type": "group", "op": "or", "children": [dict(NEW_CONDITION)]})
    elif action == "remove" and parent is not None:
        del parent["children"][index]
    elif action == "add-filter" and node.get("type") == "event":
        node.setdefault("filters", []).append({"property": "", "operator": "equals", "value": ""})
    elif action == "remove-filter" and node.get("type") == "event" and filter_index.isdigit():
        filters = node.get("filters", [])
        if int(filter_index) < len(filters):
            del filters[int(filter_index)]
    return tree


def editor_nodes(
    data: Any, errors: list[RuleError], prefix: str = "r", path: str = "rules"
) -> dict:
    """The tree as the editor template draws it: each node with its input prefix and errors."""
    data = data if isinstance(data, dict) else {}
    own = [
        e.message if e.path == path else f"{e.path[len(path) + 1 :]}: {e.message}"
        for e in errors
        if e.path == path
        or (
            e.path.startswith(path + ".")
            and not e.path[len(path) + 1 :].startswith(("children[", "filters["))
        )
    ]
    node = {"prefix": prefix, "path": path, "data": data, "errors": own, "is_root": prefix == "r"}
    value = data.get("value")
    node["value_text"] = (
        ", ".join(str(v) for v in value) if data.get("operator") == "in" and isinstance(value, list)
        else (value[0] if isinstance(value, list) and value else value)
    )  # fmt: skip
    node["value_to"] = value[1] if isinstance(value, list) and len(value) > 1 else ""
    node["window"] = (
        "days" if data.get("within_days") is not None else "dates" if data.get("from") else ""
    )
    if data.get("type") == "group":
        node["children"] = [
            editor_nodes(child, errors, f"{prefix}-{n}", f"{path}.children[{n}]")
            for n, child in enumerate(data.get("children") or [])
        ]
    node["filters"] = [
        {**editor_nodes(f, errors, f"{prefix}.f{n}", f"{path}.filters[{n}]"), "index": n}
        for n, f in enumerate(data.get("filters") or [])
        if isinstance(f, dict)
    ]
    return node


EDITOR_CHOICES = {
    "node_types": NODE_TYPES,
    "attribute_operators": [(op, op.replace("_", " ")) for op in ATTRIBUTE_OPERATORS],
    "count_operators": [(op, op.replace("_", " ")) for op in COUNT_OPERATORS],
    "email_activities": EMAIL_ACTIVITIES,
    "presence_operators": PRESENCE_OPERATORS,
}
