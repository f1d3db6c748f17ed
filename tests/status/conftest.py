"""Status tests: a snapshot directory of their own, a status-host client, demo components."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from status.models import Component
from status.snapshot import publish_snapshot

STATUS_HOST = "status.localhost"


@pytest.fixture(autouse=True)
def snapshot_dir(settings, tmp_path: Path) -> Iterator[Path]:
    """Every test publishes into its own directory, never into var/status."""
    settings.STATUS_SNAPSHOT_DIR = tmp_path / "status"
    yield settings.STATUS_SNAPSHOT_DIR


@pytest.fixture
def status_client() -> Client:
    return Client(HTTP_HOST=STATUS_HOST)


@pytest.fixture
def demo(db) -> dict[str, Component]:
    """The six demo components and the April 2015 incident, by component key."""
    call_command("load_status_demo", verbosity=0)
    return {component.key: component for component in Component.objects.all()}


@pytest.fixture
def publish(db):
    """Publish the snapshot as the database is now (inside the test's transaction)."""
    return publish_snapshot
