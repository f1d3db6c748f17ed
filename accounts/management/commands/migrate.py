"""`migrate` is `migrate_schemas` (as in django-tenants), Ferry's version of it."""

from accounts.management.commands.migrate_schemas import Command  # noqa: F401
