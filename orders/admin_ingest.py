"""Admin for customers merged across platforms: the record, and the supervisor's undo.

Only people holding `orders.undo_customermerge` (supervisors) see the merges; everyone
else gets 403. Nothing here is editable: the undo runs through
`orders.customers.customer_merge_undo`, which checks the permission again.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError
from orders.customers import UNDO_PERMISSION, customer_merge_undo
from orders.models import CustomerMerge


@admin.register(CustomerMerge)
class CustomerMergeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "kept_id", "merged_id", "reason", "source", "actor_label", "merged_at", "undone_at",
                    "undone_by_label")
    list_filter = ("source", "merged_at", "undone_at")
    fields = ("kept_id", "merged_id", "reason", "moved", "source", "actor_label", "merged_at", "undone_at",
              "undone_by_label")
    readonly_fields = fields
    ordering = ("-merged_at", "-id")
    actions = ["undo_merge"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.has_perm(UNDO_PERMISSION)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description=_("撤销所选客户合并"))
    def undo_merge(self, request, queryset):
        done = 0
        for merge in queryset.order_by("pk"):
            try:
                customer_merge_undo(merge=merge, actor=admin_actor(request))
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{merge.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, _("已撤销 %(n)d 条客户合并") % {"n": done}, messages.SUCCESS)
