"""Inventory admin: warehouses, SKUs, pools, the ledger and routing rules.

Stock numbers change only through `inventory.services` (so every change has a ledger
row): pools show on_hand/reserved read-only, and receipts, stocktakes and adjustments go
through a small form that calls the services. Reservations and the ledger are read-only.

Saving a pool's change form writes only its display fields (inbound, ETA) with
`update_fields`, never the whole row: on_hand and reserved are owned by the services and
may have changed (a concurrent allocation) since the form's copy was read.

Every list is limited to the person's warehouses (and, for order rows, shops); outside
their scope an object page is a 404.
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
from config.history_admin import ConfigHistoryAdmin

from config.admin_tools import OutOfScopeIs404Mixin, PiiLookupGuardMixin, ReadOnlyAdminMixin, admin_actor
from inventory import selectors, services
from inventory.forms import RoutingRuleForm, StockOperationForm
from inventory.models import Reservation, RoutingRule, Sku, SkuMapping, StockLevel, StockMove, Warehouse
from config.errors import DomainError


def _actor_warehouses(request):
    return selectors.warehouse_list(actor=admin_actor(request))


@admin.register(Warehouse)
class WarehouseAdmin(OutOfScopeIs404Mixin, ConfigHistoryAdmin):
    list_display = ("code", "name", "kind", "region", "province", "city", "priority", "lead_time_days", "allocatable", "is_active")
    list_filter = ("kind", "region", "allocatable", "is_active", "country")
    search_fields = ("code", "name", "province", "city")
    ordering = ("priority", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=_actor_warehouses(request).values("pk"))


class SkuMappingInline(admin.TabularInline):
    model = SkuMapping
    fields = ("shop", "platform_sku_id", "platform_item_id")
    extra = 0

    def get_queryset(self, request):
        return selectors.scope_shops(super().get_queryset(request), actor=admin_actor(request), field="shop_id")


class SkuStockInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StockLevel
    fields = ("warehouse", "on_hand", "reserved", "available", "inbound", "inbound_eta")
    readonly_fields = fields
    extra = 0
    verbose_name_plural = _("各仓库存")

    def get_queryset(self, request):
        return selectors.scope_stock_levels(super().get_queryset(request), actor=admin_actor(request))

    @admin.display(description=_("可用"))
    def available(self, pool):
        return pool.available


@admin.register(Sku)
class SkuAdmin(ConfigHistoryAdmin):
    list_display = ("code", "name", "category", "barcode", "safety_stock", "emergency_buffer", "tax_exempt", "is_active")
    list_filter = ("category", "tax_exempt", "is_active")
    search_fields = ("code", "name", "barcode")
    inlines = (SkuStockInline, SkuMappingInline)


@admin.register(SkuMapping)
class SkuMappingAdmin(OutOfScopeIs404Mixin, ConfigHistoryAdmin):
    list_display = ("shop", "platform_sku_id", "platform_item_id", "sku")
    list_filter = (("shop", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("platform_sku_id", "sku__code", "sku__name")
    list_select_related = ("shop", "sku")
    autocomplete_fields = ("sku",)

    def get_queryset(self, request):
        return selectors.scope_shops(super().get_queryset(request), actor=admin_actor(request), field="shop_id")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "shop":
            kwargs["queryset"] = selectors.scope_shops(db_field.related_model.objects.all(), actor=admin_actor(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- pools ----------------------------------------------------------------------------------------
@admin.register(StockLevel)
class StockLevelAdmin(OutOfScopeIs404Mixin, admin.ModelAdmin):
    change_list_template = "admin/inventory/stocklevel/change_list.html"
    change_form_template = "admin/inventory/stocklevel/change_form.html"
    list_display = ("warehouse", "sku", "on_hand", "reserved", "available_display", "inbound", "inbound_eta", "updated_at")
    list_filter = (("warehouse", admin.RelatedOnlyFieldListFilter), "sku__category")
    search_fields = ("sku__code", "sku__barcode", "sku__name")
    list_select_related = ("warehouse", "sku")
    fields = ("warehouse", "sku", "on_hand", "reserved", "available_display", "inbound", "inbound_eta", "updated_at")
    readonly_fields = ("warehouse", "sku", "on_hand", "reserved", "available_display", "updated_at")
    # What a form may write on a pool. Quantities are never here: they move only through
    # the services, each with its ledger row.
    editable_fields = ("inbound", "inbound_eta")
    ordering = ("warehouse__priority", "sku__code")

    def get_queryset(self, request):
        qs = selectors.scope_stock_levels(super().get_queryset(request), actor=admin_actor(request))
        return qs.annotate(available_qty=F("on_hand") - F("reserved"))

    def get_readonly_fields(self, request, obj=None):
        # Read-only for everyone, superusers included: the form never carries quantities.
        return tuple(f for f in self.fields if f not in self.editable_fields)

    def save_model(self, request, obj, form, change):
        """Write only the editable fields, never the whole row: `obj` was read at the start
        of the request, and saving it whole would put back on_hand/reserved as they were
        then, undoing a reservation made meanwhile (and leaving the ledger unbalanced)."""
        if not change:
            raise PermissionDenied  # a pool appears with its first receipt
        changed = [name for name in self.editable_fields if name in form.changed_data]
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])

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
            form = self._operation_form(request, StockOperationForm(request.POST))
            if form.is_valid():
                pool = self._apply(request, form)
                if pool is not None:
                    return HttpResponseRedirect(reverse("admin:inventory_stocklevel_changelist") + f"?q={pool.sku.code}")
        else:
            form = self._operation_form(request, StockOperationForm(
                initial={k: request.GET[k] for k in ("warehouse", "sku", "operation") if k in request.GET}))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("入库 / 盘点 / 调整"),
            "form": form,
        }
        return TemplateResponse(request, "admin/inventory/stocklevel/operation.html", context)

    @staticmethod
    def _operation_form(request, form):
        # Only the person's own warehouses are offered; another one is an invalid choice.
        field = form.fields["warehouse"]
        field.queryset = field.queryset.filter(pk__in=_actor_warehouses(request).values("pk"))
        return form

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
class ReservationAdmin(OutOfScopeIs404Mixin, PiiLookupGuardMixin, PoolColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "order_link", "sku", "warehouse", "quantity", "status", "expires_at", "created_at", "closed_at", "close_reason")
    list_filter = ("status", ("stock_level__warehouse", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("order_line__order__number", "order_line__order__platform_order_id", "stock_level__sku__code")
    list_select_related = ("order_line__order", "stock_level__warehouse", "stock_level__sku")

    def get_queryset(self, request):
        return selectors.scope_reservations(super().get_queryset(request), actor=admin_actor(request))

    @admin.display(description=_("订单"), ordering="order_line__order__number")
    def order_link(self, obj):
        order = obj.order_line.order
        return format_html('<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[order.pk]), order.number)


@admin.register(StockMove)
class StockMoveAdmin(OutOfScopeIs404Mixin, PiiLookupGuardMixin, PoolColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The append-only ledger: no add, no change, no delete — not even for a superuser."""

    list_display = ("created_at", "warehouse", "sku", "kind", "on_hand_delta", "reserved_delta", "on_hand_after",
                    "reserved_after", "order", "actor_label", "source", "reason")
    list_filter = ("kind", ("stock_level__warehouse", admin.RelatedOnlyFieldListFilter), "source", "created_at")
    search_fields = ("order__number", "stock_level__sku__code", "reason", "actor_label")
    list_select_related = ("stock_level__warehouse", "stock_level__sku", "order")
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return selectors.scope_stock_moves(super().get_queryset(request), actor=admin_actor(request))


@admin.register(RoutingRule)
class RoutingRuleAdmin(ConfigHistoryAdmin):
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
from inventory import admin_imports  # noqa: E402,F401 - Excel import pages (导入记录)
