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


def _coverable(order_ids: list[int]) -> list[int]:
    """Of these orders, those that pass a cheap upper bound: enough available stock in all
    allocatable warehouses together for every SKU. Two queries for the whole batch. When an
    order fails it, retrying would only add a released/held pair to its timeline."""
    needed: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    unmapped: set[int] = set()
    for order_id, sku_id, quantity in OrderLine.objects.filter(order_id__in=order_ids).values_list(
            "order_id", "sku_id", "quantity"):
        if sku_id is None:
            unmapped.add(order_id)
        else:
            needed[order_id][sku_id] += quantity
    sku_ids = {sku_id for per_order in needed.values() for sku_id in per_order}
    available = dict(
        StockLevel.objects.filter(sku_id__in=sku_ids, warehouse__is_active=True, warehouse__allocatable=True)
        .values("sku_id").annotate(free=Sum(F("on_hand") - F("reserved"))).values_list("sku_id", "free")
    ) if sku_ids else {}
    return [
        order_id for order_id in order_ids
        if order_id in needed and order_id not in unmapped
        and all((available.get(sku_id) or 0) >= qty for sku_id, qty in needed[order_id].items())
    ]


def _retry_one(order_id: int, actor: Actor) -> bool:
    try:
        with transaction.atomic():
            order = Order.objects.select_for_update().filter(pk=order_id).first()
            # Re-read under the lock: another run or a person may have moved it already.
            if order is None or order.status != OrderStatus.ON_HOLD or order.hold_reason != HoldReason.STOCK_SHORT:
                return False
            order = services.order_release(order=order, actor=actor, note="库存已到,自动重新分仓")
            if order.status == OrderStatus.PAID:
                order = services.order_allocate(order=order, actor=actor)
            if order.status != OrderStatus.ALLOCATED:
                raise _StillShort
    except _StillShort:
        return False
    except DomainError as exc:
        logger.warning("stock short retry: order %s skipped: %s", order_id, exc)
        return False
    return True


def retry_stock_short_orders(*, batch_size: int = 200) -> int:
    """Orders held for short stock are released and allocated again, oldest payment first.
    Returns how many got allocated.

    Every held order is considered on every run, in batches of `batch_size`: the ids are
    read once (cheap), then each batch is screened with two queries, so orders that are
    permanently short never starve the ones behind them, and the orders that pass are
    retried together in one transaction (`order_retry_allocation_bulk`).

    All or nothing per order: an order the stock still does not cover is left exactly as
    it was (no released/held pair), so a stuck order's timeline does not grow every few
    minutes.
    """
    actor = Actor.system("stock_short_retry", source=Source.JOB)
    ids = list(
        Order.objects.filter(status=OrderStatus.ON_HOLD, hold_reason=HoldReason.STOCK_SHORT)
        .order_by(F("paid_at").asc(nulls_last=True), "id").values_list("id", flat=True)
    )
    allocated = 0
    for start in range(0, len(ids), batch_size):
        batch = _coverable(ids[start:start + batch_size])
        if not batch:
            continue
        try:
            allocated += len(services.order_retry_allocation_bulk(order_ids=batch, actor=actor).allocated)
        except DomainError as exc:  # the batch rolled back as a whole: try its orders one by one
            logger.warning("stock short retry: batch of %d fell back to one by one: %s", len(batch), exc)
            for order_id in batch:
                allocated += _retry_one(order_id, actor)
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
