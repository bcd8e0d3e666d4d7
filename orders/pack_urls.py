"""`/pack/`: packing by scan for warehouse staff (orders.pack_views)."""

from django.urls import path

from orders import pack_views

app_name = "pack"

urlpatterns = [
    path("", pack_views.index, name="index"),
    path("warehouse/", pack_views.choose_warehouse, name="warehouse"),
    path("box/<str:key>/", pack_views.unit, name="unit"),
    path("box/<str:key>/pack/", pack_views.pack, name="pack"),
    path("box/<str:key>/ship/", pack_views.ship, name="ship"),
    path("box/<str:key>/reset/", pack_views.reset, name="reset"),
]
