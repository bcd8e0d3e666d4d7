"""/api/v1/: every app's API under one prefix."""

from django.urls import include, path

urlpatterns = [
    path("", include("orders.api_urls")),
    path("", include("inventory.api_urls")),
]
