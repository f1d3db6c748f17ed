from django.urls import path

from accounts import staff_views

app_name = "staff"

urlpatterns = [
    path("", staff_views.account_list, name="accounts"),
    path("login/", staff_views.login_view, name="login"),
    path("logout/", staff_views.logout_view, name="logout"),
    path("accounts/<slug:slug>/", staff_views.account_detail, name="account"),
]
