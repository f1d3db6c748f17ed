"""Operations that several apps' migrations share."""

from django.db import migrations


def unique_without_like_index(app_label: str, model_name: str, field_name: str, constraint: str):
    """For a CharField that was `unique=True` and is now a UniqueConstraint named
    `constraint`: drop the LIKE index (varchar_pattern_ops) that Django makes on PostgreSQL
    beside the unique one, and give the unique constraint that name. Renamed, not rebuilt:
    quick on a table of millions of rows. (The migration's state operations change the field
    and add the constraint; this does the database's part.)"""

    def names(apps, schema_editor) -> tuple:
        model = apps.get_model(app_label, model_name)
        table = model._meta.db_table
        column = model._meta.get_field(field_name).column
        like = schema_editor._create_index_name(table, [column], suffix="_like")
        return model, table, column, like

    def forward(apps, schema_editor) -> None:
        model, table, column, like = names(apps, schema_editor)
        quote = schema_editor.quote_name
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(like)}")
        for name in schema_editor._constraint_names(
            model, [column], unique=True, primary_key=False
        ):
            if name != constraint:
                schema_editor.execute(
                    f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(name)}"
                    f" TO {quote(constraint)}"
                )

    def backward(apps, schema_editor) -> None:
        _, table, column, like = names(apps, schema_editor)
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(constraint)}"
            f" TO {quote(f'{table}_{column}_key')}"
        )
        schema_editor.execute(
            f"CREATE INDEX {quote(like)} ON {quote(table)} ({quote(column)} varchar_pattern_ops)"
        )

    return migrations.RunPython(forward, backward)
