"""Order endpoints under /api/v1/ (included by config/api_urls.py)."""

from django.urls import path

from orders import api

urlpatterns = [
    path("auth/token/", api.TokenObtainApi.as_view(), name="api-token"),
    path("orders/", api.OrderListApi.as_view(), name="api-order-list"),
    path("orders/<str:number>/", api.OrderDetailApi.as_view(), name="api-order-detail"),
    path("orders/<str:number>/transitions/<str:name>/", api.OrderTransitionApi.as_view(), name="api-order-transition"),
]
