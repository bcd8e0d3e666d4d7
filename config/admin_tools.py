"""Small pieces every app's admin shares."""

from __future__ import annotations

from config.actors import Actor, Source


def admin_actor(request) -> Actor:
    """The person behind an admin request, as services want them."""
    return Actor.of(request.user, Source.ADMIN)


class ReadOnlyAdminMixin:
    """History, not data entry: visible to those who may view, changeable by nobody."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OutOfScopeIs404Mixin:
    """An object outside the person's scope (or that does not exist) is a 404 on every
    object page — change, history, custom views — not the admin's redirect to the index,
    so the answer never says whether the object exists."""

    def get_object(self, request, object_id, from_field=None):
        from django.http import Http404
        from django.utils.translation import gettext

        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(gettext("对象不存在"))
        return obj


class PiiLookupGuardMixin:
    """Staff without orders.view_pii may not filter by personal data through the URL
    (`?receiver_phone__contains=`, `?customer__phone__startswith=`, `?raw__icontains=`…):
    Django answers such a lookup with 400 (DisallowedModelAdminLookup), before any row is
    read."""

    def lookup_allowed(self, lookup, value, request=None):
        from config import pii

        if request is not None and not pii.can_view_pii(admin_actor(request)):
            if pii.lookup_touches_pii(self.model, lookup):
                return False
        return super().lookup_allowed(lookup, value, request)
