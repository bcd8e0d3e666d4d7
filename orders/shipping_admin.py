"""Admin for shipments and carrier tracking (imported by `orders.admin`).

Shipments and their scans are history here: they change through `orders.shipping` (ship,
carrier scans), never by editing. The push inbox shows every stored push, failed ones
first to hand, with an action that processes them again.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import OutOfScopeIs404Mixin, ReadOnlyAdminMixin, admin_actor
from orders import selectors
from orders.carriers.base import mask_phones
from orders.models import (CarrierAccount, CarrierPush, CarrierSubscription, Order, Shipment, ShipmentLine,
                           TrackingEvent)


class ShipmentLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ShipmentLine
    fields = ("order_line", "quantity")
    extra = 0


class TrackingEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TrackingEvent
    fields = ("occurred_at", "state", "masked_description", "location", "carrier_state")
    readonly_fields = fields
    extra = 0
    ordering = ("occurred_at", "id")

    @admin.display(description=_("轨迹描述"))
    def masked_description(self, obj: TrackingEvent) -> str:
        return mask_phones(obj.description)


@admin.register(Shipment)
class ShipmentAdmin(OutOfScopeIs404Mixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("tracking_number", "carrier", "order", "warehouse", "status", "exception_flag", "shipped_at",
                    "delivered_at", "last_scan_at")
    list_filter = ("status", "exception_flag", "carrier", "provider", "warehouse")
    search_fields = ("tracking_number", "order__number")
    list_select_related = ("order", "warehouse")
    readonly_fields = ("order", "warehouse", "carrier", "tracking_number", "provider", "status", "exception_flag",
                       "exception_note", "created_at", "shipped_at", "delivered_at", "last_scan_at", "next_poll_at",
                       "poll_failures")
    inlines = [ShipmentLineInline, TrackingEventInline]

    def get_queryset(self, request):
        orders = selectors.scope_orders(Order.objects.all(), actor=admin_actor(request))
        return super().get_queryset(request).filter(order__in=orders)


@admin.register(CarrierPush)
class CarrierPushAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "provider", "status", "attempts", "received_at", "processed_at")
    list_filter = ("status", "provider")
    readonly_fields = ("provider", "account", "status", "attempts", "error", "result", "body", "received_at",
                       "processed_at")
    actions = ["reprocess"]

    @admin.action(description=_("重新处理所选推送"))
    def reprocess(self, request, queryset):
        from orders.carrier_hooks import process_push

        if not admin_actor(request).can("orders.ship_order"):
            self.message_user(request, gettext("没有权限处理物流推送"), messages.ERROR)
            return
        done = sum(process_push(pk).status == CarrierPush.Status.PROCESSED
                   for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, gettext("已处理 %(done)d 条推送") % {"done": done}, messages.SUCCESS)


ACCOUNT_SECRETS = ("app_key", "salt")


class CarrierAccountForm(forms.ModelForm):
    """Keys are never sent back to the browser: a blank box keeps the stored value."""

    class Meta:
        model = CarrierAccount
        fields = "__all__"
        widgets = {name: forms.PasswordInput(render_value=False) for name in ACCOUNT_SECRETS}

    api_url = forms.URLField(label=_("接口地址"), required=False, assume_scheme="https", help_text=_("留空 = 官方地址"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ACCOUNT_SECRETS:
            if name in self.fields and self.instance.pk and getattr(self.instance, name):
                self.fields[name].help_text = _("已设置;留空则保持不变")

    def clean(self):
        cleaned = super().clean()
        for name in ACCOUNT_SECRETS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


@admin.register(CarrierAccount)
class CarrierAccountAdmin(admin.ModelAdmin):
    form = CarrierAccountForm
    list_display = ("provider", "account_id", "is_default", "subscribe", "is_active")
    list_filter = ("provider", "is_active")


@admin.register(CarrierSubscription)
class CarrierSubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Parcels subscribed at their provider (`orders.carrier_subscriptions`): who may see the
    carrier accounts sees these; 重新订阅 needs the right to change the accounts."""

    list_display = ("shipment", "provider", "status", "attempts", "next_attempt_at", "subscribed_at", "last_error")
    list_filter = ("status", "provider")
    search_fields = ("shipment__tracking_number",)
    list_select_related = ("shipment",)
    readonly_fields = ("shipment", "provider", "account", "status", "attempts", "next_attempt_at", "last_error",
                       "answer", "created_at", "subscribed_at")
    actions = ["resubscribe"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.has_perm("orders.view_carrieraccount")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    @admin.action(description=_("重新订阅所选包裹"))
    def resubscribe(self, request, queryset):
        from orders.carrier_subscriptions import resubscribe

        if not request.user.has_perm("orders.change_carrieraccount"):
            self.message_user(request, gettext("没有权限重新订阅"), messages.ERROR)
            return
        n = resubscribe(queryset.values_list("pk", flat=True))
        self.message_user(request, gettext("已重新排队 %(n)d 个订阅") % {"n": n}, messages.SUCCESS)
