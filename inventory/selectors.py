"""Inventory read side: querysets for the admin and the API."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from inventory.models import Reservation, StockLevel


def stock_level_list(*, sku: str | None = None, warehouse: str | None = None, category: str | None = None) -> QuerySet[StockLevel]:
    """Pools by warehouse priority then SKU code, filtered by codes and category."""
    qs = StockLevel.objects.select_related("warehouse", "sku")
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
