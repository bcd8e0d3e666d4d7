"""Prove the stock books balance: each pool equals the sum of its ledger moves."""

from __future__ import annotations

from django.db.models import Q, Sum

from inventory.models import Reservation, StockLevel, StockMove

TERMINAL = ["shipped", "delivered", "completed", "cancelled", "returned"]


def audit() -> list[str]:
    """Every broken invariant as one readable line; an empty list means the books balance."""
    problems: list[str] = []
    moves = {
        row["stock_level"]: row
        for row in StockMove.objects.values("stock_level").annotate(on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
    }
    active = {
        row["stock_level"]: row["quantity"] or 0
        for row in Reservation.objects.filter(status=Reservation.Status.ACTIVE).values("stock_level").annotate(quantity=Sum("quantity"))
    }
    for pool in StockLevel.objects.select_related("warehouse", "sku").order_by("id").iterator(chunk_size=2000):
        name = f"{pool.warehouse.code}/{pool.sku.code} (pool #{pool.pk})"
        ledger = moves.get(pool.pk, {"on_hand": 0, "reserved": 0})
        if (ledger["on_hand"] or 0) != pool.on_hand:
            problems.append(f"{name}: on_hand {pool.on_hand} != ledger {ledger['on_hand'] or 0}")
        if (ledger["reserved"] or 0) != pool.reserved:
            problems.append(f"{name}: reserved {pool.reserved} != ledger {ledger['reserved'] or 0}")
        if active.get(pool.pk, 0) != pool.reserved:
            problems.append(f"{name}: reserved {pool.reserved} != active reservations {active.get(pool.pk, 0)}")
        if pool.reserved < 0 or pool.reserved > pool.on_hand:
            problems.append(f"{name}: reserved {pool.reserved} outside 0..on_hand {pool.on_hand}")
    stale = Reservation.objects.filter(status=Reservation.Status.ACTIVE, order_line__order__status__in=TERMINAL)
    for r in stale.select_related("order_line__order")[:50]:
        problems.append(f"reservation #{r.pk}: still active on {r.order_line.order.status} order {r.order_line.order.number}")
    over = Reservation.objects.filter(~Q(status=Reservation.Status.ACTIVE), closed_at__isnull=True)
    for r in over[:50]:
        problems.append(f"reservation #{r.pk}: {r.status} without closed_at")
    return problems
