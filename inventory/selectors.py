"""Inventory read side: querysets for the admin and the API.

Querysets a person reads are limited to their scope (`Actor.scope`): pools, reservations
and ledger moves by warehouse; reservations and moves of an order also by the order's
shop (an agency's brand team does not see another brand's order numbers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from django.db.models import Q, QuerySet
from django.utils import timezone

from config.actors import Actor
from inventory.models import Reservation, StockLevel, StockMove, Warehouse


def warehouse_list(*, actor: Actor) -> QuerySet[Warehouse]:
    qs = Warehouse.objects.all()
    if actor.scope.warehouse_ids is not None:
        qs = qs.filter(pk__in=actor.scope.warehouse_ids)
    return qs.order_by("priority", "id")


def scope_shops(queryset: QuerySet, *, actor: Actor, field: str = "pk") -> QuerySet:
    """Limit a queryset of shops (or of rows with a shop FK, `field="shop_id"`) to the actor's shops."""
    if actor.scope.shop_ids is not None:
        queryset = queryset.filter(**{f"{field}__in": actor.scope.shop_ids})
    return queryset


def scope_stock_levels(queryset: QuerySet[StockLevel], *, actor: Actor) -> QuerySet[StockLevel]:
    if actor.scope.warehouse_ids is not None:
        queryset = queryset.filter(warehouse_id__in=actor.scope.warehouse_ids)
    return queryset


def scope_reservations(queryset: QuerySet[Reservation], *, actor: Actor) -> QuerySet[Reservation]:
    scope = actor.scope
    if scope.warehouse_ids is not None:
        queryset = queryset.filter(stock_level__warehouse_id__in=scope.warehouse_ids)
    if scope.shop_ids is not None:
        queryset = queryset.filter(order_line__order__shop_id__in=scope.shop_ids)
    return queryset


def scope_stock_moves(queryset: QuerySet[StockMove], *, actor: Actor) -> QuerySet[StockMove]:
    scope = actor.scope
    if scope.warehouse_ids is not None:
        queryset = queryset.filter(stock_level__warehouse_id__in=scope.warehouse_ids)
    if scope.shop_ids is not None:
        # Receipts and stocktakes belong to no order; order moves follow the order's shop.
        queryset = queryset.filter(Q(order__isnull=True) | Q(order__shop_id__in=scope.shop_ids))
    return queryset


def stock_level_list(*, actor: Actor, sku: str | None = None, warehouse: str | None = None,
                     category: str | None = None) -> QuerySet[StockLevel]:
    """Pools in the actor's warehouses by warehouse priority then SKU code, filtered by codes and category."""
    qs = scope_stock_levels(StockLevel.objects.select_related("warehouse", "sku"), actor=actor)
    if sku:
        qs = qs.filter(sku__code=sku)
    if warehouse:
        qs = qs.filter(warehouse__code=warehouse)
    if category:
        qs = qs.filter(sku__category=category)
    return qs.order_by("warehouse__priority", "warehouse__id", "sku__code", "id")


def expired_reservation_order_ids(*, now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return sorted(
        set(
            Reservation.objects.filter(status=Reservation.Status.ACTIVE, expires_at__lte=now)
            .values_list("order_line__order_id", flat=True)
        )
    )


def channel_available(*, sku_ids: Iterable[int] | None = None) -> dict[tuple[str, int], int]:
    """Available stock (on_hand − reserved) per (country, SKU id), summed over the warehouses
    that may serve orders to that country — the same set allocation routes over
    (`inventory.allocation._load`): active, allocatable (so not a return centre), grouped by
    the warehouse's country. Lead-time warehouses count (sellable with a lead time); inbound
    stock does not (display only). One query; ``sku_ids=None`` means every SKU."""
    from django.db.models import F, Sum

    qs = StockLevel.objects.filter(warehouse__is_active=True, warehouse__allocatable=True)
    if sku_ids is not None:
        qs = qs.filter(sku_id__in=list(sku_ids))
    rows = (qs.values("warehouse__country", "sku_id").order_by()
            .annotate(free=Sum(F("on_hand") - F("reserved")))
            .values_list("warehouse__country", "sku_id", "free"))
    return {(country, sku_id): max(int(free or 0), 0) for country, sku_id, free in rows}
