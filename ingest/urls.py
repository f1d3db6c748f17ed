from django.urls import path, re_path

from ingest import views

SEGMENT_CALLS = "identify|track|page|screen|group|alias"

urlpatterns = [
    # Customer.io Track API. Identifiers may contain anything (line breaks too, hence [\s\S]
    # rather than .), so the event route goes first.
    re_path(r"^api/v1/customers/(?P<identifier>[\s\S]+)/events$", views.customer_event),
    re_path(r"^api/v1/customers/(?P<identifier>[\s\S]+)$", views.customer),
    path("api/v1/events", views.anonymous_event),
    path("api/v1/metrics", views.metrics),
    path("api/v1/segments/<str:segment_id>/add_customers", views.segment_add_customers),
    path("api/v1/segments/<str:segment_id>/remove_customers", views.segment_remove_customers),
    path("api/v2/entity", views.v2_entity),
    path("api/v2/batch", views.v2_batch),
    # The Segment spec (and Customer.io's Segment-compatible pipelines API).
    path("v1/batch", views.segment_batch),
    re_path(rf"^v1/(?P<kind>{SEGMENT_CALLS})$", views.segment_call),
    # The browser tracker.
    path("track/browser", views.browser),
]
