"""Inventory write side: receive, adjust, count, reserve (allocate), release, consume, confirm.

Every change to a pool writes a `StockMove` with the same deltas, so `inventory_audit`
can prove each pool equals the sum of its moves. Pools are always locked with
`select_for_update()` in ascending id order, the one lock order every path uses, so
concurrent allocations never deadlock and never oversell (on PostgreSQL; SQLite
serialises writers with IMMEDIATE transactions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import notify
from config.actors import Actor
from inventory import conditions
from inventory.models import Reservation, RoutingRule, Sku, StockLevel, StockMove, Warehouse
from config.errors import InsufficientStock, InvalidInput, NotPermitted

if TYPE_CHECKING:
    from orders.models import Order, OrderLine


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


# --- allocation ---------------------------------------------------------------------------
@dataclass
class Shortage:
    line_id: int
    sku_code: str
    wanted: int
    available: int


@dataclass
class AllocationResult:
    reservations: list[Reservation] = field(default_factory=list)
    shortages: list[Shortage] = field(default_factory=list)
    warehouses: list[Warehouse] = field(default_factory=list)
    rules: dict[int, str] = field(default_factory=dict)  # line id → rule name that chose its warehouse

    @property
    def ok(self) -> bool:
        return not self.shortages

    def shortage_text(self) -> str:
        return "; ".join(f"{s.sku_code} 需要 {s.wanted},可用 {s.available}" for s in self.shortages)


def order_context(order: "Order", lines: list["OrderLine"] | None = None) -> dict:
    """The fields routing (and automation) conditions can test, for the whole order.

    Pass `lines` (with their SKUs) when you already hold them, to save reading them again.
    """
    if lines is None:
        lines = list(order.lines.select_related("sku"))
    return {
        "province": order.province,
        "city": order.city,
        "district": order.district,
        "address": order.address,
        "region": conditions.region_of(order.province),
        "country": order.country,
        "channel": order.shop.platform,
        "shop": order.shop.code,
        "sku": [line.sku.code for line in lines if line.sku_id],
        "sku_category": [line.sku.category for line in lines if line.sku_id and line.sku.category],
        "tags": list(order.tags or []),
        "amount": order.paid_amount,
        "member_level": order.member_level,
        "is_vip": order.is_vip,
        "is_presale": order.is_presale,
    }


def _line_context(base: dict, line: "OrderLine") -> dict:
    ctx = dict(base)
    ctx["sku"] = [line.sku.code]
    ctx["sku_category"] = [line.sku.category] if line.sku.category else []
    return ctx


def choose_rule_warehouses(*, order: "Order", line: "OrderLine", rules: list[RoutingRule], base: dict) -> list[tuple[Warehouse, str, str]]:
    """(warehouse, rule name, mode) of the active rules matching this line, in rule order,
    up to and including the first strict one (a strict rule ends the search)."""
    ctx = _line_context(base, line)
    chosen = []
    for rule in rules:
        if conditions.evaluate(rule.conditions, ctx):
            chosen.append((rule.warehouse, rule.name, rule.mode))
            if rule.mode == RoutingRule.Mode.STRICT:
                break
    return chosen


def allocate_order(*, order: "Order", actor: Actor, at: datetime | None = None,
                   lines: list["OrderLine"] | None = None) -> AllocationResult:
    """Reserve stock for every line, all or nothing.

    Per line: the warehouses of matching routing rules first (rule order), then a
    warehouse already serving this order, then any warehouse with stock by priority; a
    line no single warehouse can serve is split across several. When any line cannot be
    covered nothing is reserved and the shortages are returned. The caller (the order
    service) holds the order row lock and owns the order's state; it may pass the order's
    `lines` (read under that lock, with `select_related("sku")`) so they are read once.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("allocate_order must run inside the order service's transaction")
    at = at or timezone.now()
    all_lines = list(order.lines.select_related("sku")) if lines is None else list(lines)
    lines = [line for line in all_lines if line.quantity > 0]
    if any(line.sku_id is None for line in lines):
        raise InvalidInput("订单存在未映射 SKU 的商品行,无法分仓", code="sku_unmapped")
    # Only warehouses that may serve this order at all: active, allocatable (not a return
    # centre) and shipping to the order's country. Rules naming any other warehouse are skipped.
    rules = list(
        RoutingRule.objects.filter(is_active=True, warehouse__is_active=True, warehouse__allocatable=True,
                                   warehouse__country=order.country)
        .select_related("warehouse").order_by("position", "id")
    )
    fallback = list(
        Warehouse.objects.filter(is_active=True, allocatable=True, country=order.country).order_by("priority", "id")
    )
    base = order_context(order, all_lines)
    rule_choices = {line.id: choose_rule_warehouses(order=order, line=line, rules=rules, base=base) for line in lines}
    warehouse_ids = {w.id for w in fallback} | {w.id for choices in rule_choices.values() for w, _, _ in choices}
    sku_ids = {line.sku_id for line in lines}

    by_priority = sorted(fallback, key=lambda w: (w.priority, w.id))
    warehouses = {w.id: w for w in fallback}
    for choices in rule_choices.values():
        for w, _, _ in choices:
            warehouses[w.id] = w

    # Lock every pool this order could draw from, in id order (the global lock order).
    # of=("self",): lock only the pool rows, never joined rows (a lock over a join would
    # take warehouse/SKU rows out of pool order). Only the counts are read: the warehouses
    # and SKUs are already in hand, and this query runs under every allocation.
    skus = {line.sku_id: line.sku for line in lines}
    pools = {}
    for p in (StockLevel.objects.select_for_update(of=("self",))
              .filter(warehouse_id__in=warehouse_ids, sku_id__in=sku_ids)
              .only("id", "warehouse_id", "sku_id", "on_hand", "reserved")
              .order_by("id")):
        p.warehouse, p.sku = warehouses[p.warehouse_id], skus[p.sku_id]
        pools[(p.warehouse_id, p.sku_id)] = p
    available = {key: p.on_hand - p.reserved for key, p in pools.items()}

    plan: list[tuple[OrderLine, int, int]] = []  # (line, warehouse id, quantity)
    chosen: list[int] = []
    result = AllocationResult()

    def can_serve(wid: int, line: "OrderLine") -> bool:
        return available.get((wid, line.sku_id), 0) >= line.quantity

    def take(line: "OrderLine", wid: int, qty: int) -> None:
        available[(wid, line.sku_id)] -= qty
        plan.append((line, wid, qty))
        if wid not in chosen:
            chosen.append(wid)

    ruled = [line for line in lines if rule_choices[line.id]]
    free = [line for line in lines if not rule_choices[line.id]]
    pending: list[OrderLine] = []
    for line in ruled:
        for wh, rule_name, mode in rule_choices[line.id]:
            if can_serve(wh.id, line):
                take(line, wh.id, line.quantity)
                result.rules[line.id] = rule_name
                break
            if mode == RoutingRule.Mode.STRICT:  # binding: short there means short, no fallback
                result.shortages.append(Shortage(line.id, line.sku.code, line.quantity,
                                                 max(0, available.get((wh.id, line.sku_id), 0))))
                break
        else:
            pending.append(line)
    if result.shortages:
        result.rules.clear()
        return result
    free = pending + free
    if free:
        # Prefer one warehouse for all remaining lines: those already serving the order, then by priority.
        need: dict[int, int] = defaultdict(int)
        for line in free:
            need[line.sku_id] += line.quantity
        candidates = chosen + [w.id for w in by_priority if w.id not in chosen]
        single = next(
            (wid for wid in candidates if all(available.get((wid, sku_id), 0) >= qty for sku_id, qty in need.items())),
            None,
        )
        for line in free:
            if single is not None:
                take(line, single, line.quantity)
                continue
            rule_wids = [w.id for w, _, _ in rule_choices[line.id]]
            prefs = rule_wids + [wid for wid in chosen if wid not in rule_wids]
            prefs += [w.id for w in by_priority if w.id not in prefs]
            whole = next((wid for wid in prefs if can_serve(wid, line)), None)
            if whole is not None:
                take(line, whole, line.quantity)
                continue
            remaining, parts = line.quantity, []
            for wid in prefs:
                have = available.get((wid, line.sku_id), 0)
                if have > 0 and remaining > 0:
                    parts.append((wid, min(have, remaining)))
                    remaining -= parts[-1][1]
            if remaining:
                result.shortages.append(Shortage(line.id, line.sku.code, line.quantity, line.quantity - remaining))
            else:
                for wid, q in parts:
                    take(line, wid, q)
    if result.shortages:
        result.rules.clear()
        return result

    # Write: the pools in one UPDATE (the rows are locked and were re-read under the lock;
    # the check constraint 0 <= reserved <= on_hand refuses any oversell in the same
    # statement), then reservations and ledger rows in bulk.
    lead_hours = settings.ORDERHUB["LEAD_TIME_RESERVATION_HOURS"]
    touched, now = {}, timezone.now()
    for line, wid, qty in plan:
        pool = pools[(wid, line.sku_id)]
        pool.reserved += qty
        pool.updated_at = now  # bulk_update skips auto_now: set it so "changed since" sees reservations
        touched[pool.pk] = pool
    if any(pool.reserved > pool.on_hand for pool in touched.values()):  # cannot happen under the lock
        raise InsufficientStock("库存不足")
    StockLevel.objects.bulk_update(sorted(touched.values(), key=lambda p: p.pk), ["reserved", "updated_at"])
    reservations = [
        Reservation(
            order_line=line,
            stock_level=pools[(wid, line.sku_id)],
            quantity=qty,
            expires_at=(at + timedelta(hours=lead_hours)) if warehouses[wid].lead_time_days else None,
        )
        for line, wid, qty in plan
    ]
    Reservation.objects.bulk_create(reservations)
    # Ledger rows carry the running counts, so replay each pool's reservations in order.
    running = {pk: pool.reserved - sum(r.quantity for r in reservations if r.stock_level_id == pk)
               for pk, pool in touched.items()}
    moves = []
    for reservation in reservations:
        pool = reservation.stock_level
        running[pool.pk] += reservation.quantity
        move = _move(pool, StockMove.Kind.RESERVE, actor=actor, reserved_delta=reservation.quantity,
                     reservation=reservation, order_id=order.pk, reason=f"订单 {order.number} 预占")
        move.reserved_after = running[pool.pk]
        moves.append(move)
    StockMove.objects.bulk_create(moves)
    _check_safety_stock({r.stock_level for r in reservations})
    result.reservations = reservations
    result.warehouses = [warehouses[wid] for wid in chosen]
    return result


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
