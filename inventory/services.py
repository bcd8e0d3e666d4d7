"""Inventory write side: receive, adjust, count, release, consume, confirm (allocation is
`inventory.allocation`).

Every change to a pool writes a `StockMove` with the same deltas, so `inventory_audit`
can prove each pool equals the sum of its moves. Pools are always locked with
`select_for_update()` in ascending id order, the one lock order every path uses, so
concurrent allocations never deadlock and never oversell (on PostgreSQL; SQLite
serialises writers with IMMEDIATE transactions).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from django.db import transaction
from django.utils import timezone

from config import notify
from config.actors import Actor
from config.errors import InvalidInput, NotPermitted
from inventory.models import Reservation, Sku, StockLevel, StockMove, Warehouse

if TYPE_CHECKING:
    from orders.models import Order


# --- helpers ------------------------------------------------------------------------------
def _require(actor: Actor, perm: str, what: str) -> None:
    if not actor.can(perm):
        raise NotPermitted(f"{actor.label} 没有权限{what}")


def _move(pool: StockLevel, kind: str, *, actor: Actor, on_hand_delta: int = 0, reserved_delta: int = 0,
          reservation: Reservation | None = None, order_id: int | None = None, reason: str = "") -> StockMove:
    """An unsaved ledger row for a pool whose in-memory counts are already updated."""
    return StockMove(
        stock_level=pool,
        kind=kind,
        on_hand_delta=on_hand_delta,
        reserved_delta=reserved_delta,
        on_hand_after=pool.on_hand,
        reserved_after=pool.reserved,
        reservation=reservation,
        order_id=order_id,
        reason=reason[:255],
        actor=actor.user,
        actor_label=actor.label,
        source=actor.source,
    )


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what}必须是整数")
    if value <= 0:
        raise InvalidInput(f"{what}必须大于 0(收到 {value})")
    return value


def _lock_pool(*, warehouse: Warehouse, sku: Sku) -> StockLevel:
    pool, _created = StockLevel.objects.get_or_create(warehouse=warehouse, sku=sku)
    return StockLevel.objects.select_for_update().get(pk=pool.pk)


def _check_safety_stock(pools: Iterable[StockLevel]) -> None:
    for pool in pools:
        threshold = pool.sku.safety_stock
        if threshold and pool.available < threshold:
            pool_id, available = pool.pk, pool.available
            transaction.on_commit(lambda p=pool_id, a=available, t=threshold: notify.stock_alert(p, available=a, threshold=t))


# --- receiving and counting ---------------------------------------------------------------
@transaction.atomic
def stock_receive(*, warehouse: Warehouse, sku: Sku, quantity: int, actor: Actor, reason: str = "",
                  kind: str = StockMove.Kind.RECEIPT) -> StockLevel:
    """Goods arrived in a warehouse (purchase receipt, or a return judged sellable)."""
    _require(actor, "inventory.receive_stock", "入库")
    quantity = _positive_int(quantity, "入库数量")
    if kind not in (StockMove.Kind.RECEIPT, StockMove.Kind.RETURN_RESTOCK):
        raise InvalidInput(f"入库类型无效: {kind}")
    pool = _lock_pool(warehouse=warehouse, sku=sku)
    pool.on_hand += quantity
    pool.save(update_fields=["on_hand", "updated_at"])
    _move(pool, kind, actor=actor, on_hand_delta=quantity, reason=reason or "入库").save()
    return pool


@transaction.atomic
def stock_adjust(*, warehouse: Warehouse, sku: Sku, delta: int, actor: Actor, reason: str) -> StockLevel:
    """Correct on-hand by a signed amount (damage, found goods). Never below what is reserved."""
    _require(actor, "inventory.adjust_stock", "调整库存")
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise InvalidInput("调整数量必须是非零整数")
    if not (reason or "").strip():
        raise InvalidInput("调整库存必须填写原因")
    pool = _lock_pool(warehouse=warehouse, sku=sku)
    if pool.on_hand + delta < pool.reserved:
        raise InvalidInput(
            f"{warehouse.name} {sku.code}: 调整后在库 {pool.on_hand + delta} 将低于已预占 {pool.reserved}",
            code="below_reserved",
        )
    pool.on_hand += delta
    pool.save(update_fields=["on_hand", "updated_at"])
    _move(pool, StockMove.Kind.ADJUSTMENT, actor=actor, on_hand_delta=delta, reason=reason).save()
    _check_safety_stock([pool])
    return pool


@transaction.atomic
def stock_count(*, warehouse: Warehouse, sku: Sku, counted: int, actor: Actor, reason: str = "") -> StockLevel:
    """Stocktake: the counted quantity becomes on-hand through a ledger move (never an overwrite)."""
    _require(actor, "inventory.adjust_stock", "盘点")
    if isinstance(counted, bool) or not isinstance(counted, int) or counted < 0:
        raise InvalidInput(f"盘点数量必须是不小于 0 的整数(收到 {counted!r})")
    pool = _lock_pool(warehouse=warehouse, sku=sku)
    if counted < pool.reserved:
        raise InvalidInput(
            f"{warehouse.name} {sku.code}: 盘点数 {counted} 小于已预占 {pool.reserved},请先处理相关订单",
            code="below_reserved",
        )
    delta = counted - pool.on_hand
    if delta:
        pool.on_hand = counted
        pool.save(update_fields=["on_hand", "updated_at"])
        _move(pool, StockMove.Kind.STOCKTAKE, actor=actor, on_hand_delta=delta, reason=reason or "盘点").save()
        _check_safety_stock([pool])
    return pool


# --- allocation: see inventory/allocation.py ------------------------------------------------


# --- release, consume, confirm ------------------------------------------------------------
def _active_reservations(order: "Order", warehouse: Warehouse | None = None):
    qs = Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE)
    if warehouse is not None:
        qs = qs.filter(stock_level__warehouse=warehouse)
    return qs


def _close(reservations: list[Reservation], *, order: "Order", actor: Actor, kind: str, reason: str, at: datetime) -> list[Reservation]:
    if not reservations:
        return []
    pool_ids = sorted({r.stock_level_id for r in reservations})
    pools = {p.pk: p for p in StockLevel.objects.select_for_update().filter(pk__in=pool_ids).order_by("id")}
    consume = kind == StockMove.Kind.SHIP
    moves = []
    for reservation in reservations:
        pool = pools[reservation.stock_level_id]
        pool.reserved -= reservation.quantity
        if consume:
            pool.on_hand -= reservation.quantity
        reservation.status = Reservation.Status.CONSUMED if consume else Reservation.Status.RELEASED
        reservation.closed_at = at
        reservation.close_reason = reason[:40]
        moves.append(_move(pool, kind, actor=actor, reserved_delta=-reservation.quantity,
                           on_hand_delta=-reservation.quantity if consume else 0,
                           reservation=reservation, order_id=order.pk, reason=f"订单 {order.number} {reason}"))
    for pool in pools.values():
        pool.save(update_fields=["on_hand", "reserved", "updated_at"])
    Reservation.objects.bulk_update(reservations, ["status", "closed_at", "close_reason"])
    StockMove.objects.bulk_create(moves)
    return reservations


def release_order_reservations(*, order: "Order", actor: Actor, reason: str, at: datetime | None = None,
                               warehouse: Warehouse | None = None) -> list[Reservation]:
    """Give back every active reservation of the order (or of one warehouse)."""
    reservations = list(_active_reservations(order, warehouse).select_for_update(of=("self",)).order_by("id"))
    return _close(reservations, order=order, actor=actor, kind=StockMove.Kind.RELEASE, reason=reason, at=at or timezone.now())


def consume_order_reservations(*, order: "Order", actor: Actor, at: datetime | None = None,
                               warehouse: Warehouse | None = None) -> list[Reservation]:
    """Goods left the warehouse: on-hand and reserved both go down by what was reserved."""
    reservations = list(_active_reservations(order, warehouse).select_for_update(of=("self",)).order_by("id"))
    return _close(reservations, order=order, actor=actor, kind=StockMove.Kind.SHIP, reason="发货出库", at=at or timezone.now())


def confirm_order_reservations(*, order: "Order", actor: Actor, at: datetime | None = None,
                               include_expired: bool = False) -> list[Reservation]:
    """Lead-time stock confirmed (transfer booked, or goods packed): the order's active,
    not yet expired lead-time reservations stop expiring. Returns them (locked).

    Called only from an order service, which holds the order row lock and has checked
    the actor's permission. Packing passes `include_expired`: goods in hand back even a
    reservation whose time ran out before the expiry job reached it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("confirm_order_reservations must run inside the order service's transaction")
    at = at or timezone.now()
    window = {"expires_at__isnull": False} if include_expired else {"expires_at__gt": at}
    reservations = list(
        _active_reservations(order).filter(**window).select_for_update(of=("self",))
        .select_related("stock_level__warehouse", "stock_level__sku").order_by("id")
    )
    for reservation in reservations:
        reservation.expires_at = None
    Reservation.objects.bulk_update(reservations, ["expires_at"])
    return reservations


def release_expired_reservations(*, order: "Order", actor: Actor, at: datetime | None = None) -> list[Reservation]:
    """Give back only the order's lead-time reservations whose time ran out; stock reserved
    on hand (no expiry) stays reserved. Called only from an order service's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("release_expired_reservations must run inside the order service's transaction")
    at = at or timezone.now()
    reservations = list(
        _active_reservations(order).filter(expires_at__isnull=False, expires_at__lte=at)
        .select_for_update(of=("self",)).select_related("stock_level__warehouse", "stock_level__sku").order_by("id")
    )
    return _close(reservations, order=order, actor=actor, kind=StockMove.Kind.RELEASE, reason="备货预占过期", at=at)
