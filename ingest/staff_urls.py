from django.urls import path

from ingest import staff_views

app_name = "ingest_staff"

urlpatterns = [
    path("", staff_views.backlog, name="backlog"),
    path("dead-letters/<int:letter_id>/replay/", staff_views.replay, name="replay"),
    path("dead-letters/<int:letter_id>/discard/", staff_views.discard, name="discard"),
]
