"""Admin list of emergency overrides (紧急放行记录) for review, with "mark reviewed".

Read-only (each row is evidence of what a supervisor did and why). Visible to those who may
override (`orders.override_order`: supervisors), limited to the orders in their scope. The
buttons that make an override are the order page's (from `orders.transitions.ACTIONS`).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError
from orders import selectors, services
from orders.admin import OutOfScopeIs404Mixin  # noqa: I001 - this module is imported at the end of orders.admin
from orders.models import Order, OrderOverride

OVERRIDE_PERMISSION = "orders.override_order"


class ReviewedFilter(admin.SimpleListFilter):
    title = _("复核")
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return (("no", _("待复核")), ("yes", _("已复核")))

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(reviewed_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(reviewed_at__isnull=False)
        return queryset


@admin.register(OrderOverride)
class OrderOverrideAdmin(OutOfScopeIs404Mixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "order", "kind", "reason", "actor_label", "reviewed_at", "reviewed_by")
    list_filter = (ReviewedFilter, "kind")
    search_fields = ("order__number", "reason", "actor_label")
    date_hierarchy = "at"
    list_select_related = ("order", "reviewed_by")
    fields = ("order", "kind", "reason", "detail", "actor_label", "at", "reviewed_by", "reviewed_at")
    readonly_fields = fields
    actions = ("mark_reviewed",)

    def get_queryset(self, request):
        orders = selectors.scope_orders(Order.objects.all(), actor=admin_actor(request)).values("pk")
        return super().get_queryset(request).filter(order__in=orders)

    def _may(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(OVERRIDE_PERMISSION))

    def has_module_permission(self, request):
        return self._may(request)

    def has_view_permission(self, request, obj=None):
        return self._may(request)

    def has_review_permission(self, request):
        return self._may(request)

    @admin.action(description=_("标记为已复核"), permissions=("review",))
    def mark_reviewed(self, request, queryset):
        try:
            done = services.override_mark_reviewed(override_ids=list(queryset.values_list("pk", flat=True)),
                                                   actor=admin_actor(request))
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        messages.success(request, gettext("已复核 %(count)d 条紧急放行记录") % {"count": done})
