"""URLs of an account's dashboard, served at <slug>.<BASE_DOMAIN>."""

from django.urls import include, path

from accounts import views as accounts_views
from maintenance import views as maintenance_views

urlpatterns = [
    path("", include("segments.urls")),
    path("", include("messaging.urls")),
    path("login/", accounts_views.login_view, name="login"),
    path("logout/", accounts_views.logout_view, name="logout"),
    path("password/", accounts_views.password_change, name="password_change"),
    path("password/done/", accounts_views.password_change_done, name="password_change_done"),
    path("password/reset/", accounts_views.password_reset, name="password_reset"),
    path("password/reset/sent/", accounts_views.password_reset_done, name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        accounts_views.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        accounts_views.password_reset_complete,
        name="password_reset_complete",
    ),
    path("team/", accounts_views.team, name="team"),
    path("team/invite/", accounts_views.invite, name="invite"),
    path("team/<int:user_id>/role/", accounts_views.change_role, name="change_role"),
    path("team/<int:user_id>/remove/", accounts_views.remove_teammate, name="remove_teammate"),
    path(
        "team/invitations/<int:invitation_id>/revoke/",
        accounts_views.revoke_invitation,
        name="revoke_invitation",
    ),
    path("settings/api-keys/", accounts_views.api_keys, name="api_keys"),
    path("settings/api-keys/new/", accounts_views.create_api_key, name="create_api_key"),
    path(
        "settings/api-keys/<int:key_id>/rotate/",
        accounts_views.rotate_api_key,
        name="rotate_api_key",
    ),
    path(
        "settings/api-keys/<int:key_id>/revoke/",
        accounts_views.revoke_api_key,
        name="revoke_api_key",
    ),
    path("settings/retention/", maintenance_views.retention_settings, name="retention_settings"),
    path("invitations/<str:token>/", accounts_views.accept_invitation, name="accept_invitation"),
]

handler500 = "config.errors.server_error"
