"""Admin for tracking numbers pushed back to the platforms (`orders.tracking_push`).

A read-only list (status, attempts, last error, shop, order, filters) with one action,
"retry now", which calls `orders.tracking_push.retry_now` with the person as actor (it checks
``orders.retry_trackingpush``: 运营 and 主管). 仓管 may see the list (``view_trackingpush``).
Rows are limited to the person's shops (`StaffProfile`); another shop's row is a 404.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError
from orders import tracking_push
from orders.models import TrackingPush


@admin.register(TrackingPush)
class TrackingPushAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "shop", "order", "package_no", "carrier", "tracking_number", "status", "attempts",
                    "next_attempt_at", "sent_at", "short_error", "note")
    list_filter = ("status", "platform", "shop", "carrier")
    search_fields = ("tracking_number", "order__number", "order__platform_order_id")
    date_hierarchy = "created_at"
    list_select_related = ("shop", "order")
    list_per_page = 100
    actions = ("retry_selected",)
    readonly_fields = ("shipment", "order", "shop", "platform", "carrier", "tracking_number", "package_no", "status",
                       "attempts", "next_attempt_at", "last_error", "note", "request_summary", "response_summary",
                       "platform_reference", "created_at", "sent_at", "updated_at")
    exclude = ("claimed_until",)

    def has_retry_permission(self, request):
        return request.user.has_perm(tracking_push.RETRY_PERMISSION)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        shop_ids = admin_actor(request).scope.shop_ids
        return qs if shop_ids is None else qs.filter(shop_id__in=shop_ids)

    @admin.action(description=_("立即重新回传运单号"), permissions=("retry",))
    def retry_selected(self, request, queryset):
        try:
            report = tracking_push.retry_now(actor=admin_actor(request),
                                             push_ids=list(queryset.values_list("pk", flat=True)))
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        level = messages.WARNING if (report.failed or report.waiting) else messages.SUCCESS
        messages.add_message(request, level, gettext(
            "已回传 %(sent)d 个,失败 %(failed)d 个,稍后重试 %(waiting)d 个,无需回传 %(na)d 个,跳过 %(skipped)d 个") % {
            "sent": report.sent, "failed": report.failed, "waiting": report.waiting, "na": report.not_applicable,
            "skipped": report.skipped})

    @admin.display(description=_("错误"))
    def short_error(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error
