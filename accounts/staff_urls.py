from django.urls import path

from accounts import staff_views

app_name = "staff"

urlpatterns = [
    path("", staff_views.account_list, name="accounts"),
    path("login/", staff_views.login_view, name="login"),
    path("logout/", staff_views.logout_view, name="logout"),
    path("accounts/<slug:slug>/", staff_views.account_detail, name="account"),
    path("accounts/<slug:slug>/move/", staff_views.start_move, name="move_account"),
    path(
        "accounts/<slug:slug>/moves/<int:move_id>/cleanup/",
        staff_views.clean_up_move,
        name="cleanup_move",
    ),
    path("accounts/<slug:slug>/export/", staff_views.export, name="export_account"),
    path("accounts/<slug:slug>/delete/", staff_views.delete_account, name="delete_account"),
]
