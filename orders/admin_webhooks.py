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
from orders.admin import OutOfScopeIs404Mixin  # noqa: I001 - this module is imported at the end of orders.admin
from orders.models import WebhookEvent, WebhookStatus
from orders.webhooks import REPLAY_PERMISSION, replay_events


PII_PERMISSION = "orders.view_pii"
# Keys whose values (whole subtrees) are personal data in some platform's payload: Shopify
# email/phone/customer/*_address, Taobao receiver_*/buyer_*, PDD/Douyin encrypted fields …
PII_KEY_PARTS = ("phone", "mobile", "tel", "email", "name", "nick", "address", "receiver", "buyer", "customer",
                 "billing", "contact", "ip", "zip", "postcode", "post_code", "oaid", "card",
                 "latitude", "longitude", "encrypt", "mask", "id_card")
MASK = "***"


def redact(value, *, key: str = ""):
    """The payload with personal data replaced by ``***`` (for staff who see PII masked)."""
    lowered = key.lower()
    if lowered and any(part in lowered for part in PII_KEY_PARTS):
        return MASK if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key=key) for v in value]
    return value


def _may_see(request) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and (
        user.has_perm(REPLAY_PERMISSION) or user.has_perm("orders.view_webhookevent")))


@admin.register(WebhookEvent)
class WebhookEventAdmin(OutOfScopeIs404Mixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "shop", "platform", "topic", "event_id", "status_badge", "attempts",
                    "next_attempt_at", "short_error", "result")
    list_filter = ("status", "platform", ("shop", admin.RelatedOnlyFieldListFilter))
    search_fields = ("event_id", "topic", "body_sha256")
    date_hierarchy = "received_at"
    list_select_related = ("shop",)
    actions = ("replay_selected",)
    fields = ("shop", "platform", "topic", "event_id", "status", "attempts", "next_attempt_at",
              "last_error", "result", "received_at", "processed_at", "duplicates", "replayed_by",
              "body_sha256", "pretty_headers", "pretty_body")
    readonly_fields = (*fields, "masked_body")

    def get_queryset(self, request):
        shops = selectors.shop_list(actor=admin_actor(request)).values("pk")
        return super().get_queryset(request).filter(shop__in=shops)

    def lookup_allowed(self, lookup, value, request=None):
        # The body holds personal data: no filtering through it (?body__contains=138…) for
        # anybody without orders.view_pii.
        if lookup.split("__")[0] in ("body", "headers") and not (
                request is not None and request.user.has_perm(PII_PERMISSION)):
            return False
        return super().lookup_allowed(lookup, value, request)

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

    def get_fields(self, request, obj=None):
        # Who may not see personal data gets the redacted body (a different read-only field,
        # so nothing per request is kept on this shared admin instance).
        if request.user.has_perm(PII_PERMISSION):
            return self.fields
        return tuple("masked_body" if f == "pretty_body" else f for f in self.fields)

    @admin.display(description=_("原始报文"))
    def pretty_body(self, obj):
        try:
            text = json.dumps(json.loads(obj.body), ensure_ascii=False, indent=2)
        except ValueError:
            text = obj.body
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)

    @admin.display(description=_("原始报文(个人信息已隐藏)"))
    def masked_body(self, obj):
        try:
            doc = json.loads(obj.body)
        except ValueError:
            return gettext("(含个人信息,无权查看)")
        text = json.dumps(redact(doc), ensure_ascii=False, indent=2)
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)

    @admin.action(description=_("重新处理(重放)"), permissions=("replay",))
    def replay_selected(self, request, queryset):
        try:
            result = replay_events(events=list(queryset.order_by("pk")), actor=admin_actor(request))
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        done = [e for e in result.processed if e.status == WebhookStatus.DONE]
        failed = [e for e in result.processed if e.status != WebhookStatus.DONE]
        if done:
            messages.success(request, gettext("已重新处理 %(count)d 个事件") % {"count": len(done)})
        for event in failed:
            messages.error(request, gettext("事件 %(id)s 仍失败:%(error)s") % {
                "id": event.pk, "error": event.last_error[:300]})
        if result.queued:
            messages.info(request, gettext("另有 %(count)d 个事件已交给后台任务处理") % {"count": len(result.queued)})
        if result.skipped:
            messages.warning(request, gettext("%(count)d 个事件正在处理中,已跳过") % {"count": len(result.skipped)})
