"""Inventory endpoints under /api/v1/ (included by config/api_urls.py)."""

from django.urls import path

from inventory import api

urlpatterns = [
    path("stock/", api.StockLevelListApi.as_view(), name="api-stock-list"),
]
