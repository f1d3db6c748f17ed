from django.apps import apps
from django.db import connections
from django_tenants.routers import TenantSyncRouter
from django_tenants.utils import get_public_schema_name

from accounts.models import ACCOUNT, CONTROL


class PlaneRouter(TenantSyncRouter):
    """django-tenants' app-level routing, refined per model by its `planes` attribute.

    `accounts` is installed in both planes for its User model; Account and Domain must still
    exist only in `public`, and Invitation only in account schemas.
    """

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        allowed = super().allow_migrate(db, app_label, model_name=model_name, **hints)
        if allowed is False or model_name is None:
            return allowed
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return allowed
        planes = getattr(model, "planes", None)
        if planes is None:
            return allowed
        is_public = connections[db].schema_name == get_public_schema_name()
        return allowed if (CONTROL if is_public else ACCOUNT) in planes else False
