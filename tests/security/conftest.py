"""Security tests use the ingestion tests' spool, keys and HTTPS server."""

from tests.ingest.conftest import acme_key, globex_key, spool, tls_files  # noqa: F401
