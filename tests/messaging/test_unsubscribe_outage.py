"""One-click unsubscribe while PostgreSQL is unreachable, through real HTTP (gunicorn): the
request is acknowledged from the spool, and applied once the database is back."""

from urllib.request import Request, urlopen

import pytest

from ingest.spool import Spool
from messaging import links
from segments.models import Person
from tests.conftest import free_port, gunicorn
from tests.messaging.conftest import drain, make_person, sent_delivery

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_one_click_unsubscribe_is_accepted_with_the_database_down_and_applied_later(
    cast, spool, tmp_path, settings
):
    ann = make_person(cast.acme, "ann-1", "ann@example.com")
    delivery = sent_delivery(cast.acme, ann)
    token = links.sign(links.UNSUBSCRIBE_SALT, str(cast.acme.pk), delivery.pk)
    nowhere = f"postgresql://ferry@127.0.0.1:{free_port()}/ferry?connect_timeout=1"
    with gunicorn(nowhere, workers=1, env={"INGEST_SPOOL_PATH": str(spool.path)}) as port:
        request = Request(
            f"http://127.0.0.1:{port}/email/unsubscribe/{token}/",
            data=b"List-Unsubscribe=One-Click",
            headers={"Host": "localhost", "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with urlopen(request, timeout=20) as response:
            assert response.status == 200
        confirmation = Request(
            f"http://127.0.0.1:{port}/email/unsubscribe/{token}/", headers={"Host": "localhost"}
        )
        with urlopen(confirmation, timeout=20) as response:
            assert response.status == 200 and b"Unsubscribe?" in response.read()
    assert Spool(spool.path).pending_count() == 1

    drain(spool)  # the database is back
    with cast.acme:
        assert Person.objects.get(pk=ann.pk).unsubscribed
