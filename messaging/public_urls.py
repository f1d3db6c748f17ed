"""Recipients' links and provider webhooks, on the public side (no account lookup)."""

from django.urls import path

from messaging import public_views

app_name = "messaging_public"

urlpatterns = [
    path("email/unsubscribe/<str:token>/", public_views.unsubscribe, name="unsubscribe"),
    path("email/preferences/<str:token>/", public_views.preferences, name="preferences"),
    path("email/open/<str:token>/o.gif", public_views.open_pixel, name="open"),
    path("email/click/<str:token>/", public_views.click, name="click"),
    path("email/webhooks/mailgun/", public_views.mailgun_webhook, name="mailgun_webhook"),
]
