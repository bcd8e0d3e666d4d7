"""Admin for the webhook inbox: what arrived, what failed and why, and a replay action.

Read-only (the inbox is evidence of what a platform sent). Visible to those who may configure
shops (``orders.change_shop``: operations and supervisors) or who hold the model's own view
permission; limited to the person's shops. "Replay" processes the selected events again now,
through `orders.webhooks.replay_events` (which checks the permission itself).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError
from orders import selectors
from orders.models import WebhookEvent, WebhookStatus
from orders.webhooks import REPLAY_PERMISSION, replay_events


def _may_see(request) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and (
        user.has_perm(REPLAY_PERMISSION) or user.has_perm("orders.view_webhookevent")))


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "shop", "platform", "topic", "event_id", "status_badge", "attempts",
                    "next_attempt_at", "short_error", "result")
    list_filter = ("status", "platform", "shop")
    search_fields = ("event_id", "topic", "body_sha256")
    date_hierarchy = "received_at"
    list_select_related = ("shop",)
    actions = ("replay_selected",)
    fields = ("shop", "platform", "topic", "event_id", "status", "attempts", "next_attempt_at",
              "last_error", "result", "received_at", "processed_at", "duplicates", "replayed_by",
              "body_sha256", "pretty_headers", "pretty_body")
    readonly_fields = fields

    def get_queryset(self, request):
        shops = selectors.shop_list(actor=admin_actor(request)).values("pk")
        return super().get_queryset(request).filter(shop__in=shops)

    def has_module_permission(self, request):
        return _may_see(request)

    def has_view_permission(self, request, obj=None):
        return _may_see(request)

    def has_replay_permission(self, request):
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.display(description=_("状态"), ordering="status")
    def status_badge(self, obj):
        colour = {WebhookStatus.DONE: "green", WebhookStatus.FAILED: "orange", WebhookStatus.DEAD: "red"}.get(
            obj.status, "inherit")
        return format_html('<span style="color:{}">{}</span>', colour, obj.get_status_display())

    @admin.display(description=_("最近错误"))
    def short_error(self, obj):
        return obj.last_error[:120]

    @admin.display(description=_("请求头"))
    def pretty_headers(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, ensure_ascii=False, indent=2))

    @admin.display(description=_("原始报文"))
    def pretty_body(self, obj):
        try:
            text = json.dumps(json.loads(obj.body), ensure_ascii=False, indent=2)
        except ValueError:
            text = obj.body
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)

    @admin.action(description=_("重新处理(重放)"), permissions=("replay",))
    def replay_selected(self, request, queryset):
        try:
            events = replay_events(events=list(queryset.order_by("pk")), actor=admin_actor(request))
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        done = [e for e in events if e.status == WebhookStatus.DONE]
        failed = [e for e in events if e.status != WebhookStatus.DONE]
        if done:
            messages.success(request, gettext("已重新处理 %(count)d 个事件") % {"count": len(done)})
        for event in failed:
            messages.error(request, gettext("事件 %(id)s 仍失败:%(error)s") % {
                "id": event.pk, "error": event.last_error[:300]})
        skipped = queryset.count() - len(events)
        if skipped:
            messages.warning(request, gettext("%(count)d 个事件正在处理中,已跳过") % {"count": skipped})
