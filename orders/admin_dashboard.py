"""A list filter the admin home (config/dashboard.py) links to: the orders in a pick batch of
one warehouse (`?batch_warehouse=<warehouse id>`). Imported by one line at the end of
`orders/admin.py`, after the order admin is registered for good (`orders.admin_exports`
re-registers it), and appended to that admin's filters."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from config.admin_tools import admin_actor
from orders import selectors
from orders.models import Order, ParcelOrder


class PickBatchWarehouseFilter(admin.SimpleListFilter):
    title = _("拣货批次仓库")
    parameter_name = "batch_warehouse"

    def lookups(self, request, model_admin):
        return [(str(w.pk), w.name) for w in selectors.warehouse_list(actor=admin_actor(request))]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if not str(self.value()).isdigit():
            return queryset.none()
        return queryset.filter(pk__in=ParcelOrder.objects.filter(warehouse_id=self.value()).values("order_id"))


_order_admin = admin.site._registry[Order]
if PickBatchWarehouseFilter not in _order_admin.list_filter:
    _order_admin.list_filter = (*_order_admin.list_filter, PickBatchWarehouseFilter)
