"""Bad CSV files, huge values and unusual encodings: every row is imported or reported with
its line, and the import never crashes (hypothesis writes the files)."""

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments import imports
from segments.models import Import, ImportRejection, Person

pytestmark = pytest.mark.django_db

# Text at the edges: NUL, controls, quotes and separators, astral characters, lone
# surrogates' neighbours, right-to-left marks, and values over the 1,000-byte limit.
ODD_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["\x00", "a\x00b", '"', '""', ",", "\n", "\r\n", "\u202e", "🚢" * 300,
                     "x" * 1001, "=cmd|' /C calc'!A0", "\ufeffbom", "true", "1e309", "-0"]),
)  # fmt: skip
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "raw"])


@st.composite
def csv_files(draw) -> bytes:
    rows = [["email", "plan", "note"]]
    for _ in range(draw(st.integers(0, 6))):
        width = draw(st.sampled_from([3, 3, 3, 2, 4]))
        email = draw(st.one_of(st.emails().map(str), ODD_TEXT))
        rows.append([email, *draw(st.lists(ODD_TEXT, min_size=width - 1, max_size=width - 1))])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    encoding = draw(ENCODINGS)
    if encoding == "raw":
        data = text.getvalue().encode("utf-8", "surrogatepass")
        return data + draw(st.binary(max_size=40))  # undecodable bytes at the end
    return text.getvalue().encode(encoding, "replace")


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(content=csv_files())
def test_every_row_is_imported_or_reported_and_nothing_crashes(cast, tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("imports")
    with cast.acme:
        from django.test import override_settings

        with override_settings(IMPORTS_DIR=folder):
            path = imports.account_folder()
            path.mkdir(parents=True, exist_ok=True)
            (path / "fuzz.csv").write_bytes(content)
            job = Import.objects.create(filename="fuzz.csv", stored_as="fuzz.csv",
                                        size_bytes=len(content))  # fmt: skip
            header, _sample, problem = imports.preview(imports.stored_path(job))
            if problem:
                imports.fail(job, problem)  # what the upload view does: reported, clearly
                assert Import.objects.get(pk=job.pk).error == problem
                return
            job.columns, job.identifier_column = header, header[0]
            job.identifier_kind = Import.IdentifierKind.EMAIL
            job.mapping = {name: name for name in header[1:] if name and not name.startswith("_")}
            job.save()
            imports.run_import(job)  # must not raise
            job.refresh_from_db()
            assert job.state == Import.State.DONE
            assert job.rows_done == job.rows_imported + job.rows_rejected
            rejections = ImportRejection.objects.filter(job=job)
            assert rejections.count() == job.rows_rejected
            assert all(rejection.reason for rejection in rejections)
            assert Person.objects.count() <= job.rows_imported
            Person.objects.all().delete()


def test_a_row_with_a_nul_byte_is_reported_and_the_others_imported(cast, settings, tmp_path):
    settings.IMPORTS_DIR = tmp_path
    content = b"email,plan\nann@example.com,pro\nnul@example.com,p\x00ro\nbob@example.com,free\n"
    with cast.acme:
        imports.account_folder().mkdir(parents=True)
        (imports.account_folder() / "nul.csv").write_bytes(content)
        job = Import.objects.create(
            filename="nul.csv", stored_as="nul.csv", size_bytes=len(content),
            columns=["email", "plan"], identifier_column="email",
            identifier_kind=Import.IdentifierKind.EMAIL, mapping={"plan": "plan"},
        )  # fmt: skip
        imports.run_import(job)
        job.refresh_from_db()
        assert (job.state, job.rows_imported, job.rows_rejected) == (Import.State.DONE, 2, 1)
        rejection = job.rejections.get()
        assert (rejection.line, rejection.reason) == (
            3,
            "contains a NUL byte, which cannot be stored",
        )
        assert set(Person.objects.values_list("email", flat=True)) == {
            "ann@example.com", "bob@example.com"}  # fmt: skip
