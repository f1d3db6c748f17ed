"""Observability tests use the ingestion tests' own spool."""

from tests.ingest.conftest import spool  # noqa: F401
