"""A private PostgreSQL cluster with Ferry migrated and three accounts, shared by the drills
of this folder that need a server of their own to change or stop (the migrate and status
drills). Each drill runs its own Ferry processes with their own spool; each leaves the
cluster running and current."""

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.drills import Cluster, DrillAccount, Ferry, create_accounts


@dataclass
class DrillSite:
    cluster: Cluster
    url: str
    accounts: list[DrillAccount]

    def ferry(self, folder: Path, env: dict[str, str] | None = None) -> Ferry:
        """Ferry's processes on this cluster, with a spool and var folder in `folder`."""
        # Static files are collected once per test run; dashboards need their manifest.
        return Ferry(folder, self.url, {"STATIC_ROOT": str(settings.STATIC_ROOT), **(env or {})})


@pytest.fixture(scope="package")
def drill_site() -> Iterator[DrillSite]:
    with tempfile.TemporaryDirectory(prefix="ferry-outage-drills-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)  # the cluster's server may run as another user
        cluster = Cluster(folder)
        try:
            url = cluster.create_database("drill")
            site = DrillSite(cluster, url, [])
            (folder / "setup").mkdir()
            setup = site.ferry(folder / "setup")
            setup.manage("migrate_schemas", "-v", "0")
            site.accounts = create_accounts(setup, ["north", "south", "west"])
            yield site
        finally:
            cluster.close()
