"""员工通知 in the admin: the staff alerts sent (or waiting to be sent) to the team's group
chat (`config.notify`), read-only, with 重新发送 for failed or unsent rows.

Who: 运营 and 主管 (`core.view_notification`; resending needs `core.change_notification`).
The texts name orders, parcels and shops of every brand, so a person limited to some shops
or warehouses sees no rows here (their own lists show what is theirs)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config import notify
from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.models import Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "topic", "text", "open_link", "status", "attempts", "sent_at", "last_error")
    list_filter = ("topic", "status")
    search_fields = ("key",)
    readonly_fields = ("topic", "key", "text", "link", "status", "attempts", "last_error", "created_at", "sent_at")
    ordering = ("-created_at", "-id")
    actions = ["resend"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if admin_actor(request).scope.unrestricted else qs.none()

    @admin.display(description=_("后台链接"))
    def open_link(self, row: Notification):
        return format_html('<a href="{}">{}</a>', row.link, gettext("打开")) if row.link else ""

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("core.change_notification"):
            actions.pop("resend", None)
        return actions

    @admin.action(description=_("重新发送所选通知"))
    def resend(self, request, queryset):
        if not request.user.has_perm("core.change_notification"):
            self.message_user(request, gettext("没有权限重新发送通知"), messages.ERROR)
            return
        if not notify.robots():
            self.message_user(request, gettext("未配置群机器人(NOTIFY_WECOM_WEBHOOK / NOTIFY_DINGTALK_WEBHOOK),无法发送"),
                              messages.ERROR)
            return
        n = notify.resend(queryset.values_list("pk", flat=True))
        self.message_user(request, gettext("已重新排队 %(n)d 条通知") % {"n": n}, messages.SUCCESS)
