"""CSV imports: upload, preview, map, run in the background, report every rejected row."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingest.imports_worker import claim_task, run_task
from ingest.models import ImportTask
from segments import imports
from segments.models import Import, Person
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

GOOD = b"email,first name,plan,seats\nann@example.com,Ann,pro,5\nBOB@example.com,Bob,free,1\n"


@pytest.fixture
def imports_dir(tmp_path, settings):
    settings.IMPORTS_DIR = tmp_path / "imports"
    return settings.IMPORTS_DIR


def upload(client, content: bytes, name: str = "people.csv"):
    return client.post("/imports/", {"file": SimpleUploadedFile(name, content, "text/csv")})


def start(client, job, identifier="email", kind="email", **mapping):
    data = {"identifier_column": identifier, "identifier_kind": kind}
    for index, column in enumerate(job.columns):
        data[f"map_{index}"] = mapping.get(column, column)
    return client.post(f"/imports/{job.pk}/start/", data)


def run_worker():
    while task := claim_task():
        run_task(task)


def the_job(account) -> Import:
    with account:
        return Import.objects.get()


def test_upload_previews_the_first_rows_and_offers_a_mapping(cast, imports_dir):
    client = client_for(cast.acme, cast.mia)
    response = upload(client, GOOD)
    job = the_job(cast.acme)
    assert response["Location"] == f"/imports/{job.pk}/"
    page = client.get(f"/imports/{job.pk}/")
    assert page.context["sample"][0] == ["ann@example.com", "Ann", "pro", "5"]
    assert b"becomes attribute" in page.content
    assert (imports_dir / cast.acme.schema_name / job.stored_as).exists()


def test_an_import_runs_in_the_background_and_reports(cast, imports_dir):
    client = client_for(cast.acme, cast.mia)
    upload(client, GOOD)
    job = the_job(cast.acme)
    start(client, job, **{"first name": "first_name"})
    assert ImportTask.objects.get().account_id == cast.acme.pk
    run_worker()
    job = the_job(cast.acme)
    assert (job.state, job.rows_total, job.rows_imported, job.rows_rejected) == ("done", 2, 2, 0)
    with cast.acme:
        bob = Person.objects.get(email="bob@example.com")
    assert bob.attributes == {
        "email": "bob@example.com",
        "first_name": "Bob",
        "plan": "free",
        "seats": 1,
    }
    assert b"2 imported, 0 rejected" in client.get(f"/imports/{job.pk}/").content


def test_every_bad_row_is_reported_with_its_line_and_the_rest_imported(cast, imports_dir):
    content = (
        b"id,email,plan\n"
        b"1,ann@example.com,pro\n"
        b",nobody@example.com,free\n"  # line 3: no identifier
        b"3,not-an-email,free\n"  # line 4: bad email
        b"4,dan@example.com\n"  # line 5: a field short
        b"5,\xff\xfe@example.com,pro\n"  # line 6: not UTF-8
        b"6,eve@example.com," + b"x" * 1001 + b"\n"  # line 7: value too long
        b"\n"
        b"7,fay@example.com,basic\n"
    )
    client = client_for(cast.acme, cast.alice)
    upload(client, content)
    start(client, the_job(cast.acme), identifier="id", kind="id")
    run_worker()
    job = the_job(cast.acme)
    assert (job.rows_imported, job.rows_rejected, job.rows_total) == (2, 5, 7)
    with cast.acme:
        reasons = dict(job.rejections.values_list("line", "reason"))
        assert set(Person.objects.values_list("customer_id", flat=True)) == {"1", "7"}
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "is empty" in reasons[3]
    assert "not an email address" in reasons[4]
    assert "fields where the header has" in reasons[5]
    assert "not valid UTF-8" in reasons[6]
    assert "longer than 1000 bytes" in reasons[7]
    report = client.get(f"/imports/{job.pk}/")
    assert b"not valid UTF-8" in report.content


def test_unsubscribed_must_be_true_or_false(cast, imports_dir):
    # A column mapped to `unsubscribed` takes what the Track API takes. Text such as "no" was
    # let through, and the drain's truth test made it an unsubscribe.
    content = b"id,unsubscribed\n1,true\n2,FALSE\n3,no\n4,1\n5,\n"
    client = client_for(cast.acme, cast.alice)
    upload(client, content)
    start(client, the_job(cast.acme), identifier="id", kind="id")
    run_worker()
    job = the_job(cast.acme)
    assert (job.rows_imported, job.rows_rejected) == (3, 2)
    with cast.acme:
        reasons = dict(job.rejections.values_list("line", "reason"))
        states = dict(Person.objects.values_list("customer_id", "unsubscribed"))
    assert reasons == {
        4: "“no” for unsubscribed is not true or false",
        5: "“1” for unsubscribed is not true or false",
    }
    assert states == {"1": True, "2": False, "5": False}  # an empty cell sets nothing


def test_a_file_without_a_usable_header_fails_clearly(cast, imports_dir):
    client = client_for(cast.acme, cast.alice)
    upload(client, b"a,a\n1,2\n")
    job = the_job(cast.acme)
    assert job.state == "failed" and job.error == "Column names must be unique."
    response = upload(client, b"")
    assert b"The submitted file is empty." in response.content
    with cast.acme:
        assert Import.objects.count() == 1


def test_viewers_cannot_import(cast, imports_dir):
    client = client_for(cast.acme, cast.vic)
    assert upload(client, GOOD).status_code == 403
    with cast.acme:
        assert not Import.objects.exists()


def test_another_account_cannot_see_or_start_this_accounts_import(cast, imports_dir):
    upload(client_for(cast.acme, cast.alice), GOOD)
    job = the_job(cast.acme)
    other = client_for(cast.globex, cast.charlie)
    assert other.get(f"/imports/{job.pk}/").status_code == 404
    assert start(other, job).status_code == 404
    assert not ImportTask.objects.exists()


def test_progress_is_served_as_a_fragment_for_htmx(cast, imports_dir):
    client = client_for(cast.acme, cast.alice)
    upload(client, GOOD)
    job = the_job(cast.acme)
    start(client, job)
    response = client.get(f"/imports/{job.pk}/?part=progress", HTTP_HX_REQUEST="true")
    assert response.content.decode().lstrip().startswith('<div id="import-progress"')
    assert b'hx-trigger="every 1s"' in response.content


def test_a_file_of_many_chunks_reports_every_bad_line_and_imports_the_rest(
    cast, imports_dir, monkeypatch
):
    # Chunks of 3: bad rows fall before, inside and at the edges of chunks read ahead.
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    lines = [b"id,plan"]
    for n in range(1, 21):
        lines.append(b",no id" if n in (2, 3, 9, 20) else b"%d,p%d" % (n, n))
    client = client_for(cast.acme, cast.alice)
    upload(client, b"\n".join(lines) + b"\n")
    start(client, the_job(cast.acme), identifier="id", kind="id")
    run_worker()
    job = the_job(cast.acme)
    assert (job.state, job.rows_imported, job.rows_rejected, job.rows_total) == ("done", 16, 4, 20)
    with cast.acme:
        assert sorted(job.rejections.values_list("line", flat=True)) == [3, 4, 10, 21]
        plans = dict(Person.objects.values_list("customer_id", "attributes__plan"))
    assert plans == {str(n): f"p{n}" for n in range(1, 21) if n not in (2, 3, 9, 20)}


def test_reading_ahead_hands_over_every_chunk_in_order_and_then_any_error():
    def chunks():
        yield 1
        yield 2
        raise ValueError("the file went away")

    received = []
    with pytest.raises(ValueError, match="the file went away"):
        for chunk in imports.in_background(chunks()):
            received.append(chunk)
    assert received == [1, 2]


def test_a_file_that_cannot_be_read_any_more_fails_the_import_with_the_reason(cast, imports_dir):
    client = client_for(cast.acme, cast.alice)
    upload(client, GOOD)
    job = the_job(cast.acme)
    start(client, job)
    with cast.acme:  # the file changed after its preview: the header is no longer UTF-8
        imports.stored_path(job).write_bytes(b"\xff\xfe,plan\n" + GOOD.split(b"\n", 1)[1])
    run_worker()
    job = the_job(cast.acme)
    assert job.state == Import.State.FAILED
    assert "ValueError: the header line cannot be read" in job.error
    with cast.acme:
        assert not Person.objects.exists()


def test_an_import_switches_threads_often_and_restores_the_setting_after():
    import sys

    from ingest.apply import SWITCH_INTERVAL, writer_fed_promptly

    before = sys.getswitchinterval()
    with writer_fed_promptly():
        with writer_fed_promptly():  # a second pipeline of the same process
            assert sys.getswitchinterval() == SWITCH_INTERVAL
        assert sys.getswitchinterval() == SWITCH_INTERVAL  # the first still runs
    assert sys.getswitchinterval() == before
