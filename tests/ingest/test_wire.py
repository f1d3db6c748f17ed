import pytest

from ingest import wire
from ingest.wire import WireError


def problem(call, *args) -> tuple[str, str]:
    with pytest.raises(WireError) as raised:
        call(*args)
    return raised.value.field, raised.value.problem


def test_an_identify_keeps_attributes_and_lowercases_the_email():
    item = wire.cio_identify(
        "42", {"email": "Bob@Example.COM", "plan": "basic", "_timestamp": 1700000000}
    )
    assert item["person"] == {"id": "42"}
    assert item["attributes"] == {"email": "bob@example.com", "plan": "basic"}
    assert item["at"] == 1700000000


def test_an_email_in_the_path_identifies_by_email():
    assert wire.cio_identify("Ann@Example.com", {})["person"] == {"email": "ann@example.com"}


def test_identifiers_longer_than_150_bytes_are_refused():
    assert problem(wire.cio_identify, "x" * 151, {}) == ("identifier", "must be at most 150 bytes")


def test_attribute_values_over_1000_bytes_are_refused():
    field, message = problem(wire.cio_identify, "42", {"bio": "x" * 1001})
    assert (field, message) == ("attributes.bio", "value must be at most 1000 bytes")


def test_more_than_300_attributes_are_refused():
    body = {f"a{i}": i for i in range(301)}
    assert problem(wire.cio_identify, "42", body)[1] == "must have at most 300 attributes"


def test_update_must_be_a_boolean():
    assert problem(wire.cio_identify, "42", {"_update": "yes"}) == (
        "_update",
        "must be true or false",
    )


def test_an_event_needs_a_name_of_at_most_100_bytes():
    assert problem(wire.cio_event, "42", {"data": {}})[0] == "name"
    assert problem(wire.cio_event, "42", {"name": "n" * 101}) == (
        "name",
        "must be at most 100 bytes",
    )


def test_event_data_over_100000_bytes_is_refused():
    field, _ = problem(wire.cio_event, "42", {"name": "x", "data": {"blob": "x" * 100_001}})
    assert field == "data"


def test_an_event_type_must_be_event_page_or_screen():
    assert problem(wire.cio_event, "42", {"name": "x", "type": "click"})[0] == "type"


def test_an_event_without_id_gets_a_dedupe_key_of_its_own():
    first = wire.cio_event("42", {"name": "x"})
    second = wire.cio_event("42", {"name": "x"})
    assert first["dedupe"] != second["dedupe"]
    assert wire.cio_event("42", {"name": "x", "id": "01H5"})["dedupe"] == "01H5"


def test_timestamps_accept_seconds_milliseconds_and_iso_dates():
    assert wire.unix_time(1700000000, "t") == 1700000000
    assert wire.unix_time(1700000000000, "t") == 1700000000
    assert wire.unix_time("2023-11-14T22:13:20Z", "t") == 1700000000
    assert problem(wire.unix_time, "2023-11-14 22:13", "t") == ("t", "must include a time zone")
    assert problem(wire.unix_time, "yesterday", "t")[0] == "t"


def test_v2_operations_need_exactly_one_identifier():
    op = {"type": "person", "action": "identify", "identifiers": {"id": "1", "email": "a@b.c"}}
    assert problem(wire.cio_v2_operation, op) == (
        "identifiers",
        "must contain exactly one of id, email, cio_id",
    )


def test_a_v2_batch_names_the_bad_operation():
    batch = {"batch": [
        {"type": "person", "action": "identify", "identifiers": {"id": "1"}},
        {"type": "person", "action": "fly", "identifiers": {"id": "1"}},
    ]}  # fmt: skip
    assert problem(wire.cio_v2_batch, batch)[0] == "batch[1].action"


def test_v2_events_carry_their_payload_in_attributes():
    op = {"type": "person", "action": "event", "identifiers": {"email": "A@b.co"}, "name": "buy",
          "attributes": {"price": 3}}  # fmt: skip
    item = wire.cio_v2_operation(op)
    assert (item["person"], item["data"], item["kind"]) == (
        {"email": "a@b.co"},
        {"price": 3},
        "event",
    )


def test_segment_calls_need_a_user_or_an_anonymous_id():
    assert problem(wire.segment_message, {"type": "track", "event": "x"})[0] == "userId"


def test_segment_message_ids_deduplicate():
    item = wire.segment_message({"type": "track", "userId": "u", "event": "x", "messageId": "m1"})[
        0
    ]
    assert item["dedupe"] == "m1"


def test_a_segment_batch_reports_bad_messages_and_keeps_the_rest():
    items, rejected = wire.segment_batch(
        {
            "batch": [
                {"type": "track", "userId": "u", "event": "ok"},
                {"type": "track", "event": "no"},
            ]
        }
    )
    assert [item["name"] for item in items] == ["ok"]
    assert rejected == [
        {"index": 1, "field": "batch[1].userId", "message": "userId or anonymousId is required"}
    ]


def test_a_segment_call_over_32_kb_is_refused():
    message = {"type": "track", "userId": "u", "event": "x", "properties": {"b": "x" * 33_000}}
    assert problem(wire.segment_message, message)[1] == "a call must be at most 32768 bytes"


def test_segment_page_names_fall_back_to_the_url():
    item = wire.segment_message(
        {"type": "page", "userId": "u", "properties": {"url": "https://x.io/a"}}
    )[0]
    assert (item["kind"], item["name"]) == ("page", "https://x.io/a")


def test_segment_alias_needs_both_ids():
    assert problem(wire.segment_message, {"type": "alias", "userId": "u"})[0] == "previousId"
