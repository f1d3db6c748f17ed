"""Reading an import's CSV (segments/csvrows.py): every row's line, accepted or with its reason,
across quoted line breaks, blank lines and records the csv module cannot read; typed values."""

import pytest

from segments.csvrows import checked_chunks, typed

READING = {
    "identifier_column": "id",
    "by_email": False,
    "mapping": {"email": "email", "plan": "plan", "n": "n"},
    "at": 1.0,
}
TOO_LONG_FOR_CSV = "x" * 1_100_000  # over the csv module's field limit: a csv.Error
FILE = (
    "id,email,plan,n\n"
    "1,A@b.c ,pro,5\n"  # 2
    "\n"  # 3: blank, not a row
    "2,,free,x\n"  # 4
    ",c@d.e,basic,1\n"  # 5: no identifier
    "3,bad,pro,2\n"  # 6: not an email
    '4,"multi\nline@x.y",pro,3\n'  # 7-8
    "5,e@f.g,pro\n"  # 9: a field short
    f'6,g@h.i,"{TOO_LONG_FOR_CSV}",1\n'  # 10: unreadable
    "7,i@j.k,pro,\x00\n"  # 11: NUL
    "   ,  ,  ,  \n"  # 12: blank
    "8,k@l.m,TRUE,1.5\n"  # 13
)


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_every_row_keeps_its_line_whatever_the_chunks(tmp_path, chunk_rows):
    path = tmp_path / "people.csv"
    path.write_text(FILE)
    chunks = list(checked_chunks(path, READING, chunk_rows))
    assert all(
        len(chunk) <= chunk_rows and len(problems) <= chunk_rows for chunk, problems in chunks
    )
    accepted = [
        (line, item["person"]["id"], item["attributes"]) for c, _ in chunks for line, item in c
    ]
    assert accepted == [
        (2, "1", {"email": "a@b.c", "plan": "pro", "n": 5}),
        (4, "2", {"plan": "free", "n": "x"}),
        (7, "4", {"email": "multi\nline@x.y", "plan": "pro", "n": 3}),
        (13, "8", {"email": "k@l.m", "plan": True, "n": 1.5}),
    ]
    assert [problem for _, problems in chunks for problem in problems] == [
        (5, "the identifier column “id” is empty"),
        (6, "“bad” in the email column is not an email address"),
        (9, "has 3 fields where the header has 4"),
        (10, "malformed CSV (field larger than field limit (1048576))"),
        (11, "contains a NUL byte, which cannot be stored"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5), ("007", 7), ("-5", -5), ("+5", 5), ("1_000", 1000), ("1.5", 1.5), (".5", 0.5),
        ("1e3", 1000.0), ("1.0", 1.0), ("123456789012345", 123456789012345),
        ("12345678901234567890", 12345678901234567168),  # through float, as it always was
        ("\u0661\u0662", 12), ("\uff11\uff12", 12),  # other scripts' digits
        ("true", True), ("FALSE", False), ("free", "free"), ("t", "t"),
        (" 5", " 5"), ("5 ", "5 "), ("nan", "nan"), ("inf", "inf"), ("²", "²"), ("0x10", "0x10"),
        ("Name1", "Name1"), ("", ""),
    ],
)  # fmt: skip
def test_typed_reads_numbers_and_booleans_and_leaves_text(text, value):
    assert typed(text) == value and type(typed(text)) is type(value)
