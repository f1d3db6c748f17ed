from django.urls import path

from status import staff_views

app_name = "staff_status"

urlpatterns = [
    path("", staff_views.console, name="console"),
    path("components/<str:code>/status/", staff_views.component_status, name="component_status"),
    path("incidents/new/", staff_views.incident_new, name="incident_new"),
    path("incidents/<str:code>/", staff_views.incident_detail, name="incident"),
    path("incidents/<str:code>/resolve/", staff_views.incident_resolve, name="incident_resolve"),
    path(
        "incidents/<str:code>/postmortem/",
        staff_views.incident_postmortem,
        name="incident_postmortem",
    ),
    path("maintenances/new/", staff_views.maintenance_new, name="maintenance_new"),
    path("preview/", staff_views.preview, name="preview"),
    path("templates/", staff_views.templates, name="templates"),
    path(
        "templates/<int:template_id>/delete/", staff_views.template_delete, name="template_delete"
    ),
    path("subscribers/", staff_views.subscribers, name="subscribers"),
    path(
        "notifications/<int:notification_id>/retry/",
        staff_views.notification_retry,
        name="notification_retry",
    ),
]
