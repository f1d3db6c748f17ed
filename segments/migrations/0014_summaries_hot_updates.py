"""Activity summaries updated in place (HOT): the drain upserts tens of thousands of summaries a
batch, changing only count and times. With `count` in `activity_name_person` every one of them
wrote a new entry in both indexes; without it, and with room left on each page, the new row
version goes on the same page and no index is touched."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0013_person_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="activitysummary", name="activity_name_person"),
        migrations.AddIndex(
            model_name="activitysummary",
            index=models.Index(fields=["name", "person"], name="activity_name_person"),
        ),
        migrations.RunSQL(
            "ALTER TABLE segments_activitysummary SET (fillfactor = 80)",
            "ALTER TABLE segments_activitysummary RESET (fillfactor)",
        ),
    ]
