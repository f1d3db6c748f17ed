from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class StatusConfig(AppConfig):
    name = "status"
    verbose_name = "Status and incidents"

    def ready(self) -> None:
        # Signal providers register themselves in `<app>/status_signals.py`.
        autodiscover_modules("status_signals")
