"""People created whole in one step (Batch.create_whole, an import's every row) and their COPY
text (new_people_copy): the same people, attributes and attribute times as the general path
(Batch.create, then set_attributes' checks), which is the reference here with create_whole
turned off; and every value stored as it was given, whatever characters it holds."""

import copy

import psycopg
import pytest

from ingest.apply import Batch, apply_items, plan, touched_keys
from segments.membership import EVERYTHING
from segments.models import Person, Suppression
from tests.people.conftest import make_person

pytestmark = pytest.mark.django_db

AT = 1_795_687_229.6319242


def identify(person: dict, at: float = AT, anonymous_id: str | None = None, **attributes) -> dict:
    return {"op": "identify", "person": person, "attributes": attributes, "update_only": False,
            "at": at, "anonymous_id": anonymous_id}  # fmt: skip


# New people of every shape, some taking the fast path and some not, and later items that change
# them again or run into them.
ITEMS = [
    identify({"email": "ann@example.com"}, email="ann@example.com", plan="pro", seats=5),
    identify({"id": "bob"}, plan="free", vip=True, ratio=0.5),
    identify({"email": "cy@example.com"}, plan="basic"),  # the email keeps no time of its own
    identify({"id": "dee"}, email="dee@example.com", plan="pro"),  # an email not theirs yet
    identify({"id": "eve"}, email="ann@example.com"),  # ann's, created above: refused
    identify({"email": "Fay@Example.com"}, email="Fay@Example.com", plan="pro"),
    identify({"id": "gus"}, plan="", seats=None, country="NO"),  # empty values
    identify({"id": "hal"}, unsubscribed=True, plan="pro"),
    identify({"id": "ida"}, anonymous_id="anon-1", plan="pro"),
    identify({"id": "jon"}),  # nothing but the identifier
    identify({"email": "kim@example.com"}),
    identify({"id": "bob"}, at=AT + 1, plan="pro", seats=3),  # a person made above, again
    identify({"email": "ann@example.com"}, at=AT - 1, plan="basic"),  # older: loses
    identify({"id": "lee"}, nested={"a": [1, 2]}, tags=["x", "y"]),
    identify({"id": "sue"}, plan="pro"),  # suppressed, by id
    identify({"email": "sam@example.com"}, email="sam@example.com"),  # suppressed, by email
    identify({"id": "old-1"}, plan="enterprise"),  # stored before: the general path
    identify({"id": "new-2"}, email="stored@example.com"),  # an email stored before: refused
    identify({"email": "ann@example.com"}, at=AT + 1, seats=6),  # newer: wins
]


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new person made empty by create and given values by set_attributes."""
    monkeypatch.setattr(Batch, "create_whole", lambda self, person, values, at: None)


def planned(items: list[dict]) -> tuple:
    batch = Batch()
    outcome = plan(batch, items, AT)
    for number, state in enumerate(batch.people(), start=1):
        state.id = number  # as assign_ids would, in the same order
    people = sorted(
        (s.customer_id or "", s.email or "", s.attributes, s.attribute_times, s.unsubscribed,
         s.created, s.changed, sorted(s.touched))
        for s in batch.people()
    )  # fmt: skip
    indexes = (sorted(batch.by_id), sorted(batch.by_email), sorted(batch.by_anonymous))
    merges = [(state.customer_id, anonymous_id) for state, anonymous_id in batch.merges]
    touched = sorted(
        (key, "everything" if value is EVERYTHING else sorted(value))
        for key, value in touched_keys(batch, set()).items()
    )
    return outcome, people, indexes, merges, touched


def test_planning_creates_the_same_people_as_the_general_path(monkeypatch):
    items = copy.deepcopy(ITEMS)
    fast = planned(items)
    assert items == ITEMS  # untouched: a chunk whose write fails is applied again from them
    with monkeypatch.context() as general:
        general_path(general)
        reference = planned(ITEMS)
    assert fast == reference
    outcome, people, *_ = fast
    assert outcome.failures == [(4, "email ann@example.com belongs to another person")]
    ann = next(person for person in people if person[1] == "ann@example.com")
    assert ann[2:4] == (  # one time for all of them, the older change lost, the newer kept
        {"email": "ann@example.com", "plan": "pro", "seats": 6},
        {"": AT, "seats": AT + 1},
    )
    cy = next(person for person in people if person[1] == "cy@example.com")
    assert cy[3] == {"plan": AT}  # the email they were created by has no time of its own


def test_the_fast_path_takes_only_the_people_it_can_make_whole(monkeypatch):
    made: list[str] = []
    create_whole = Batch.create_whole

    def spy(self, person, values, at):
        state = create_whole(self, person, values, at)
        if state is not None:
            made.append(person.get("id") or person["email"])
        return state

    monkeypatch.setattr(Batch, "create_whole", spy)
    plan(Batch(), ITEMS, AT)
    assert made == [
        "ann@example.com",
        "bob",
        "cy@example.com",
        "Fay@Example.com",
        "jon",
        "kim@example.com",
        "lee",
        "sue",
        "sam@example.com",
        "old-1",
    ]  # fmt: skip (nobody is stored or suppressed here)


def stored(account, items: list[dict]) -> tuple:
    """Apply `items` to the account with two people already stored and two suppressions; what
    it made of them."""
    with account:
        make_person(account, "old-1", plan="free")
        make_person(account, "old-2", "stored@example.com")
        Suppression.objects.create(kind="id", value="sue")
        Suppression.objects.create(kind="email", value="sam@example.com")
        outcome = apply_items(items)
        people = sorted(
            (p.customer_id or "", p.email or "", p.attributes, p.attribute_times, p.unsubscribed)
            for p in Person.objects.all()
        )
    return (outcome.applied, outcome.suppressed, outcome.failures), people


def test_stored_people_are_the_same_as_the_general_paths(cast, monkeypatch):
    fast = stored(cast.acme, ITEMS)
    with monkeypatch.context() as general:
        general_path(general)
        reference = stored(cast.globex, ITEMS)
    assert fast == reference
    counts, people = fast
    assert counts == (
        15, 2,
        [(4, "email ann@example.com belongs to another person"),
         (17, "email stored@example.com belongs to another person")],
    )  # fmt: skip
    assert ("bob", "", {"plan": "pro", "vip": True, "ratio": 0.5, "seats": 3},
            {"": AT, "plan": AT + 1, "seats": AT + 1}, False) in people  # fmt: skip
    assert ("old-1", "", {"plan": "enterprise"}, {"plan": AT}, False) in people
    assert not {"sue", "sam@example.com"} & {
        identifier for person in people for identifier in person[:2]
    }


AWKWARD = [
    "tab\there",
    "line\nbreak",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    'quote " and \\" escaped',
    "ünïcødé ✓ 𝄞",
    "\u2028 separator and \x01 control",
    "ends with a backslash \\",
]


def test_awkward_values_are_stored_as_given(cast):
    items = [
        identify({"id": value}, text=value, list=[value], nested={value: value})
        for value in AWKWARD
    ]
    items.append(identify({"email": "tab\t@example.com"}, email="tab\t@example.com", n=1))
    with cast.acme:
        outcome = apply_items(items)
        people = {p.customer_id: p for p in Person.objects.all()}
    assert outcome.failures == [] and outcome.applied == len(items)
    for value in AWKWARD:
        person = people[value]
        assert person.email is None
        assert person.attributes == {"text": value, "list": [value], "nested": {value: value}}
        assert person.attribute_times == {"": AT}
    assert people[None].email == "tab\t@example.com"


def test_a_nul_in_an_identifier_fails_the_batch_as_before(cast):
    # PostgreSQL refuses the NUL in whichever statement meets it first: the COPY of the new
    # person ("invalid byte sequence ... 0x00", NUL), or the lookup of the batch's identifiers
    # when the planner evaluates their JSON array first ("\u0000 cannot be converted to
    # text"), which it does once the account has people, as earlier tests may leave.
    with cast.acme, pytest.raises(psycopg.DataError, match=r"NUL|\\u0000 cannot be converted"):
        apply_items([identify({"id": "nul\x00here"}, plan="pro")])
