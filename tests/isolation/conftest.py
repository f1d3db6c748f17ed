"""Rows of acme (and of the control plane) for the isolation suite to ask for, and the
clients of every role on every side."""

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.test.client import ClientHandler
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.access import invitation_token
from accounts.models import AccountMove, ApiKey, Invitation, Role, User
from accounts.tokens import password_reset_tokens
from ingest.models import DeadLetter
from messaging import links
from messaging.models import Broadcast, Delivery, Topic
from segments import imports
from segments.models import Import, Person, Segment
from status.access import confirm_token, unsubscribe_token
from status.models import Component, Notification, Subscriber, UpdateTemplate
from status.snapshot import publish_snapshot
from tests.conftest import FerryClient, client_for

# The ingestion tests' spool and keys, for the API credential checks.
from tests.ingest.conftest import acme_key, globex_key, spool  # noqa: F401
from tests.isolation.access_table import (
    ADMIN,
    ANONYMOUS,
    MEMBER,
    NON_STAFF,
    OUTSIDER,
    OWNER,
    STAFF,
    VIEWER,
)
from tests.segments.conftest import manual_segment

# Text that only acme's rows contain: no refused response may show any of it.
MARKERS = (
    "iso-marker@acme.example", "Iso Marker Segment", "iso-marker-import.csv",
    "Iso Marker Broadcast",
)  # fmt: skip
STATUS_HOST = "status.localhost"
PUBLIC_HOST = "localhost"


@pytest.fixture
def acme_rows(cast, tmp_path: Path, settings) -> dict[str, str]:
    """Acme's rows by placeholder name; their ids exist in no other schema."""
    settings.IMPORTS_DIR = tmp_path / "imports"
    settings.INGEST_SPOOL_PATH = tmp_path / "spool.sqlite3"  # recipients' links spool
    with cast.acme:
        person = Person.objects.create(
            customer_id="iso-marker", email="iso-marker@acme.example", attributes={"plan": "pro"},
            attribute_times={"plan": 1.0}, created_at=timezone.now(), updated_at=timezone.now(),
        )  # fmt: skip
        segment = manual_segment("Iso Marker Segment")
        upload = SimpleUploadedFile("iso-marker-import.csv", b"email,plan\niso@acme.example,pro\n")
        stored_as, size = imports.store_upload(upload)
        job = Import.objects.create(
            filename=upload.name, stored_as=stored_as, size_bytes=size, columns=["email", "plan"]
        )
        invitation = Invitation.objects.create(email="invitee@example.com", role=Role.MEMBER)
        broadcast = Broadcast.objects.create(
            name="Iso Marker Broadcast", subject="Iso", from_email="iso@acme.example", body="Iso",
            segment=segment,
        )  # fmt: skip
        delivery = Delivery.objects.create(
            broadcast=broadcast, person=person, email="iso-recipient@example.com", state="sent",
            message_id="<1.1.abcdef0123456789@iso.example>",
        )  # fmt: skip
        # Its name is shown to whoever holds a preferences link, by design: not a marker.
        topic = Topic.objects.create(name="Iso Topic")
        account = str(cast.acme.pk)
        rows = {
            "broadcast": broadcast.pk,
            "delivery": delivery.pk,
            "topic": topic.pk,
            "unsubscribe_link": links.sign(links.UNSUBSCRIBE_SALT, account, delivery.pk),
            "preferences_link": links.sign(links.PREFERENCES_SALT, account, delivery.pk),
            "open_link": links.sign(links.OPEN_SALT, account, delivery.pk),
            "click_link": links.sign(
                links.CLICK_SALT, account, delivery.pk, "https://example.com/"
            ),
            "person": person.pk,
            "segment": segment.pk,
            "import": job.pk,
            "invitation": invitation.pk,
            "invitation_token": invitation_token(invitation),
            "mia": cast.mia.pk,
            "reset_uid": urlsafe_base64_encode(force_bytes(cast.alice.pk)),
            "reset_token": password_reset_tokens.make_token(cast.alice),
        }
    with cast.globex:
        assert not Person.objects.filter(pk=person.pk).exists()
        assert not Segment.objects.filter(pk=segment.pk).exists()
        assert not Import.objects.filter(pk=job.pk).exists()
        assert not Invitation.objects.filter(pk=invitation.pk).exists()
        assert not Broadcast.objects.filter(pk=broadcast.pk).exists()
        assert not Delivery.objects.filter(pk=delivery.pk).exists()
        assert not Topic.objects.filter(pk=topic.pk).exists()
        assert not User.objects.filter(pk=cast.mia.pk).exists()
    rows["api_key"] = ApiKey.issue(cast.acme, "Iso")[0].pk
    return {name: str(value) for name, value in rows.items()}


