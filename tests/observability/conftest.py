"""Observability tests use the ingestion tests' spool and the messaging tests' SMTP server."""

from tests.ingest.conftest import spool  # noqa: F401
from tests.messaging.conftest import mailbox, readers, smtp_server  # noqa: F401
