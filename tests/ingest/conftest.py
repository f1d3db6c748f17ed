import base64
import json
import ssl
from collections.abc import Iterator

import pytest
import trustme
from django.test import Client

from accounts.models import Account, ApiKey, IssuedSecrets
from ingest import spool as spool_module
from ingest.credentials import forget_cached_credentials
from ingest.drain import PassResult, drain_batches
from ingest.spool import Spool, get_spool
from tests.conftest import FerryClient, gunicorn


@pytest.fixture
def spool(tmp_path, settings) -> Iterator[Spool]:
    """A spool of this test's own."""
    settings.INGEST_SPOOL_PATH = tmp_path / "spool.sqlite3"
    forget_cached_credentials()
    yield get_spool()
    spool_module._spools.clear()
    forget_cached_credentials()


@pytest.fixture
def acme_key(cast) -> IssuedSecrets:
    return ApiKey.issue(cast.acme, "Backend")[1]


@pytest.fixture
def globex_key(cast) -> IssuedSecrets:
    return ApiKey.issue(cast.globex, "Backend")[1]


def basic(username: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def api_client(key: IssuedSecrets | None = None) -> Client:
    headers = {"HTTP_AUTHORIZATION": basic(key.site_id, key.api_key)} if key else {}
    return FerryClient(HTTP_HOST="localhost", **headers)


def send(client: Client, method: str, path: str, body: object, **headers) -> object:
    return getattr(client, method)(
        path, data=json.dumps(body), content_type="application/json", **headers
    )


def drain(spool: Spool, batch_size: int = 1000) -> PassResult:
    """Apply everything waiting, as the drain worker would."""
    total, claimed = PassResult(), True
    while claimed:
        claimed = False
        for result in drain_batches(spool, batch_size=batch_size, lease_seconds=60):
            total.claimed += result.claimed
            total.applied += result.applied
            total.dead += result.dead
            claimed = True
    return total


def people(account: Account):
    from segments.models import Person

    with account:
        return {p.customer_id or p.email: p for p in Person.objects.all()}


def events(account: Account) -> list:
    from segments.models import Event

    with account:
        return list(Event.objects.order_by("id").select_related("person"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, str, ssl.SSLContext, str]:
    """A certificate for 127.0.0.1 from a throwaway CA: (cert, key, client context, CA file)."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert, key, ca = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(cert)
    certificate.private_key_pem.write_to_path(key)
    authority.cert_pem.write_to_path(ca)
    context = ssl.create_default_context(cafile=str(ca))
    return str(cert), str(key), context, str(ca)


@pytest.fixture(scope="session")
def ingest_server(test_database_url, tls_files, tmp_path_factory) -> Iterator[dict]:
    """Ferry over HTTPS with a spool of its own; yields its port and spool path."""
    spool_path = tmp_path_factory.mktemp("server-spool") / "spool.sqlite3"
    with gunicorn(
        test_database_url, env={"INGEST_SPOOL_PATH": str(spool_path)}, tls=tls_files[:3]
    ) as port:
        yield {"port": port, "spool_path": spool_path, "ca": tls_files[3]}


@pytest.fixture
def server_spool(ingest_server, settings) -> Iterator[Spool]:
    """The server's spool, read and drained by this test."""
    settings.INGEST_SPOOL_PATH = ingest_server["spool_path"]
    forget_cached_credentials()
    yield get_spool()
    spool_module._spools.clear()
