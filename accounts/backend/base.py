"""Ferry's PostgreSQL backend: django-tenants' schema switching, plus the account's server.

An account's data lives in its schema on one of the data servers (`settings.DATA_SERVERS`,
the primary is `default`). Choosing the schema and choosing the server are the same act here:
`connection.set_tenant(account)` puts this thread's connection on the account's server and its
schema, `set_schema_to_public()` puts it back on the primary's `public` schema (the control
plane), and `set_schema(name)` changes the schema on the server the connection is already on.

So everything that already reaches an account through the connection follows its placement
without knowing about servers: the ORM, `transaction.atomic()`, raw SQL on
`django.db.connection` (ingestion's apply, segment compilation, dashboards, jobs, migrations).
A Django database router cannot do this: routers pick a database per model, while placement is
per account, and raw SQL and transactions never consult a router.

Each server gets its own raw connection, kept open (parked) while the thread works on another
server. Switching servers inside a transaction is refused: a transaction cannot span servers.

Connections also grow with every schema they touch (PostgreSQL caches each table's catalog
entries per backend process); a raw connection that has been on more than
`DB_RECYCLE_AFTER_SCHEMAS` distinct schemas is closed at the next switch outside a
transaction and the next query opens a fresh one.
"""

from django.conf import settings
from django.db.transaction import TransactionManagementError
from django_tenants.postgresql_backend import base as tenants_base
from django_tenants.utils import get_public_schema_name

PRIMARY = "default"


class _Parked:
    __slots__ = ("close_at", "connection", "schemas")

    def __init__(self, connection, close_at, schemas: set[str]) -> None:
        self.connection, self.close_at, self.schemas = connection, close_at, schemas


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        self.server = PRIMARY
        self._parked: dict[str, _Parked] = {}
        # Distinct schemas this raw connection has been asked for (see recycling above).
        self.schemas_touched: set[str] = set()
        self.recycled = 0
        super().__init__(*args, **kwargs)

    def set_tenant(self, tenant, include_public: bool = True) -> None:
        if tenant.schema_name == get_public_schema_name():
            self.use_server(PRIMARY)
        elif hasattr(tenant, "server"):
            self.use_server(tenant.server)
        # A bare schema name (FakeTenant) stays on the server the connection is on.
        super().set_tenant(tenant, include_public)
        self._count_schema(tenant.schema_name)

    def use_server(self, server: str) -> None:
        """Point this connection at `server`; the schema is set by the caller next."""
        if server == self.server:
            return
        if server != PRIMARY and server not in settings.DATA_SERVERS:
            raise KeyError(f"{server!r} is not a data server (settings.DATA_SERVERS)")
        if self.in_atomic_block:
            raise TransactionManagementError(
                f"Cannot switch from server {self.server!r} to {server!r} inside a transaction"
            )
        if self.connection is not None:
            self._parked[self.server] = _Parked(
                self.connection, self.close_at, self.schemas_touched
            )
        parked = self._parked.pop(server, None)
        self.server = server
        self.connection = parked.connection if parked else None
        self.close_at = parked.close_at if parked else None
        self.schemas_touched = parked.schemas if parked else set()
        self.errors_occurred = False
        self.health_check_done = False
        self.search_path_set_schemas = None

    def get_connection_params(self) -> dict:
        if self.server == PRIMARY:
            return super().get_connection_params()
        primary = self.settings_dict
        self.settings_dict = {**primary, **settings.DATA_SERVERS[self.server]}
        try:
            return super().get_connection_params()
        finally:
            self.settings_dict = primary

    def close(self) -> None:
        super().close()
        for parked in self._parked.values():
            try:
                parked.connection.close()
            except Exception:  # a server that went away; nothing left to close
                pass
        self._parked.clear()
        self.schemas_touched = set()

    def _count_schema(self, schema_name: str) -> None:
        limit = getattr(settings, "DB_RECYCLE_AFTER_SCHEMAS", 0)
        if not limit or self.connection is None or schema_name in self.schemas_touched:
            self.schemas_touched.add(schema_name)
            return
        if len(self.schemas_touched) >= limit and not self.in_atomic_block:
            # Only this server's raw connection; the next cursor opens a fresh one.
            try:
                self.connection.close()
            except Exception:
                pass
            self.connection = None
            self.search_path_set_schemas = None
            self.schemas_touched = set()
            self.recycled += 1
        self.schemas_touched.add(schema_name)
