from django.urls import path

from segments import segment_views

urlpatterns = [
    path("", segment_views.segment_list, name="segment_list"),
    path("new/", segment_views.segment_new, name="segment_new"),
    path("<int:segment_id>/", segment_views.segment_detail, name="segment_detail"),
    path("<int:segment_id>/edit/", segment_views.segment_edit, name="segment_edit"),
    path("<int:segment_id>/delete/", segment_views.segment_delete, name="segment_delete"),
    path("<int:segment_id>/members/", segment_views.segment_members, name="segment_members"),
    path("<int:segment_id>/upload/", segment_views.segment_upload, name="segment_upload"),
]
