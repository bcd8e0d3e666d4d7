"""Order background jobs (django-q2). Thin: look things up, call services; safe to run twice."""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import transaction
from django.db.models import F, Sum

from config.actors import Actor, Source
from inventory.models import StockLevel
from inventory.selectors import expired_reservation_order_ids
from orders import services
from config.errors import DomainError
from orders.models import HoldReason, Order, OrderLine, OrderStatus

logger = logging.getLogger(__name__)


class _StillShort(Exception):
    """Allocation would put the order straight back on hold: undo the release too."""


def _could_cover(order_id: int) -> bool:
    """A cheap upper bound: is there enough available stock in all active warehouses together?
    When not, retrying would only add a released/held pair to the timeline."""
    needed: dict[int, int] = defaultdict(int)
    for sku_id, quantity in OrderLine.objects.filter(order_id=order_id).values_list("sku_id", "quantity"):
        if sku_id is None:
            return False
        needed[sku_id] += quantity
    if not needed:
        return False
    available = dict(
        StockLevel.objects.filter(sku_id__in=needed, warehouse__is_active=True)
        .values("sku_id").annotate(free=Sum(F("on_hand") - F("reserved"))).values_list("sku_id", "free")
    )
    return all((available.get(sku_id) or 0) >= quantity for sku_id, quantity in needed.items())


def retry_stock_short_orders(*, limit: int = 200) -> int:
    """Orders held for short stock are released and allocated again, oldest payment first.
    Returns how many got allocated.

    All or nothing per order: when the allocation would still fall short, the release is
    rolled back as well, so a stuck order's timeline does not grow every few minutes.
    """
    actor = Actor.system("stock_short_retry", source=Source.JOB)
    ids = list(
        Order.objects.filter(status=OrderStatus.ON_HOLD, hold_reason=HoldReason.STOCK_SHORT)
        .order_by(F("paid_at").asc(nulls_last=True), "id").values_list("id", flat=True)[:limit]
    )
    allocated = 0
    for order_id in ids:
        if not _could_cover(order_id):
            continue
        try:
            with transaction.atomic():
                order = Order.objects.select_for_update().filter(pk=order_id).first()
                # Re-read under the lock: another run or a person may have moved it already.
                if order is None or order.status != OrderStatus.ON_HOLD or order.hold_reason != HoldReason.STOCK_SHORT:
                    continue
                order = services.order_release(order=order, actor=actor, note="库存已到,自动重新分仓")
                if order.status == OrderStatus.PAID:
                    order = services.order_allocate(order=order, actor=actor)
                if order.status != OrderStatus.ALLOCATED:
                    raise _StillShort
        except _StillShort:
            continue
        except DomainError as exc:
            logger.warning("stock short retry: order %s skipped: %s", order_id, exc)
            continue
        allocated += 1
    if allocated:
        logger.info("stock short retry: %d order(s) allocated", allocated)
    return allocated


def expire_lead_time_reservations() -> int:
    """Release lead-time reservations not confirmed in time (24 h by default) and hold their
    orders with reason `reservation_expired`. Returns how many orders were processed.

    Each order is re-read and handled in its own transaction by the service, which
    re-checks for expired reservations under the row lock, so a second run (or two
    overlapping runs) changes nothing more.
    """
    actor = Actor.system("reservation_expiry", source=Source.JOB)
    done = 0
    for order_id in expired_reservation_order_ids():
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            continue
        try:
            services.order_expire_reservations(order=order, actor=actor)
        except DomainError as exc:  # one stuck order must not stop the others
            logger.warning("reservation expiry: order %s skipped: %s", order_id, exc)
            continue
        done += 1
    if done:
        logger.info("reservation expiry: released the reservations of %d order(s)", done)
    return done
