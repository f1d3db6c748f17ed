from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection

from tests.conftest import client_for
from tests.people.conftest import NOW, QUERY_BUDGET, make_person, page_statements

pytestmark = pytest.mark.django_db


@contextmanager
def without_seq_scans():
    """For EXPLAIN on a test account of two people, where a scan would be cheaper than any
    index: the plans then show which index a query can use."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            yield cursor
        finally:
            cursor.execute("RESET enable_seqscan")


def test_every_role_sees_the_people_list(cast, ann):
    for user in (cast.alice, cast.mia, cast.vic):
        response = client_for(cast.acme, user).get("/people/")
        assert response.status_code == 200
        assert b"ann@example.com" in response.content


def test_the_list_shows_only_this_accounts_people(cast, ann, globex_person):
    response = client_for(cast.acme, cast.alice).get("/people/")
    assert b"gina@globex.example" not in response.content
    assert response.context["matches"] == 1


def test_anonymous_visitors_are_sent_to_log_in(cast):
    assert client_for(cast.acme).get("/people/").status_code == 302


def test_search_by_email_prefix_and_customer_id(cast, ann):
    make_person(cast.acme, "bob-2", "bob@example.com")
    client = client_for(cast.acme, cast.alice)
    assert [p.customer_id for p in client.get("/people/?q=ANN@").context["page"].rows] == ["ann-1"]
    assert [p.customer_id for p in client.get("/people/?q=bob-").context["page"].rows] == ["bob-2"]
    assert client.get("/people/?q=nobody").context["matches"] == 0


def test_search_finds_an_email_stored_in_mixed_case_by_any_case_of_its_beginning(cast, ann):
    make_person(cast.acme, "fay-4", "Fay.Smith@Example.com")
    client = client_for(cast.acme, cast.alice)
    for query in ("fay.smith@", "FAY.SMITH@EXAMPLE", "Fay"):
        rows = client.get(f"/people/?q={query}").context["page"].rows
        assert [p.customer_id for p in rows] == ["fay-4"], query


def test_searching_emails_uses_the_unique_index_on_their_lowercase(cast, ann):
    from segments.models import Person

    with cast.acme:
        with without_seq_scans() as cursor:
            plan = Person.objects.search("ann@").explain()
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'segments_person' "
                           "AND schemaname = current_schema() AND indexdef LIKE '%%(email%%'")  # fmt: skip
            assert cursor.fetchone() == (1,)  # the one index on emails
    assert "person_email_unique" in plan


def test_the_customer_id_index_holds_only_people_with_one_and_both_serve_every_lookup(cast, ann):
    from ingest.apply import ANY_OF_JSON
    from segments.models import Person

    with cast.acme:
        with without_seq_scans() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = "
                           "current_schema() AND indexname LIKE 'person_%%_unique'")  # fmt: skip
            definitions = dict(cursor.fetchall())
            plans = {}
            for name, sql in [
                ("by id", f"customer_id = {ANY_OF_JSON}"),
                ("by email", f"lower(email) = {ANY_OF_JSON}"),
            ]:  # the drain's lookups (Batch.load)
                cursor.execute(f"EXPLAIN SELECT id FROM segments_person WHERE {sql}", ['["a"]'])
                plans[name] = "\n".join(row[0] for row in cursor.fetchall())
            plans["id prefix"] = Person.objects.search("ann-").explain()
            plans["emails"] = Person.objects.with_emails(["Ann@example.com"]).explain()
    assert definitions["person_customer_id_unique"].endswith("WHERE (customer_id IS NOT NULL)")
    # Whole: the planner ignores a partial index's statistics on lower(email), and without
    # them an email prefix search scanned the newest-first index (a second at 1,000,000).
    assert "WHERE" not in definitions["person_email_unique"]
    for name in ("by id", "id prefix"):
        assert "person_customer_id_unique" in plans[name], plans[name]
    for name in ("by email", "emails"):
        assert "person_email_unique" in plans[name], plans[name]


def test_the_list_reads_newest_and_oldest_first_from_one_ascending_index(cast, ann):
    from segments.models import Person

    with cast.acme:
        with without_seq_scans() as cursor:
            newest = Person.objects.order_by("-created_at", "-id")[:50].explain()
            oldest = Person.objects.order_by("created_at", "id")[:50].explain()
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'person_created' "
                           "AND schemaname = current_schema()")  # fmt: skip
            (definition,) = cursor.fetchone()
    assert definition.endswith("USING btree (created_at, id)")  # new people at its right end
    assert "Index Scan Backward using person_created" in newest
    assert "Index Scan using person_created" in oldest
    assert "Sort" not in newest + oldest


def test_search_by_attribute_value_of_any_type(cast, ann):
    make_person(cast.acme, "cat-3", "cat@example.com", plan="free", seats="5")
    client = client_for(cast.acme, cast.alice)
    rows = client.get("/people/?attribute=plan&value=pro").context["page"].rows
    assert [p.customer_id for p in rows] == ["ann-1"]
    seats = {
        p.customer_id for p in client.get("/people/?attribute=seats&value=5").context["page"].rows
    }
    assert seats == {"ann-1", "cat-3"}
    vip = [
        p.customer_id for p in client.get("/people/?attribute=vip&value=true").context["page"].rows
    ]
    assert vip == ["ann-1"]


def test_a_value_without_an_attribute_is_a_clear_error(cast, ann):
    response = client_for(cast.acme, cast.alice).get("/people/?value=pro")
    assert b"Name the attribute to match the value against." in response.content


def test_filter_by_subscription_state(cast, ann):
    unsubscribed = make_person(cast.acme, "u-1", "u@example.com")
    with cast.acme:
        unsubscribed.unsubscribed = True
        unsubscribed.save(update_fields=["unsubscribed"])
    client = client_for(cast.acme, cast.alice)
    rows = client.get("/people/?subscription=unsubscribed").context["page"].rows
    assert [p.customer_id for p in rows] == ["u-1"]


def test_keyset_pages_cover_everyone_once_in_order(cast):
    for n in range(120):
        make_person(cast.acme, f"p{n:03}", created=NOW - timedelta(minutes=n))
    client = client_for(cast.acme, cast.alice)
    seen, url = [], "/people/"
    while url:
        page = client.get(url).context["page"]
        seen += [p.customer_id for p in page.rows]
        url = f"/people/?after={page.next_cursor}" if page.next_cursor else None
    assert seen == [f"p{n:03}" for n in range(120)]
    oldest = client.get("/people/?sort=oldest").context["page"].rows[0]
    assert oldest.customer_id == "p119"


def test_a_tampered_cursor_starts_from_the_beginning(cast, ann):
    response = client_for(cast.acme, cast.alice).get("/people/?after=forged")
    assert response.status_code == 200
    assert [p.customer_id for p in response.context["page"].rows] == ["ann-1"]


def test_htmx_requests_get_only_the_results(cast, ann):
    response = client_for(cast.acme, cast.alice).get("/people/?q=ann", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="people-results"')
    assert "<html" not in body


def test_export_streams_a_csv_of_the_filtered_people(cast, ann, globex_person):
    make_person(cast.acme, "bob-2", "bob@example.com", plan="free")
    response = client_for(cast.acme, cast.vic).get("/people/export.csv?attribute=plan&value=pro")
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("id,customer_id,email,unsubscribed,created_at,plan,seats,vip,other")
    assert len(lines) == 2 and "ann@example.com" in lines[1]
    assert "gina" not in body


def test_the_overview_counts_people_and_charts_events_per_day(cast, ann):
    from django.utils import timezone

    from segments.models import EventDay

    with cast.acme:
        EventDay.objects.create(day=timezone.now().date(), count=42)
    response = client_for(cast.acme, cast.vic).get("/")
    assert response.context["people_count"] == 1
    assert response.context["events_today"] == 42
    assert b"42 events" in response.content
    assert b"<svg" in response.content


@pytest.mark.parametrize(
    "path",
    ["/", "/people/", "/people/?q=ann@", "/people/?q=ann-", "/people/?attribute=plan&value=pro",
     "/people/?sort=oldest", "/people/?segment={vip}", "/people/?subscription=subscribed"],
)  # fmt: skip
def test_every_people_page_reads_within_its_query_budget(cast, ann, path):
    from segments.membership import Cause, change_members
    from segments.models import Segment

    with cast.acme:
        vip = Segment.objects.create(name="VIP", kind=Segment.Kind.MANUAL)
        change_members(vip, [ann.pk], Cause.MANUAL)
    client = client_for(cast.acme, cast.mia)
    response, statements = page_statements(client, path.format(vip=vip.pk))
    if path != "/":  # the overview, with its chart, lists nobody
        assert b"ann@example.com" in response.content
    assert len(statements) <= QUERY_BUDGET, statements
