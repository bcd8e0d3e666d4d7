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
