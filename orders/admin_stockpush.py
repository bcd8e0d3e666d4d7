"""Admin for stock back to channels: the push log, each listing's state, safety-stock alerts.

All three are read-only history. The one action, "push now" on the listing states, calls
`orders.stock_push.push_now` with the person as actor (it checks `orders.change_shop`:
运营 and 主管). Every role that may view shops may read these lists; rows are limited to the
person's shops (`StaffProfile`).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError
from orders import stock_push
from orders.models import StockAlert, StockPush, StockPushState

VIEW_PERMISSION = "orders.view_shop"


def _push_listings(request, listings) -> None:
    try:
        report = stock_push.push_now(actor=admin_actor(request), listings=listings)
    except DomainError as exc:
        messages.error(request, exc.message)
        return
    level = messages.WARNING if report.failed else messages.SUCCESS
    messages.add_message(request, level, gettext("已回写 %(pushed)d 个,失败 %(failed)d 个") % {
        "pushed": report.pushed, "failed": report.failed})


class _StockPushReadOnly(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_per_page = 100

    def has_push_permission(self, request):
        return request.user.has_perm(stock_push.PUSH_PERMISSION)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(VIEW_PERMISSION)

    def has_module_permission(self, request):
        return request.user.has_perm(VIEW_PERMISSION)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        shop_ids = admin_actor(request).scope.shop_ids
        if shop_ids is not None and hasattr(self.model, "shop"):
            qs = qs.filter(shop_id__in=shop_ids)
        return qs


@admin.register(StockPush)
class StockPushAdmin(_StockPushReadOnly):
    list_display = ("created_at", "shop", "platform_sku_id", "sku", "quantity", "available", "buffer",
                    "safety_stock", "reason", "ok", "http_status", "short_error", "duration_ms", "actor_label")
    list_filter = ("ok", "reason", "shop")
    search_fields = ("platform_sku_id", "platform_item_id", "sku__code")
    date_hierarchy = "created_at"
    list_select_related = ("shop", "sku")
    actions = ("push_again_selected",)

    @admin.action(description=_("按当前库存重新回写"), permissions=("push",))
    def push_again_selected(self, request, queryset):
        """The current figure of the selected rows' listings (not the logged quantity)."""
        _push_listings(request, set(queryset.values_list("shop_id", "platform_sku_id")))

    @admin.display(description=_("错误"))
    def short_error(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error


@admin.register(StockPushState)
class StockPushStateAdmin(_StockPushReadOnly):
    list_display = ("shop", "platform_sku_id", "sku", "last_quantity", "last_pushed_at", "offered", "pending",
                    "failures", "last_error")
    list_filter = ("pending", "offered", "shop")
    search_fields = ("platform_sku_id", "sku__code")
    list_select_related = ("shop", "sku")
    actions = ("push_now_selected",)

    @admin.action(description=_("立即回写库存"), permissions=("push",))
    def push_now_selected(self, request, queryset):
        _push_listings(request, list(queryset.values_list("shop_id", "platform_sku_id")))


@admin.register(StockAlert)
class StockAlertAdmin(_StockPushReadOnly):
    list_display = ("opened_at", "sku", "country", "available", "threshold", "resolved_at", "recovered_available")
    list_filter = ("country", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("sku__code", "sku__name")
    list_select_related = ("sku",)
