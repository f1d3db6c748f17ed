from django.urls import path

from segments import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
