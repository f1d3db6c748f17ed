"""URLs of the status host, status.<BASE_DOMAIN>."""

from django.urls import include, path

urlpatterns = [
    path("", include("status.urls")),
]

handler500 = "config.errors.server_error"
