"""URLs of the public side: any allowed host that is neither an account nor the status page."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from config.metrics import metrics_view

urlpatterns = [
    path("", TemplateView.as_view(template_name="public/home.html"), name="home"),
    path("staff/ingest/", include("ingest.staff_urls")),
    path("staff/status/", include("status.staff_urls")),
    path("staff/maintenance/", include("maintenance.staff_urls")),
    path("staff/", include("accounts.staff_urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("ingest.urls")),
    path("", include("messaging.public_urls")),
]

handler500 = "config.errors.server_error"
