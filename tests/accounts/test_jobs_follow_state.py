"""Background jobs keep off an account while it is moving (their writes would stay behind)."""

import pytest

from accounts.models import Account
from messaging import sending
from tests.messaging.conftest import (  # noqa: F401  (fixtures)
    mailbox,
    make_broadcast,
    make_segment,
    readers,
    smtp_server,
)
from tests.messaging.test_sending import schedule

pytestmark = pytest.mark.django_db


def test_the_sending_round_skips_an_account_being_moved_and_sends_once_it_is_back(
    cast, readers, mailbox  # noqa: F811
):  # fmt: skip
    schedule(cast.acme, make_broadcast(cast.acme, make_segment(cast.acme, readers)))
    Account.objects.filter(pk=cast.acme.pk).update(state=Account.State.MOVING)
    assert sending.send_due_broadcasts() == 0
    assert not mailbox.received

    Account.objects.filter(pk=cast.acme.pk).update(state=Account.State.ACTIVE)
    assert sending.send_due_broadcasts() == 3
