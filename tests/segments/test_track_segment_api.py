"""The Track API's manual segment endpoints: validated whole, spooled, applied by the drain."""

import pytest

from ingest.models import DeadLetter
from tests.ingest.conftest import api_client, drain, send
from tests.segments.conftest import PLAN_IS_PRO, manual_segment, members, person, rule_segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def vips(cast):
    with cast.acme:
        person("1", email="one@example.com")
        person("2", email="two@example.com")
        return manual_segment("VIPs")


def test_add_customers_by_id_then_remove_them(cast, spool, acme_key, vips):
    client = api_client(acme_key)
    response = send(client, "post", f"/api/v1/segments/{vips.pk}/add_customers",
                    {"ids": ["1", "2", "unknown"]})  # fmt: skip
    assert response.status_code == 200
    drain(spool)
    with cast.acme:
        assert members(vips) == {"1", "2"}
    send(client, "post", f"/api/v1/segments/{vips.pk}/remove_customers", {"ids": [2]})
    drain(spool)
    with cast.acme:
        assert members(vips) == {"1"}
        assert set(vips.changes.values_list("cause", flat=True)) == {"api"}


def test_add_customers_by_email(cast, spool, acme_key, vips):
    response = send(api_client(acme_key), "post",
                    f"/api/v1/segments/{vips.pk}/add_customers?id_type=email",
                    {"ids": ["ONE@example.com"]})  # fmt: skip
    assert response.status_code == 200
    drain(spool)
    with cast.acme:
        assert members(vips) == {"1"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/segments/{id}/add_customers", {"ids": []}, "ids"),
        ("/api/v1/segments/{id}/add_customers", {"ids": [str(n) for n in range(1001)]}, "ids"),
        ("/api/v1/segments/{id}/add_customers", {"ids": ["1", {"x": 1}]}, "ids[1]"),
        ("/api/v1/segments/{id}/add_customers?id_type=cio_id", {"ids": ["1"]}, "id_type"),
        ("/api/v1/segments/abc/remove_customers", {"ids": ["1"]}, "segment_id"),
        ("/api/v1/segments/{id}/remove_customers", ["1"], "body"),
    ],
)
def test_a_bad_request_is_refused_whole_naming_the_field(cast, spool, acme_key, vips, path,
                                                         body, field):  # fmt: skip
    response = send(api_client(acme_key), "post", path.format(id=vips.pk), body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert spool.pending_count() == 0


def test_credentials_are_required(cast, spool, vips):
    response = send(api_client(), "post", f"/api/v1/segments/{vips.pk}/add_customers",
                    {"ids": ["1"]})  # fmt: skip
    assert response.status_code == 401


def test_a_data_driven_or_missing_segment_becomes_a_dead_letter(cast, spool, acme_key):
    with cast.acme:
        person("1", plan="pro")
        pro = rule_segment("Pro", PLAN_IS_PRO)
    client = api_client(acme_key)
    send(client, "post", f"/api/v1/segments/{pro.pk}/remove_customers", {"ids": ["1"]})
    send(client, "post", "/api/v1/segments/999999/add_customers", {"ids": ["1"]})
    result = drain(spool)
    assert result.dead == 2
    assert sorted(DeadLetter.objects.values_list("error", flat=True)) == [
        f"segment {pro.pk} is data-driven, not manual",
        "segment 999999 does not exist",
    ]
    with cast.acme:
        assert members(pro) == {"1"}


def test_another_accounts_key_cannot_reach_this_accounts_segment(cast, spool, globex_key, vips):
    send(api_client(globex_key), "post", f"/api/v1/segments/{vips.pk}/add_customers",
         {"ids": ["1"]})  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(vips) == set()
