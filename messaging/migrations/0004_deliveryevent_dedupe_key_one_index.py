from django.db import migrations, models

from config.migration_ops import unique_without_like_index


class Migration(migrations.Migration):
    """Delivery events keep one index on dedupe_key, the unique one that a replayed webhook
    meets (ON CONFLICT): not the LIKE index Django adds beside unique=True on a CharField,
    which nothing uses and every recorded open, click and bounce paid for."""

    dependencies = [
        ("messaging", "0003_delivery_retries"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="deliveryevent",
                    name="dedupe_key",
                    field=models.CharField(blank=True, max_length=200, null=True),
                ),
                migrations.AddConstraint(
                    model_name="deliveryevent",
                    constraint=models.UniqueConstraint(
                        fields=["dedupe_key"], name="deliveryevent_dedupe_key"
                    ),
                ),
            ],
            database_operations=[
                unique_without_like_index(
                    "messaging", "deliveryevent", "dedupe_key", "deliveryevent_dedupe_key"
                ),
            ],
        ),
    ]
