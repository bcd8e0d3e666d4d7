"""Small pieces every app's admin shares."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from config.actors import Actor, Source


def admin_actor(request) -> Actor:
    """The person behind an admin request, as services want them: one per request, so the
    scope (their staff profile) is read once, not once per question the admin asks."""
    actor = getattr(request, "_orderhub_admin_actor", None)
    if actor is None or actor.user is not request.user:
        actor = Actor.of(request.user, Source.ADMIN)
        request._orderhub_admin_actor = actor
    return actor


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



class EstimatedCountPaginator(Paginator):
    """A changelist paginator that never counts a big table row by row.

    PostgreSQL first: the planner's estimate of the rows (EXPLAIN, nothing is read; for an
    unfiltered list it is `pg_class.reltuples` scaled to the table's current size). Above
    `exact_up_to` the list shows that estimate (`estimated` is True): page links are right
    to within it. At or below, it counts exactly, bounded (a COUNT over `LIMIT
    exact_up_to + 1`, so a too-low estimate still costs at most that many index entries).
    Other databases count exactly. Use with `show_full_result_count = False`, or the admin
    counts the whole table anyway.

    A deep page (`deep_after` rows in) first reads just its ids (an index-only walk of the
    ordering index past the offset), then the rows: the joins of the list (shop, customer)
    are made for 50 rows, not for every row skipped.
    """

    exact_up_to = 10_000
    deep_after = 1_000
    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return len(queryset)
        postgres = connections[queryset.db].vendor == "postgresql"
        if postgres:
            estimate = planner_rows(queryset)
            if estimate > self.exact_up_to:
                self.estimated = True
                return estimate
        bounded = queryset.order_by()[: self.exact_up_to + 1].count()
        if bounded <= self.exact_up_to:
            return bounded
        if not postgres:
            return queryset.count()
        self.estimated = True
        return self.exact_up_to + 1

    def settle(self, count: int) -> None:
        """The exact count, learnt from a short last page: page links follow it."""
        self.__dict__["count"] = count
        self.__dict__.pop("num_pages", None)
        self.estimated = False

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if not self.estimated and top + self.orphans >= self.count:
            top = self.count
        queryset = self.object_list
        if bottom < self.deep_after or not hasattr(queryset, "query") or queryset.query.distinct:
            return self._get_page(queryset[bottom:top], number, self)
        ids = list(queryset.values_list("pk", flat=True)[bottom:top])
        return self._get_page(list(queryset.filter(pk__in=ids)), number, self)


def planner_rows(queryset) -> int:
    """PostgreSQL's estimate of how many rows `queryset` returns (EXPLAIN: nothing is read)."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class OwnRecordsAdminMixin:
    """A read-only history where each person sees their own rows (an import's or an export's
    owner) and `sees_all(request)` people see everyone's. Subclasses define `sees_all` and
    `has_module_permission`."""

    def has_view_permission(self, request, obj=None):
        if not self.has_module_permission(request):
            return False
        return obj is None or self.sees_all(request) or obj.user_id == request.user.pk

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if self.sees_all(request) else qs.filter(user_id=request.user.pk)
