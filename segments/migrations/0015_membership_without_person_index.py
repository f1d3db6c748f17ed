# Memberships lose their second index, (person, segment): every membership written (a first
# computation of 120,000 members, a change that moves 610,000 people, every drained batch) had
# to insert into it at a random place. Nothing reads memberships by person alone any more: a
# person's segments and the deletion trigger below visit each segment's primary-key range.

from django.db import migrations, models

FORGET_PEOPLE = """
CREATE OR REPLACE FUNCTION segments_forget_people() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.segments_membership AS m USING gone, %I.segments_segment AS s '
                   'WHERE m.segment_id = s.id AND m.person_id = gone.id',
                   TG_TABLE_SCHEMA, TG_TABLE_SCHEMA);
    EXECUTE format('DELETE FROM %I.segments_membershipchange AS c USING gone '
                   'WHERE c.person_id = gone.id', TG_TABLE_SCHEMA);
    RETURN NULL;
END $$;
"""
FORGET_PEOPLE_BY_PERSON_INDEX = """
CREATE OR REPLACE FUNCTION segments_forget_people() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.segments_membership AS m USING gone '
                   'WHERE m.person_id = gone.id', TG_TABLE_SCHEMA);
    EXECUTE format('DELETE FROM %I.segments_membershipchange AS c USING gone '
                   'WHERE c.person_id = gone.id', TG_TABLE_SCHEMA);
    RETURN NULL;
END $$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('segments', '0014_summaries_hot_updates'),
    ]

    operations = [
        migrations.RunSQL(FORGET_PEOPLE, FORGET_PEOPLE_BY_PERSON_INDEX),
        migrations.RemoveIndex(
            model_name='membership',
            name='membership_person_segment',
        ),
    ]
