from django.urls import path

from messaging import views

urlpatterns = [
    path("broadcasts/", views.broadcast_list, name="broadcasts"),
    path("broadcasts/new/", views.broadcast_new, name="broadcast_new"),
    path("broadcasts/<int:broadcast_id>/", views.broadcast_detail, name="broadcast"),
    path("broadcasts/<int:broadcast_id>/edit/", views.broadcast_edit, name="broadcast_edit"),
    path(
        "broadcasts/<int:broadcast_id>/preview/", views.broadcast_preview, name="broadcast_preview"
    ),
    path("broadcasts/<int:broadcast_id>/test/", views.broadcast_test, name="broadcast_test"),
    path(
        "broadcasts/<int:broadcast_id>/send/", views.broadcast_schedule, name="broadcast_schedule"
    ),
    path("broadcasts/<int:broadcast_id>/cancel/", views.broadcast_cancel, name="broadcast_cancel"),
    path("deliveries/", views.delivery_log, name="deliveries"),
    path("deliveries/<int:delivery_id>/", views.delivery_detail, name="delivery"),
    path("topics/", views.topics, name="topics"),
    path("topics/<int:topic_id>/delete/", views.topic_delete, name="topic_delete"),
]
