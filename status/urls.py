"""The status host's routes. The page, history, incident pages, feeds and `/api/v2/` come
from the snapshot (see status.middleware); these are what is left."""

from django.urls import path, re_path

from status import views

app_name = "status"

urlpatterns = [
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/sent/", views.subscribe_sent, name="subscribe_sent"),
    path("subscribe/confirm/<str:token>/", views.confirm_subscription, name="confirm"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    re_path(r"^(?P<path>.*)$", views.not_in_snapshot, name="not_in_snapshot"),
]
