from django.urls import path

from maintenance import staff_views

app_name = "maintenance_staff"

urlpatterns = [
    path("", staff_views.console, name="console"),
    path("storage/", staff_views.storage, name="storage"),
    path("accounts/<slug:slug>/retention/", staff_views.account_retention, name="retention"),
]
