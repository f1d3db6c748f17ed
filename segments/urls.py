from django.urls import include, path

from segments import import_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("people/", views.people, name="people"),
    path("people/export.csv", views.export_people, name="export_people"),
    path("people/<int:person_id>/", views.person, name="person"),
    path("people/segments/", views.change_segment_membership, name="change_segment_membership"),
    path("people/<int:person_id>/attributes/", views.set_attribute, name="set_attribute"),
    path(
        "people/<int:person_id>/attributes/<str:name>/delete/",
        views.delete_attribute,
        name="delete_attribute",
    ),
    path("people/<int:person_id>/delete/", views.delete_person, name="delete_person"),
    path("audit/", views.audit_log, name="audit_log"),
    path("imports/", import_views.import_list, name="imports"),
    path("imports/<int:import_id>/", import_views.import_detail, name="import"),
    path("imports/<int:import_id>/start/", import_views.start_import, name="start_import"),
    path("segments/", include("segments.segment_urls")),
]
