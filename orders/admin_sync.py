"""Admin for the platform sync: per-shop health (同步状态) and a "sync now" action.

Imported by one line at the end of `orders.admin`. The health list is read-only — the sync
alone writes it — and visible to everyone who may view shops, within their shops. "Sync now"
enqueues a django-q2 task through `orders.sync.request_sync`, which checks that the person may
change the shop (运营, 主管).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError
from orders import selectors, sync
from orders.admin import OutOfScopeIs404Mixin, ShopAdmin
from orders.models import ShopSyncState, SyncStatus


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return gettext("%(n)d 秒") % {"n": seconds}
    if seconds < 7200:
        return gettext("%(n)d 分钟") % {"n": seconds // 60}
    if seconds < 172800:
        return gettext("%(n)d 小时") % {"n": seconds // 3600}
    return gettext("%(n)d 天") % {"n": seconds // 86400}


def _request_syncs(request, shops) -> None:
    actor = admin_actor(request)
    queued, running, refused = [], [], []
    for shop in shops:
        try:
            task = sync.request_sync(shop=shop, actor=actor)
        except DomainError as exc:
            refused.append(exc.message)
        else:
            (queued if task else running).append(shop.code)
    if queued:
        messages.success(request, ngettext("已加入同步队列:%(shops)s", "已加入同步队列:%(shops)s", len(queued))
                         % {"shops": ", ".join(queued)})
    if running:
        messages.info(request, gettext("正在同步,无需重复排队:%(shops)s") % {"shops": ", ".join(running)})
    for message in refused:
        messages.error(request, message)


@admin.action(description=_("立即同步所选店铺"), permissions=["change"])
def sync_now(modeladmin, request, queryset):
    _request_syncs(request, list(queryset))


# The Shop admin lives in orders.admin; its "sync now" action is this module's.
ShopAdmin.actions = (*(ShopAdmin.actions or ()), sync_now)


@admin.register(ShopSyncState)
class ShopSyncStateAdmin(OutOfScopeIs404Mixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("shop_link", "platform", "status_badge", "last_finished_at", "counts", "lag", "error_short",
                    "consecutive_failures", "next_run_at", "lease")
    list_filter = ("status", "shop__platform")
    search_fields = ("shop__code", "shop__name")
    list_select_related = ("shop",)
    actions = ("sync_selected",)
    fieldsets = (
        (None, {"fields": ("shop", "status", "cursor", "start_from")}),
        (_("最近一次"), {"fields": ("last_started_at", "last_finished_at", "last_succeeded_at", "last_pages",
                                 "last_fetched", "last_created", "last_updated", "last_unchanged", "last_failed",
                                 "newest_platform_updated_at", "lag_seconds", "last_error", "consecutive_failures")}),
        (_("调度与租约"), {"fields": ("next_run_at", "lease_owner", "lease_expires_at")}),
    )

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_shop")

    def has_sync_permission(self, request):
        return request.user.has_perm("orders.change_shop")

    def get_queryset(self, request):
        shops = selectors.shop_list(actor=admin_actor(request)).values("pk")
        return super().get_queryset(request).filter(shop__in=shops)

    @admin.action(description=_("立即同步所选店铺"), permissions=["sync"])
    def sync_selected(self, request, queryset):
        _request_syncs(request, [state.shop for state in queryset.select_related("shop")])

    @admin.display(description=_("店铺"), ordering="shop__code")
    def shop_link(self, obj):
        url = reverse("admin:orders_shop_change", args=[obj.shop_id])
        return format_html('<a href="{}">{}</a>', url, obj.shop.code)

    @admin.display(description=_("平台"), ordering="shop__platform")
    def platform(self, obj):
        return obj.shop.get_platform_display()

    @admin.display(description=_("状态"), ordering="status")
    def status_badge(self, obj):
        colour = {SyncStatus.FAILED: "#ba2121", SyncStatus.PARTIAL: "#b26b00", SyncStatus.OK: "#2a7a2a"}.get(
            obj.status, "#666")
        label = gettext("同步中") if obj.leased() else obj.get_status_display()
        return format_html('<b style="color:{}">{}</b>', colour, label)

    @admin.display(description=_("拉取/新建/更新/未变/失败"))
    def counts(self, obj):
        return f"{obj.last_fetched}/{obj.last_created}/{obj.last_updated}/{obj.last_unchanged}/{obj.last_failed}"

    @admin.display(description=_("延迟"), ordering="newest_platform_updated_at")
    def lag(self, obj):
        if obj.newest_platform_updated_at is None:
            return "—"
        return _age((timezone.now() - obj.newest_platform_updated_at).total_seconds())

    @admin.display(description=_("最近错误"))
    def error_short(self, obj):
        if not obj.last_error:
            return "—"
        text = obj.last_error if len(obj.last_error) <= 80 else obj.last_error[:79] + "…"
        return format_html('<span title="{}">{}</span>', obj.last_error, text)

    @admin.display(description=_("租约"))
    def lease(self, obj):
        if not obj.leased():
            return "—"
        return f"{obj.lease_owner} → {timezone.localtime(obj.lease_expires_at):%H:%M:%S}"
