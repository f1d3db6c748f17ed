"""Autovacuum and fillfactor per table, for Ferry's write pattern (README, "Vacuum and bloat").

Account schemas only: the tables live there. PostgreSQL's defaults wait for 20 % of a table
to be dead (or newly inserted) before vacuuming it; at 10,000,000 events that is 2,000,000
rows of bloat before anything happens, and one long vacuum when it does.

- Append-heavy (events, delivery events, membership changes): insert-driven vacuum at 2 % keeps
  the visibility map current, so per-person counts stay index-only and freezing happens in
  small steps rather than one anti-wraparound pass over the whole table; retention deletes
  are vacuumed at 2 % dead. Analyze at 2 %, so the newest days are in the planner's stats.
- Update-heavy (people, activity summaries, deliveries, memberships): vacuum at 5 % dead, and
  free space on each page (fillfactor) so a new row version can stay on its page. Summaries
  change only unindexed columns, so at fillfactor 80 most updates are HOT (no index writes);
  people's attributes are in a GIN index, so their updates are not HOT, and 90 only keeps
  the new version near the old one. Insert-driven vacuum on people also merges the GIN
  pending list (segments 0005) in small steps.
"""

from django.db import migrations
from django_tenants.utils import get_public_schema_name

STORAGE = {
    "segments_event": {
        "autovacuum_vacuum_scale_factor": "0.02",
        "autovacuum_vacuum_insert_scale_factor": "0.02",
        "autovacuum_analyze_scale_factor": "0.02",
    },
    "messaging_deliveryevent": {
        "autovacuum_vacuum_scale_factor": "0.02",
        "autovacuum_vacuum_insert_scale_factor": "0.02",
        "autovacuum_analyze_scale_factor": "0.02",
    },
    "segments_membershipchange": {
        "autovacuum_vacuum_insert_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.05",
    },
    "segments_person": {
        "fillfactor": "90",
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_vacuum_insert_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.05",
    },
    "segments_activitysummary": {
        "fillfactor": "80",
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.05",
    },
    "messaging_delivery": {
        "fillfactor": "90",
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.05",
    },
    "segments_membership": {
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.05",
    },
}


def set_storage(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.schema_name == get_public_schema_name():
        return
    for table, parameters in STORAGE.items():
        options = ", ".join(f"{name} = {value}" for name, value in parameters.items())
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} SET ({options})")


def reset_storage(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.schema_name == get_public_schema_name():
        return
    for table, parameters in STORAGE.items():
        names = ", ".join(parameters)
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET ({names})")


class Migration(migrations.Migration):
    dependencies = [
        ("maintenance", "0001_governor_and_retention"),
        ("segments", "0005_person_attributes_pending_list"),
        ("messaging", "0001_deliveries"),
    ]

    operations = [migrations.RunPython(set_storage, reset_storage)]
