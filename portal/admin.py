"""The SMS outbox, read-only, for superusers and supervisors (主管) only: it holds live
login codes, so customer service and the other roles do not see it."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from config import roles
from orders.masking import mask_phone
from portal.models import PortalSmsOutbox


def may_read_outbox(user) -> bool:
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name=roles.group_name("supervisor")).exists()


@admin.register(PortalSmsOutbox)
class PortalSmsOutboxAdmin(admin.ModelAdmin):
    list_display = ["created_at", "masked_phone", "text", "backend"]
    list_filter = ["backend"]
    readonly_fields = ["created_at", "phone", "text", "backend"]
    date_hierarchy = "created_at"

    @admin.display(description=_("手机号"))
    def masked_phone(self, obj):
        return mask_phone(obj.phone)

    def has_module_permission(self, request):
        return may_read_outbox(request.user)

    def has_view_permission(self, request, obj=None):
        return may_read_outbox(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
