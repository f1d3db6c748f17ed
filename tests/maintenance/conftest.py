from collections.abc import Iterator

import pytest

from ingest import spool as spool_module
from ingest.spool import Spool, get_spool
from maintenance import governor


@pytest.fixture(autouse=True)
def _own_runs(request) -> None:
    """Each test sees only the maintenance runs it makes: workers that earlier tests started
    committed theirs (deleted inside this test's transaction, so only hidden here)."""
    if request.node.get_closest_marker("django_db") is None:
        return
    from maintenance.models import MaintenanceRun

    request.getfixturevalue("db")
    MaintenanceRun.objects.all().delete()


@pytest.fixture
def spool(tmp_path, settings) -> Iterator[Spool]:
    """A spool of this test's own, and a governor that reads it afresh."""
    settings.INGEST_SPOOL_PATH = tmp_path / "spool.sqlite3"
    governor._last_reading = None
    yield get_spool()
    spool_module._spools.clear()
    governor._last_reading = None


from tests.ingest.conftest import acme_key  # noqa: E402, F401