@pytest.fixture
def public_rows(cast, acme_rows, spool) -> dict[str, str]:  # noqa: F811
    # `spool`: staff replaying the dead letter below must not leave it in the suite's spool.
    call_command("load_status_demo", verbosity=0)
    incident = Component.objects.get(key="email-sending").incidents.get()
    subscriber = Subscriber.objects.create(mode="email", email="sub@example.com")
    rows = {
        **acme_rows,
        "dead_letter": DeadLetter.objects.create(
            account_id=cast.acme.pk, source="iso:1", payload={"type": "event"}, error="iso"
        ).pk,
        "component": Component.objects.get(key="email-sending").code,
        "incident": incident.code,
        "template": UpdateTemplate.objects.create(name="Iso", body="Iso body").pk,
        "notification": Notification.objects.create(
            channel="email", target="a@example.com", event="iso"
        ).pk,
        "move": AccountMove.objects.create(
            account=cast.acme, source="default", target="default", phase="failed"
        ).pk,
        "confirm_token": confirm_token(subscriber),
        "unsubscribe_token": unsubscribe_token(subscriber),
    }
    Group.objects.create(name="Iso group")
    for model in admin.site._registry:
        rows[f"admin:{model._meta.label_lower}"] = model._default_manager.order_by("pk").first().pk
    return {name: str(value) for name, value in rows.items()}


@pytest.fixture
def published(snapshot_dir) -> None:
    publish_snapshot()


@pytest.fixture
def snapshot_dir(settings, tmp_path: Path) -> Path:
    settings.STATUS_SNAPSHOT_DIR = tmp_path / "status"
    return settings.STATUS_SNAPSHOT_DIR


# One handler for every client here: a new one loads the middleware again, and WhiteNoise
# scans the static files each time (most of a request's cost in this suite).
SHARED_HANDLER = ClientHandler(enforce_csrf_checks=False)


def replay(source: Client, host: str) -> Client:
    """A client on `host` sending the cookies `source` got on its own host."""
    target = FerryClient(HTTP_HOST=host)
    target.cookies = source.cookies
    return target


@pytest.fixture
def client_as(cast) -> Callable[[str, str], Client]:
    """client_as(role, side): the client of a role asking on a side's host."""

    def make(role: str, side: str) -> Client:
        client = make_client(role, side)
        client.handler = SHARED_HANDLER
        return client

    def make_client(role: str, side: str) -> Client:
        home = {
            OWNER: (cast.acme, cast.alice),
            ADMIN: (cast.acme, cast.adam),
            MEMBER: (cast.acme, cast.mia),
            VIEWER: (cast.acme, cast.vic),
            OUTSIDER: (cast.globex, cast.charlie),
            STAFF: (None, cast.stella),
            NON_STAFF: (None, cast.paul),
        }
        if role == ANONYMOUS:
            host = {"tenant": cast.acme.host, "public": PUBLIC_HOST, "status": STATUS_HOST}[side]
            return FerryClient(HTTP_HOST=host)
        account, user = home[role]
        signed_in = client_for(account, user)
        if side == "tenant" and role == OUTSIDER:
            return signed_in  # on his own host, asking for acme's ids
        if side == "tenant" and account is not None:
            return signed_in
        host = {"tenant": cast.acme.host, "public": PUBLIC_HOST, "status": STATUS_HOST}[side]
        return replay(signed_in, host)

    return make
