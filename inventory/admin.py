"""Inventory admin: warehouses, SKUs, pools, the ledger and routing rules.

Stock numbers change only through `inventory.services` (so every change has a ledger
row): pools show on_hand/reserved read-only, and receipts, stocktakes and adjustments go
through a small form that calls the services. Reservations and the ledger are read-only.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from inventory import services
from inventory.forms import RoutingRuleForm, StockOperationForm
from inventory.models import Reservation, RoutingRule, Sku, SkuMapping, StockLevel, StockMove, Warehouse
from config.errors import DomainError


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "region", "province", "city", "priority", "lead_time_days", "allocatable", "is_active")
    list_filter = ("kind", "region", "allocatable", "is_active", "country")
    search_fields = ("code", "name", "province", "city")
    ordering = ("priority", "id")


class SkuMappingInline(admin.TabularInline):
    model = SkuMapping
    fields = ("shop", "platform_sku_id")
    extra = 0


class SkuStockInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StockLevel
    fields = ("warehouse", "on_hand", "reserved", "available", "inbound", "inbound_eta")
    readonly_fields = fields
    extra = 0
    verbose_name_plural = _("各仓库存")

    @admin.display(description=_("可用"))
    def available(self, pool):
        return pool.available


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "category", "barcode", "safety_stock", "emergency_buffer", "tax_exempt", "is_active")
    list_filter = ("category", "tax_exempt", "is_active")
    search_fields = ("code", "name", "barcode")
    inlines = (SkuStockInline, SkuMappingInline)


@admin.register(SkuMapping)
class SkuMappingAdmin(admin.ModelAdmin):
    list_display = ("shop", "platform_sku_id", "sku")
    list_filter = ("shop",)
    search_fields = ("platform_sku_id", "sku__code", "sku__name")
    list_select_related = ("shop", "sku")
    autocomplete_fields = ("sku",)


# --- pools ----------------------------------------------------------------------------------------
@admin.register(StockLevel)
class StockLevelAdmin(admin.ModelAdmin):
    change_list_template = "admin/inventory/stocklevel/change_list.html"
    change_form_template = "admin/inventory/stocklevel/change_form.html"
    list_display = ("warehouse", "sku", "on_hand", "reserved", "available_display", "inbound", "inbound_eta", "updated_at")
    list_filter = ("warehouse", "sku__category")
    search_fields = ("sku__code", "sku__barcode", "sku__name")
    list_select_related = ("warehouse", "sku")
    fields = ("warehouse", "sku", "on_hand", "reserved", "available_display", "inbound", "inbound_eta", "updated_at")
    readonly_fields = ("warehouse", "sku", "on_hand", "reserved", "available_display", "updated_at")
    ordering = ("warehouse__priority", "sku__code")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(available_qty=F("on_hand") - F("reserved"))

    def has_add_permission(self, request):
        return False  # a pool appears with its first receipt

    def has_delete_permission(self, request, obj=None):
        return False  # the ledger points at it

    @admin.display(description=_("可用"), ordering="available_qty")
    def available_display(self, pool):
        return pool.available

    @staticmethod
    def may_move_stock(request) -> bool:
        return request.user.has_perm("inventory.receive_stock") or request.user.has_perm("inventory.adjust_stock")

    def get_urls(self):
        return [
            path("operation/", self.admin_site.admin_view(self.operation_view), name="inventory_stocklevel_operation"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_move_stock": self.may_move_stock(request)}
        return super().changelist_view(request, extra_context=extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.may_move_stock(request):
            query = urlencode({"warehouse": obj.warehouse_id, "sku": obj.sku_id})
            context["operation_url"] = f"{reverse('admin:inventory_stocklevel_operation')}?{query}"
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def operation_view(self, request):
        """入库 / 盘点 / 调整: the form only parses; the service decides and records."""
        if not self.has_view_permission(request) or not self.may_move_stock(request):
            raise PermissionDenied
        if request.method == "POST":
            form = StockOperationForm(request.POST)
            if form.is_valid():
                pool = self._apply(request, form)
                if pool is not None:
                    return HttpResponseRedirect(reverse("admin:inventory_stocklevel_changelist") + f"?q={pool.sku.code}")
        else:
            form = StockOperationForm(initial={k: request.GET[k] for k in ("warehouse", "sku", "operation") if k in request.GET})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("入库 / 盘点 / 调整"),
            "form": form,
        }
        return TemplateResponse(request, "admin/inventory/stocklevel/operation.html", context)

    def _apply(self, request, form) -> StockLevel | None:
        data = form.cleaned_data
        actor = admin_actor(request)
        warehouse, sku, quantity, reason = data["warehouse"], data["sku"], data["quantity"], data["reason"]
        try:
            if data["operation"] == form.RECEIVE:
                pool = services.stock_receive(warehouse=warehouse, sku=sku, quantity=quantity, actor=actor, reason=reason)
                text = gettext("%(wh)s %(sku)s 入库 %(qty)d 件,在库 %(on_hand)d")
            elif data["operation"] == form.STOCKTAKE:
                pool = services.stock_count(warehouse=warehouse, sku=sku, counted=quantity, actor=actor, reason=reason)
                text = gettext("%(wh)s %(sku)s 盘点为 %(qty)d 件,在库 %(on_hand)d")
            else:
                pool = services.stock_adjust(warehouse=warehouse, sku=sku, delta=quantity, actor=actor, reason=reason)
                text = gettext("%(wh)s %(sku)s 调整 %(qty)+d 件,在库 %(on_hand)d")
        except DomainError as exc:
            form.add_error(None, exc.message)
            messages.error(request, exc.message)
            return None
        messages.success(request, text % {"wh": warehouse.name, "sku": sku.code, "qty": quantity, "on_hand": pool.on_hand})
        return pool


class PoolColumnsMixin:
    """Warehouse and SKU columns for rows that point at a pool (reservations, ledger moves)."""

    @admin.display(description=_("仓库"), ordering="stock_level__warehouse__priority")
    def warehouse(self, obj):
        return obj.stock_level.warehouse.name

    @admin.display(description=_("SKU"), ordering="stock_level__sku__code")
    def sku(self, obj):
        return obj.stock_level.sku.code


@admin.register(Reservation)
class ReservationAdmin(PoolColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "order_link", "sku", "warehouse", "quantity", "status", "expires_at", "created_at", "closed_at", "close_reason")
    list_filter = ("status", "stock_level__warehouse", "created_at")
    search_fields = ("order_line__order__number", "order_line__order__platform_order_id", "stock_level__sku__code")
    list_select_related = ("order_line__order", "stock_level__warehouse", "stock_level__sku")

    @admin.display(description=_("订单"), ordering="order_line__order__number")
    def order_link(self, obj):
        order = obj.order_line.order
        return format_html('<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[order.pk]), order.number)


@admin.register(StockMove)
class StockMoveAdmin(PoolColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The append-only ledger: no add, no change, no delete — not even for a superuser."""

    list_display = ("created_at", "warehouse", "sku", "kind", "on_hand_delta", "reserved_delta", "on_hand_after",
                    "reserved_after", "order", "actor_label", "source", "reason")
    list_filter = ("kind", "stock_level__warehouse", "source", "created_at")
    search_fields = ("order__number", "stock_level__sku__code", "reason", "actor_label")
    list_select_related = ("stock_level__warehouse", "stock_level__sku", "order")
    date_hierarchy = "created_at"


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    form = RoutingRuleForm
    list_display = ("position", "name", "warehouse", "mode", "is_active", "conditions_summary")
    list_display_links = ("name",)
    list_editable = ("position", "is_active")
    list_filter = ("mode", "is_active", "warehouse")
    search_fields = ("name", "note")
    list_select_related = ("warehouse",)
    ordering = ("position", "id")

    @admin.display(description=_("条件"))
    def conditions_summary(self, rule):
        text = json.dumps(rule.conditions, ensure_ascii=False) if rule.conditions else gettext("(匹配所有订单)")
        return text if len(text) <= 120 else text[:117] + "…"
