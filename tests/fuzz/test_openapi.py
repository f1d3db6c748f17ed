"""Schemathesis against a live gunicorn: the ingestion API and the status API as described in
openapi/*.yaml. No 5xx, documented status codes, content types, headers and bodies.

Each operation gets a bounded number of generated requests (FUZZ_EXAMPLES, default 25) so
the suite stays fast; run with FUZZ_EXAMPLES=500 for a longer hunt. Examples also include
requests the schema forbids (schemathesis's negative mode): they must be 4xx, never 5xx.
"""

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Account, ApiKey
from status.snapshot import publish_snapshot
from tests.conftest import BASE_DIR, gunicorn

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def operations(name: str) -> list:
    schema = schemathesis.openapi.from_path(BASE_DIR / "openapi" / name)
    return [result.ok() for result in schema.get_all_operations()]


def operation_ids(name: str) -> list[str]:
    return [f"{op.method.upper()} {op.path}" for op in operations(name)]


@pytest.fixture(scope="module")
def fuzz_key(django_db_setup, django_db_blocker) -> Iterator:
    """A committed key of acme's for the server to see, deleted afterwards: the suite's
    `committed_keys` would stay and show on the API key pages other tests count."""
    with django_db_blocker.unblock():
        key, secrets = ApiKey.issue(Account.objects.get(slug="acme"), "Fuzz")
    yield secrets
    with django_db_blocker.unblock():
        key.delete()


@pytest.fixture(scope="module")
def fuzz_server(test_database_url, fuzz_key, tmp_path_factory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("fuzz")
    env = {
        "INGEST_SPOOL_PATH": str(folder / "spool.sqlite3"),
        "STATUS_SNAPSHOT_DIR": str(folder / "status"),
        "INGEST_RATE_LIMIT_PER_SECOND": "0",
    }
    with gunicorn(test_database_url, workers=2, env=env) as port:
        yield {"url": f"http://127.0.0.1:{port}", "snapshot": folder / "status",
               "key": fuzz_key}  # fmt: skip


def fuzz(operation, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


@pytest.mark.parametrize("index", range(len(operation_ids("track-api.yaml"))),
                         ids=operation_ids("track-api.yaml"))  # fmt: skip
def test_the_ingestion_api_never_fails_and_answers_as_described(fuzz_server, index):
    operation = operations("track-api.yaml")[index]
    key = fuzz_server["key"]
    user = key.write_key if operation.path.startswith("/v1/") else f"{key.site_id}:{key.api_key}"
    if ":" not in user:
        user += ":"
    headers = {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()}
    fuzz(operation, fuzz_server["url"], headers)


@pytest.fixture
def published(fuzz_server, settings) -> Path:
    settings.STATUS_SNAPSHOT_DIR = fuzz_server["snapshot"]
    call_command("load_status_demo", verbosity=0)  # rolled back; the files stay
    publish_snapshot()
    return fuzz_server["snapshot"]


@pytest.mark.parametrize("index", range(len(operation_ids("status-api.yaml"))),
                         ids=operation_ids("status-api.yaml"))  # fmt: skip
def test_the_status_api_answers_as_described(fuzz_server, published, index):
    operation = operations("status-api.yaml")[index]
    fuzz(operation, fuzz_server["url"] + "/api/v2", {"Host": "status.localhost"})
