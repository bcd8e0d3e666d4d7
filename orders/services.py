"""Order write side: one function per business action.

Each service is atomic, locks the order row, checks the actor's permission (the one the
action table in `orders.transitions` declares, i.e. the FSM transition's `permission=`),
calls the transition (state only), moves stock through `inventory.services`, writes one
timeline event (`orders.events`) and notifies after commit. Admin, API, jobs, imports and
the portal all come through here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable

import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed

from config import notify
from config.actors import Actor, Source
from config.errors import ConcurrentUpdate, ErrorCode, InsufficientStock, InvalidInput, NotFound, NotPermitted, TransitionNotAllowed
from inventory import allocation
from inventory import services as inventory
from inventory.conditions import region_of
from inventory.models import Reservation, Sku, SkuMapping, Warehouse
from orders import events
from orders.models import Customer, HoldReason, Order, OrderEvent, OrderLine, OrderStatus, Shop, new_order_number
from orders.platforms.base import NormalizedOrder
from orders.transitions import ACTIONS, PERSON_HOLD_REASONS, action

# Kept for callers that want the labels by name (admin messages, API description).
TRANSITION_LABELS = {name: a.label for name, a in ACTIONS.items()}


def transition_permission(name: str) -> str | None:
    """The permission the action `name` needs (the FSM transition's `permission=`)."""
    return action(name).required_permission


def _may_now(order: Order, name: str) -> bool:
    """Whether the order's state allows the action (ignoring who asks)."""
    spec = action(name)
    if spec.fsm:
        return can_proceed(getattr(order, name), check_conditions=True)
    if name in ("override_release", "override_ship"):
        return _override_may(order, name)
    if name == "confirm_stock":
        return order.status in (OrderStatus.ALLOCATED, OrderStatus.ON_HOLD) and Reservation.objects.filter(
            order_line__order=order, status=Reservation.Status.ACTIVE, expires_at__gt=timezone.now()).exists()
    return False


def available_transitions(*, order: Order, actor: Actor) -> list[str]:
    """The actions `actor` may take on the order now (for buttons)."""
    return [name for name in ACTIONS if actor.can(transition_permission(name)) and _may_now(order, name)]


# --- plumbing -----------------------------------------------------------------------------
def _lock(order: Order) -> Order:
    return _lock_pk(order.pk)


def _lock_pk(pk: int) -> Order:
    try:
        # of=("self",): lock the order row only; FOR UPDATE over the join would also lock the
        # shop row and so serialise every order of a shop (and block new orders' FK checks).
        return Order.objects.select_for_update(of=("self",)).select_related("shop").get(pk=pk)
    except Order.DoesNotExist as exc:
        raise NotFound("订单不存在") from exc


def _require(actor: Actor, name: str) -> None:
    if not actor.can(transition_permission(name)):
        raise NotPermitted(f"{actor.label} 没有权限对订单「{ACTIONS[name].label}」")


def _check(order: Order, name: str, actor: Actor) -> None:
    _require(actor, name)
    if not can_proceed(getattr(order, name)):
        raise TransitionNotAllowed(
            f"订单 {order.number} 当前状态为「{order.get_status_display()}」,不能{ACTIONS[name].label}"
        )


def _save(order: Order, fields: list[str]) -> None:
    try:
        order.save(update_fields=[*fields, "updated_at"])
    except ConcurrentTransition as exc:
        raise ConcurrentUpdate(f"订单 {order.number} 已被他人修改,请刷新后重试") from exc


def _after_commit(order: Order, kind: str, message: str = "") -> None:
    order_id = order.pk
    transaction.on_commit(lambda: notify.order_changed(order_id, kind=kind, message=message))


def _simple(order: Order, name: str, actor: Actor, record: Callable[..., object], *, at: datetime | None = None,
            before: Callable[[Order], None] | None = None, fields: tuple[str, ...] = (), **kwargs) -> Order:
    """Lock, check, transition, save, record: the shape every simple service shares."""
    order = _lock(order)
    _check(order, name, actor)
    from_status = order.status
    if before is not None:
        before(order)
    getattr(order, name)()
    _save(order, ["status", *fields])
    record(order=order, from_status=from_status, actor=actor, at=at, **kwargs)
    _after_commit(order, order.status)
    return order


# --- customers and creation ---------------------------------------------------------------
# A platform virtual number: a real mobile number plus an extension ("13800138000-1234",
# "…#1234", "…转1234"). Each extension is a different buyer, so it stays part of the key.
_EXTENSION = re.compile(r"^(?P<base>.+?)\s*(?:-|#|转|ext\.?|x)\s*(?P<ext>\d{1,6})$", re.IGNORECASE)


def normalize_phone(raw: str, region: str = "CN") -> str:
    """E.164 for a valid number ('+8613800138000'), with ';ext=N' for a virtual number's
    extension; '' for an empty, invalid or masked one (e.g. '138****5678')."""
    raw = (raw or "").strip()
    if not raw or "*" in raw:
        return ""
    candidates = [(raw, "")]
    match = _EXTENSION.match(raw)
    if match:
        candidates.insert(0, (match["base"], match["ext"]))
    for text, ext in candidates:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        ext = ext or (number.extension or "")
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return f"{e164};ext={ext}" if ext else e164
    return ""


def customer_for(*, phone: str, name: str = "", region: str = "CN") -> Customer | None:
    """The one customer with this phone, created on first sight. Race-safe: the phone is
    unique in the database, so two concurrent first orders end up with the same customer."""
    normalized = normalize_phone(phone, region)
    if not normalized:
        return None
    customer = Customer.objects.filter(phone=normalized).first()
    if customer is not None:
        return customer
    try:
        with transaction.atomic():
            return Customer.objects.create(phone=normalized, name=name)
    except IntegrityError:
        return Customer.objects.get(phone=normalized)


def _resolve_sku(shop: Shop, line) -> Sku | None:
    if line.platform_sku_id:
        mapping = SkuMapping.objects.filter(shop=shop, platform_sku_id=line.platform_sku_id).select_related("sku").first()
        if mapping:
            return mapping.sku
    if line.sku_code:
        return Sku.objects.filter(code=line.sku_code).first()
    return None


def _money(value, what: str) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"{what}不是有效金额: {value!r}") from exc
    if amount < 0:
        raise InvalidInput(f"{what}不能为负数: {amount}")
    return amount


def _duplicate(shop: Shop, platform_order_id: str) -> InvalidInput:
    return InvalidInput(f"订单已存在: {shop.code} {platform_order_id}", code=ErrorCode.DUPLICATE)


@transaction.atomic
def order_create(*, shop: Shop, data: NormalizedOrder, actor: Actor, at: datetime | None = None) -> Order:
    """Store a new order from any channel. Paid orders are marked paid; an order with no
    lines or an unmapped SKU is stored and put on hold with the reason, never dropped."""
    if not actor.can("orders.add_order"):
        raise NotPermitted(f"{actor.label} 没有权限创建订单")
    if not data.platform_order_id:
        raise InvalidInput("缺少平台订单号")
    if Order.objects.filter(shop=shop, platform_order_id=data.platform_order_id).exists():
        raise _duplicate(shop, data.platform_order_id)
    for i, line in enumerate(data.lines, start=1):
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) or line.quantity <= 0:
            raise InvalidInput(f"第 {i} 行数量必须是正整数(收到 {line.quantity!r})")
    at = at or timezone.now()
    placed_at = data.placed_at or at
    customer = customer_for(phone=data.buyer_phone or data.receiver_phone, name=data.buyer_name or data.receiver_name,
                            region=data.country or "CN")
    try:
        with transaction.atomic():
            order = Order.objects.create(
                number=new_order_number(zone=shop.time_zone, at=placed_at),
                shop=shop, platform_order_id=data.platform_order_id, customer=customer,
                platform_status=data.platform_status, currency=data.currency or shop.currency,
                goods_amount=_money(data.goods_amount, "商品金额"), discount_amount=_money(data.discount_amount, "优惠金额"),
                shipping_fee=_money(data.shipping_fee, "运费"), paid_amount=_money(data.paid_amount, "实付金额"),
                receiver_name=data.receiver_name, receiver_phone=data.receiver_phone, country=data.country or "CN",
                receiver_phone_normalized=normalize_phone(data.receiver_phone, data.country or "CN"),  # what search looks up
                province=data.province, city=data.city, district=data.district, address=data.address,
                postcode=data.postcode, is_presale=data.is_presale, promised_ship_at=data.promised_ship_at,
                source_detail=data.source_detail, coupon_codes=list(data.coupon_codes), member_level=data.member_level,
                is_vip=data.is_vip, buyer_note=data.buyer_note, seller_note=data.seller_note,
                invoice_title=data.invoice_title, invoice_tax_number=data.invoice_tax_number, tags=list(data.tags),
                placed_at=placed_at, platform_updated_at=data.platform_updated_at, raw=data.raw,
            )
    except IntegrityError:
        # Only the (shop, platform order id) constraint makes this a duplicate (a concurrent
        # insert of the same order); anything else is a real fault and must not be hidden.
        if Order.objects.filter(shop=shop, platform_order_id=data.platform_order_id).exists():
            raise _duplicate(shop, data.platform_order_id) from None
        raise
    OrderLine.objects.bulk_create([
        OrderLine(order=order, sku=_resolve_sku(shop, line), platform_sku_id=line.platform_sku_id, title=line.title[:255],
                  quantity=line.quantity, unit_price=_money(line.unit_price, "单价"),
                  discount_amount=_money(line.discount_amount, "行优惠"), is_gift=line.is_gift)
        for line in data.lines
    ])
    events.order_created(order=order, actor=actor, at=placed_at)
    if data.paid:
        order = order_pay(order=order, actor=actor, at=data.paid_at or at)
    return order


# --- the lifecycle ------------------------------------------------------------------------
def _data_hold(order: Order, actor: Actor, at: datetime | None) -> Order:
    """Hold a paid order whose data cannot be allocated yet (no lines, unmapped SKUs)."""
    if not order.lines.exists():
        return _hold_locked(order, actor=actor, reason=HoldReason.NO_LINES, note="订单没有商品行", at=at)
    unmapped = list(order.lines.filter(sku__isnull=True).values_list("platform_sku_id", flat=True)[:5])
    if unmapped:
        return _hold_locked(order, actor=actor, reason=HoldReason.SKU_UNMAPPED,
                            note=f"未映射的平台 SKU: {', '.join(unmapped)}", at=at)
    return order


@transaction.atomic
def order_pay(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Payment confirmed: stamps the paid time and, unless the order is presale with its own
    date, the promised ship time (paid + the shop's ship-within hours)."""
    at = at or timezone.now()

    def stamp(o: Order) -> None:
        o.paid_at = o.paid_at or at
        if o.promised_ship_at is None and not o.is_presale:
            o.promised_ship_at = o.paid_at + timedelta(hours=o.shop.ship_within_hours)

    order = _simple(order, "pay", actor, events.order_paid, at=at, before=stamp, fields=("paid_at", "promised_ship_at"))
    return _data_hold(order, actor, at)


# --- allocation -----------------------------------------------------------------------------
# `inventory.allocation` plans and reserves; this side locks the orders, turns each into
# demands plus a routing context, runs the FSM transition and records the outcome.
def _routing_context(order: Order, lines: list[OrderLine]) -> allocation.RoutingContext:
    """The fields routing conditions test (`inventory.conditions.FIELDS`), for the whole order."""
    mapped = [line for line in lines if line.sku_id]
    return allocation.RoutingContext(
        country=order.country,
        fields={
            "province": order.province, "city": order.city, "district": order.district, "address": order.address,
            "region": region_of(order.province), "country": order.country,
            "channel": order.shop.platform, "shop": order.shop.code,
            "sku": [line.sku.code for line in mapped],
            "sku_category": [line.sku.category for line in mapped if line.sku.category],
            "tags": list(order.tags or []), "amount": order.paid_amount, "member_level": order.member_level,
            "is_vip": order.is_vip, "is_presale": order.is_presale,
        },
        sku_codes={line.sku_id: line.sku.code for line in mapped},
        sku_categories={line.sku_id: line.sku.category for line in mapped if line.sku.category},
    )


def _allocation_request(order: Order, lines: list[OrderLine]) -> allocation.AllocationRequest:
    return allocation.AllocationRequest(
        order_id=order.pk, reference=order.number, context=_routing_context(order, lines),
        demands=[allocation.Demand(line.pk, line.sku_id, line.quantity) for line in lines],
    )


def _data_blocker(lines: list[OrderLine]) -> tuple[str, str] | None:
    """(hold reason, note) when the lines cannot be allocated at all, else None."""
    if not lines:
        return HoldReason.NO_LINES, "订单没有商品行"
    if any(line.sku_id is None for line in lines):
        return HoldReason.SKU_UNMAPPED, "存在未映射的 SKU"
    return None


def _allocated_data(result: allocation.AllocationResult) -> dict:
    return {"warehouses": [w.code for w in result.warehouses],
            "reservations": [[line_id, warehouse.code, qty] for line_id, warehouse, qty in result.placements],
            "rules": {str(k): v for k, v in result.rules.items()}}


@transaction.atomic
def order_allocate(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Reserve stock by the routing rules. Short stock or an unmapped SKU puts the order
    on hold with the reason and reserves nothing; the call itself still succeeds."""
    order = _lock(order)
    _check(order, "allocate", actor)
    at = at or timezone.now()
    # Read the lines (with their SKUs) once: the checks below and the allocation share them.
    lines = list(order.lines.select_related("sku"))
    blocker = _data_blocker(lines)
    if blocker:
        return _hold_locked(order, actor=actor, reason=blocker[0], note=blocker[1], at=at)
    result = allocation.allocate(_allocation_request(order, lines), actor=actor, at=at)
    if not result.ok:
        return _hold_locked(order, actor=actor, reason=HoldReason.STOCK_SHORT, note=result.shortage_text(), at=at)
    from_status = order.status
    order.allocate()
    order.hold_reason, order.hold_note = "", ""
    _save(order, ["status", "hold_reason", "hold_note"])
    events.order_allocated(order=order, from_status=from_status, actor=actor, at=at,
                           warehouse_names=[w.name for w in result.warehouses], data=_allocated_data(result))
    _after_commit(order, "allocated")
    return order


@dataclass
class BulkAllocation:
    """What a batch did, by order id (each list in id order)."""

    allocated: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # went on hold (stock short, or a data reason)
    unchanged: list[int] = field(default_factory=list)  # not in a state to allocate, or missing, or still short


RETRY_NOTE = "库存已到,自动重新分仓"


def _released_message(note: str, released: int = 0) -> str:
    """`events.order_released`'s message (the bulk path builds the row itself)."""
    message = "解除挂起" + (f": {note}" if note else "")
    if released:
        message += f";释放不完整的预占 {released} 件,待重新分仓"
    return message


def _allocate_batch(order_ids: list[int], actor: Actor, at: datetime | None, *, retry: bool) -> BulkAllocation:
    """The batch in one transaction (see `order_allocate_bulk`). With `retry`, the orders are
    ones held for short stock: those that can now be covered are released and allocated,
    the others stay exactly as they were."""
    at = at or timezone.now()
    outcome = BulkAllocation()
    ids = sorted(set(order_ids))
    # Lock the orders in id order (one statement), then read every line in one query.
    orders = list(Order.objects.select_for_update(of=("self",)).select_related("shop")
                  .filter(pk__in=ids).order_by("pk"))
    outcome.unchanged.extend(sorted(set(ids) - {o.pk for o in orders}))
    lines: dict[int, list[OrderLine]] = {o.pk: [] for o in orders}
    for line in OrderLine.objects.filter(order_id__in=lines).select_related("sku").order_by("order_id", "id"):
        lines[line.order_id].append(line)
    if retry:
        holding = set(Reservation.objects.filter(order_line__order_id__in=lines, status=Reservation.Status.ACTIVE)
                      .values_list("order_line__order_id", flat=True))
    ready: list[Order] = []
    for order in orders:
        if retry:
            fit = (order.status == OrderStatus.ON_HOLD and order.hold_reason == HoldReason.STOCK_SHORT
                   and order.pk not in holding and _data_blocker(lines[order.pk]) is None)
        else:
            fit = can_proceed(order.allocate)
        if not fit:
            outcome.unchanged.append(order.pk)
            continue
        blocker = _data_blocker(lines[order.pk])
        if blocker:  # rare: written one by one, exactly as the per-order service does
            _hold_locked(order, actor=actor, reason=blocker[0], note=blocker[1], at=at)
            outcome.held.append(order.pk)
            continue
        ready.append(order)
    results = allocation.allocate_many([_allocation_request(o, lines[o.pk]) for o in ready], actor=actor, at=at)

    # The real FSM transitions, in memory; then the writes in bulk.
    new_events: list[OrderEvent] = []
    allocated: list[Order] = []
    held: dict[str, list[Order]] = defaultdict(list)  # hold note → orders
    for order, result in zip(ready, results):
        if retry and not result.ok:
            outcome.unchanged.append(order.pk)
            continue
        if retry:
            previous = order.hold_reason
            order.release(to_allocated=False)
            new_events.append(OrderEvent(**events.event_fields(
                order=order, kind=OrderEvent.Kind.RELEASED, actor=actor, from_status=OrderStatus.ON_HOLD, at=at,
                message=_released_message(RETRY_NOTE), data={"previous_reason": previous, "released_quantity": 0})))
        from_status = order.status
        if result.ok:
            order.allocate()
            order.hold_reason, order.hold_note = "", ""
            new_events.append(OrderEvent(**events.event_fields(
                order=order, kind=OrderEvent.Kind.ALLOCATED, actor=actor, from_status=from_status, at=at,
                message=events.allocated_message([w.name for w in result.warehouses]), data=_allocated_data(result))))
            allocated.append(order)
        else:
            note = result.shortage_text()
            order.hold()
            order.hold_reason, order.hold_note = HoldReason.STOCK_SHORT, note[:255]
            new_events.append(OrderEvent(**events.event_fields(
                order=order, kind=OrderEvent.Kind.HELD, actor=actor, from_status=from_status, at=at,
                message=events.held_message(HoldReason.STOCK_SHORT, note), data={"reason": HoldReason.STOCK_SHORT})))
            held[order.hold_note].append(order)
    now = timezone.now()
    source = OrderStatus.ON_HOLD if retry else OrderStatus.PAID
    _bulk_status(allocated, source=source, now=now, status=OrderStatus.ALLOCATED, hold_reason="", hold_note="")
    for note, group in held.items():
        _bulk_status(group, source=source, now=now, status=OrderStatus.ON_HOLD, hold_reason=HoldReason.STOCK_SHORT,
                     hold_note=note)
    OrderEvent.objects.bulk_create(new_events)
    label = str(HoldReason.STOCK_SHORT.label)
    for order in allocated:
        if retry:
            _after_commit(order, "released")
        _after_commit(order, "allocated")
        outcome.allocated.append(order.pk)
    for group in held.values():
        for order in group:
            _after_commit(order, "held", label)
            outcome.held.append(order.pk)
    for ids_ in (outcome.allocated, outcome.held, outcome.unchanged):
        ids_.sort()
    return outcome


def _bulk_status(orders: list[Order], *, source: str, now: datetime, **values) -> None:
    """One guarded UPDATE for orders moving from `source` to the same values; every row must
    match (the rows are locked, so anything else is a bug, and rolls the batch back)."""
    if not orders:
        return
    changed = Order.objects.filter(pk__in=[o.pk for o in orders], status=source).update(updated_at=now, **values)
    if changed != len(orders):
        raise ConcurrentUpdate(f"批量分仓: {len(orders)} 个订单中只有 {changed} 个仍为「{OrderStatus(source).label}」")
    for order in orders:
        order.updated_at = now


@transaction.atomic
def order_allocate_bulk(*, order_ids: list[int], actor: Actor, at: datetime | None = None) -> BulkAllocation:
    """Allocate many paid orders in one transaction, with the same outcome per order as
    `order_allocate` (reservations, ledger rows, events, hold reasons), for jobs and
    ingestion; the admin and the API keep the per-order service.

    Locks the orders in id order, then every candidate pool in one id-ordered
    `SELECT … FOR UPDATE` (the locks, and their order, of the per-order path), plans each
    order against stock shared by the batch (an order that falls short gives its takes
    back and goes on hold), then writes in bulk. Orders not in `paid` are left unchanged.
    """
    if not actor.can(transition_permission("allocate")):
        raise NotPermitted(f"{actor.label} 没有权限对订单「{ACTIONS['allocate'].label}」")
    return _allocate_batch(list(order_ids), actor, at, retry=False)


@transaction.atomic
def order_retry_allocation_bulk(*, order_ids: list[int], actor: Actor, at: datetime | None = None) -> BulkAllocation:
    """Orders held for short stock, retried in one transaction: each one the stock now
    covers is released and allocated (the `released` and `allocated` events of
    `order_release` + `order_allocate`); each one still short stays exactly as it was.
    Orders holding some reservations are left unchanged (the per-order path handles them)."""
    for name in ("release", "allocate"):
        _require(actor, name)
    return _allocate_batch(list(order_ids), actor, at, retry=True)


def _hold_locked(order: Order, *, actor: Actor, reason: str, note: str = "", at: datetime | None = None) -> Order:
    """Hold an order whose row this transaction already locked (the system may always hold
    for a data reason, e.g. stock short, even when the person who triggered it may not)."""
    if not can_proceed(order.hold):
        raise TransitionNotAllowed(f"订单 {order.number} 当前状态为「{order.get_status_display()}」,不能挂起")
    from_status = order.status
    order.hold()
    order.hold_reason, order.hold_note = reason, note[:255]
    _save(order, ["status", "hold_reason", "hold_note"])
    events.order_held(order=order, from_status=from_status, actor=actor, reason=reason, note=note, at=at)
    _after_commit(order, "held", str(HoldReason(reason).label) if reason in HoldReason.values else reason)
    return order


def _check_hold_reason(reason: str, actor: Actor) -> None:
    if reason not in HoldReason.values:
        raise InvalidInput(f"未知的挂起原因: {reason}")
    if not actor.is_system and reason not in PERSON_HOLD_REASONS:
        allowed = "、".join(str(r.label) for r in PERSON_HOLD_REASONS)
        raise InvalidInput(f"挂起原因「{HoldReason(reason).label}」由系统设置,人工挂起可选: {allowed}",
                           code=ErrorCode.HOLD_REASON_RESERVED)


@transaction.atomic
def order_hold(*, order: Order, actor: Actor, reason: str = HoldReason.MANUAL, note: str = "",
               at: datetime | None = None) -> Order:
    """Stop an order. People choose manual, address or risk; data reasons (stock short,
    unmapped SKU, expired reservations) are the system's."""
    _check_hold_reason(reason, actor)
    order = _lock(order)
    _check(order, "hold", actor)
    return _hold_locked(order, actor=actor, reason=reason, note=note, at=at)


def _fully_reserved(order: Order) -> bool:
    """Every line's quantity is covered by its active reservations."""
    lines = list(order.lines.all())
    if not lines:
        return False
    covered: dict[int, int] = {}
    for line_id, quantity in Reservation.objects.filter(
            order_line__order=order, status=Reservation.Status.ACTIVE).values_list("order_line_id", "quantity"):
        covered[line_id] = covered.get(line_id, 0) + quantity
    return all(covered.get(line.pk, 0) >= line.quantity for line in lines)


@transaction.atomic
def order_release(*, order: Order, actor: Actor, note: str = "", at: datetime | None = None) -> Order:
    """Lift a hold: back to allocated when every line is still reserved; otherwise any
    partial reservations go back to their pools and the order returns to paid, ready to be
    allocated again (it never reads as allocated with stock missing)."""
    order = _lock(order)
    _check(order, "release", actor)
    at = at or timezone.now()
    complete = _fully_reserved(order)
    released = 0
    if not complete:
        released = sum(r.quantity for r in inventory.release_order_reservations(
            order=order, actor=actor, reason="解除挂起时预占不完整", at=at))
    from_status, reason = order.status, order.hold_reason
    order.release(to_allocated=complete)
    order.hold_reason, order.hold_note = "", ""
    _save(order, ["status", "hold_reason", "hold_note"])
    events.order_released(order=order, from_status=from_status, actor=actor, previous_reason=reason, note=note,
                          released=released, at=at)
    _after_commit(order, "released")
    return order


@transaction.atomic
def order_pack(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Packed: lead-time reservations are now backed by goods in hand, so they stop expiring."""
    def confirm(o: Order) -> None:
        inventory.confirm_order_reservations(order=o, actor=actor, include_expired=True)

    return _simple(order, "pack", actor, events.order_packed, at=at, before=confirm)


# Carrier codes and tracking numbers reach the customer's timeline, so they must be what
# they claim to be, not free text.
_CARRIER = re.compile(r"^[A-Za-z0-9_]{1,20}$")
_TRACKING = re.compile(r"^[A-Za-z0-9-]{1,40}$")


def _ship_codes(carrier: str, tracking_number: str) -> tuple[str, str]:
    carrier, tracking_number = (carrier or "").strip().upper(), (tracking_number or "").strip()
    if carrier and not _CARRIER.match(carrier):
        raise InvalidInput(f"快递公司编码无效: {carrier!r}(字母、数字,如 SF、YTO)")
    if tracking_number and not _TRACKING.match(tracking_number):
        raise InvalidInput(f"运单号无效: {tracking_number!r}(最多 40 位字母、数字或 -)")
    return carrier, tracking_number


@transaction.atomic
def order_ship(*, order: Order, actor: Actor, warehouse: Warehouse | None = None, carrier: str = "",
               tracking_number: str = "", at: datetime | None = None) -> Order:
    """Goods left a warehouse (or all of them): consume those reservations and ship one
    `Shipment` per warehouse parcel (`orders.shipping`). The order is partially shipped while
    another warehouse still holds reserved stock for it."""
    carrier, tracking_number = _ship_codes(carrier, tracking_number)
    order = _lock(order)
    _check(order, "ship", actor)
    return _ship_locked(order, actor=actor, warehouse=warehouse, carrier=carrier, tracking_number=tracking_number,
                        at=at)


def _ship_locked(order: Order, *, actor: Actor, warehouse: Warehouse | None, carrier: str, tracking_number: str,
                 at: datetime | None, parcel=None) -> Order:
    """`order_ship` once the order row is locked and the action checked; `parcel` is the
    shipment a carrier's pickup scan names (its warehouse ships)."""
    from orders import shipping

    at = at or timezone.now()
    consumed = inventory.consume_order_reservations(order=order, actor=actor, at=at, warehouse=warehouse)
    if warehouse is not None and not consumed:
        raise InvalidInput(f"订单 {order.number} 在 {warehouse.name} 没有待发货的预占", code=ErrorCode.NOTHING_TO_SHIP)
    remaining = Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE).exists()
    from_status = order.status
    order.ship(complete=not remaining)
    _save(order, ["status"])
    parcels = shipping.ship_parcels(order=order, consumed=consumed, warehouse=warehouse, carrier=carrier,
                                    tracking_number=tracking_number, at=at, parcel=parcel)
    events.order_shipped(order=order, from_status=from_status, actor=actor, at=at,
                         warehouse_name=warehouse.name if warehouse else "",
                         warehouse_code=warehouse.code if warehouse else "",
                         carrier=carrier, tracking_number=tracking_number, shipments=[p.pk for p in parcels])
    _after_commit(order, order.status)
    return order


@transaction.atomic
def order_deliver(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Signed for (a person confirms it): every parcel still with the carrier is delivered too."""
    from orders import shipping

    def parcels(o: Order) -> None:
        shipping.deliver_open_parcels(order=o, at=at or timezone.now())

    return _simple(order, "deliver", actor, events.order_delivered, at=at, before=parcels)


def _deliver_locked(order: Order, *, actor: Actor, at: datetime, writes=None) -> Order:
    """The last parcel was signed for (a carrier scan): the order is delivered. `writes`
    (`orders.batch_writes.Writes`, the batched scans): the row and its event are written when
    the batch flushes, instead of now; the transition, the event and the notification are the
    same."""
    from_status = order.status
    order.deliver()
    if writes is None:
        _save(order, ["status"])
        events.order_delivered(order=order, from_status=from_status, actor=actor, at=at)
    else:
        writes.save(order, ["status", "updated_at"])
        writes.event(events.delivered_fields(order=order, from_status=from_status, actor=actor, at=at))
    _after_commit(order, order.status)
    return order


@transaction.atomic
def order_complete(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    return _simple(order, "complete", actor, events.order_completed, at=at)


@transaction.atomic
def order_cancel(*, order: Order, actor: Actor, reason: str = "", at: datetime | None = None) -> Order:
    """Cancel before shipping: every active reservation goes back to its pool."""
    released: list[Reservation] = []

    def release(o: Order) -> None:
        released.extend(inventory.release_order_reservations(order=o, actor=actor, reason="订单取消", at=at))
        o.hold_reason, o.hold_note = "", ""

    order = _lock(order)
    _check(order, "cancel", actor)
    from_status = order.status
    release(order)
    order.cancel()
    _save(order, ["status", "hold_reason", "hold_note"])
    events.order_cancelled(order=order, from_status=from_status, actor=actor, reason=reason,
                           released=sum(r.quantity for r in released), at=at)
    _after_commit(order, order.status)
    return order


@transaction.atomic
def order_mark_returned(*, order: Order, actor: Actor, reason: str = "", at: datetime | None = None) -> Order:
    return _simple(order, "mark_returned", actor, events.order_returned, at=at, reason=reason)


# --- lead-time stock: confirm or expire -----------------------------------------------------
def _describe(reservations: list[Reservation]) -> list[tuple[str, str, int]]:
    return [(r.stock_level.warehouse.name, r.stock_level.sku.code, r.quantity) for r in reservations]


@transaction.atomic
def order_confirm_stock(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Lead-time stock confirmed (the transfer is booked): the order's lead-time
    reservations stop expiring. Locks the order row first, like the expiry job, so a
    confirmation and an expiry of the same order never both happen."""
    _require(actor, "confirm_stock")
    order = _lock(order)
    at = at or timezone.now()
    if order.status not in (OrderStatus.ALLOCATED, OrderStatus.ON_HOLD):
        raise TransitionNotAllowed(f"订单 {order.number} 当前状态为「{order.get_status_display()}」,没有待确认的备货")
    confirmed = inventory.confirm_order_reservations(order=order, actor=actor, at=at)
    if not confirmed:
        raise TransitionNotAllowed(f"订单 {order.number} 没有待确认(且未过期)的备货预占",
                                   code=ErrorCode.NOTHING_TO_CONFIRM)
    events.stock_confirmed(order=order, actor=actor, confirmed=_describe(confirmed), at=at)
    _after_commit(order, "stock_confirmed")
    return order


@transaction.atomic
def order_expire_reservations(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Lead-time stock not confirmed in time: give back only the expired lead-time
    reservations (stock on hand stays reserved), record it, and hold the order with reason
    `reservation_expired` (an order already on hold now waits for that reason)."""
    order = _lock(order)
    at = at or timezone.now()
    released = inventory.release_expired_reservations(order=order, actor=actor, at=at)
    if not released:
        return order
    events.reservations_expired(order=order, actor=actor, released=_describe(released), at=at)
    note = "备货预占过期: " + "、".join(f"{sku}×{q}" for _w, sku, q in _describe(released))
    if order.status == OrderStatus.ALLOCATED:
        return _hold_locked(order, actor=actor, reason=HoldReason.RESERVATION_EXPIRED, note=note, at=at)
    if order.status == OrderStatus.ON_HOLD and order.hold_reason != HoldReason.RESERVATION_EXPIRED:
        previous = order.get_hold_reason_display()
        order.hold_reason = HoldReason.RESERVATION_EXPIRED
        order.hold_note = f"{note};原挂起原因: {previous}"[:255]
        _save(order, ["hold_reason", "hold_note"])
        events.order_held(order=order, from_status=order.status, actor=actor, reason=order.hold_reason,
                          note=order.hold_note, at=at)
    return order


# --- SKU mappings that arrive after the order -----------------------------------------------
@transaction.atomic
def order_resolve_skus(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Match the order's unmapped lines against the SKU mappings again. When that unblocks an
    order held for `sku_unmapped`, the hold is released and the order allocated."""
    if not actor.can("orders.release_order"):
        raise NotPermitted(f"{actor.label} 没有权限重新匹配订单 SKU")
    order = _lock(order)
    at = at or timezone.now()
    resolved = []
    for line in order.lines.filter(sku__isnull=True):
        sku = _resolve_sku(order.shop, _LineRef(line.platform_sku_id))
        if sku is not None:
            line.sku = sku
            line.save(update_fields=["sku"])
            resolved.append((line.platform_sku_id, sku.code))
    if resolved:
        events.skus_resolved(order=order, actor=actor, resolved=resolved, at=at)
    if order.status == OrderStatus.ON_HOLD and order.hold_reason == HoldReason.SKU_UNMAPPED \
            and not order.lines.filter(sku__isnull=True).exists():
        order = order_release(order=order, actor=actor, note="SKU 映射已补齐", at=at)
        if order.status == OrderStatus.PAID:
            # Allocating a paid order is what ingestion does anyway: when the person who fixed
            # the mapping may not allocate, the system does it (recorded as such).
            allocator = actor if actor.can(transition_permission("allocate")) else Actor.system("auto_allocate", Source.JOB)
            order = order_allocate(order=order, actor=allocator, at=at)
    return order


class _LineRef:
    """What `_resolve_sku` reads of a line (platform SKU id; no SKU code on a stored line)."""

    def __init__(self, platform_sku_id: str):
        self.platform_sku_id, self.sku_code = platform_sku_id, ""


def orders_waiting_for_mapping(*, shop_id: int, platform_sku_id: str) -> list[int]:
    """Ids of orders of the shop that have an unmapped line with this platform SKU id."""
    return sorted(set(OrderLine.objects.filter(
        order__shop_id=shop_id, platform_sku_id=platform_sku_id, sku__isnull=True,
    ).values_list("order_id", flat=True)))


def mapping_added(*, shop_id: int, platform_sku_id: str, actor: Actor) -> int:
    """A mapping was added or changed: re-resolve every order waiting for it, each in its
    own transaction (one stuck order must not block the rest). Returns how many orders were
    unblocked (no unmapped line left)."""
    from config.errors import DomainError

    done = 0
    for order_id in orders_waiting_for_mapping(shop_id=shop_id, platform_sku_id=platform_sku_id):
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            continue
        try:
            order = order_resolve_skus(order=order, actor=actor)
        except DomainError:
            continue
        if not order.lines.filter(sku__isnull=True).exists():
            done += 1
    return done


@transaction.atomic
def order_add_note(*, order: Order, actor: Actor, note: str) -> Order:
    from orders.selectors import ensure_order_in_scope

    ensure_order_in_scope(order=order, actor=actor)
    if not actor.can("orders.change_order"):
        raise NotPermitted(f"{actor.label} 没有权限修改订单备注")
    note = (note or "").strip()
    if not note:
        raise InvalidInput("备注不能为空")
    order = _lock(order)
    order.seller_note = (order.seller_note + "\n" if order.seller_note else "") + note
    order.save(update_fields=["seller_note", "updated_at"])
    events.order_note(order=order, actor=actor, message=note)
    return order


# --- emergency overrides (supervisor, with a written reason) -----------------------------------
def _override_reason(reason) -> str:
    from orders.transitions import OVERRIDE_MIN_REASON

    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if len(reason) < OVERRIDE_MIN_REASON:
        raise InvalidInput(f"紧急放行必须写明原因(至少 {OVERRIDE_MIN_REASON} 个字)")
    return reason[:200]


def _override_may(order: Order, name: str) -> bool:
    """Overrides bypass what the system decided: only an order the system put on hold (stock
    short, unmapped SKU, expired reservations, no lines). A hold a person set is theirs to lift."""
    return (name in ("override_release", "override_ship") and order.status == OrderStatus.ON_HOLD
            and order.hold_reason not in PERSON_HOLD_REASONS)


def _record_override(order: Order, *, kind: str, actor: Actor, reason: str, at: datetime, detail: dict):
    from orders.models import OrderOverride

    return OrderOverride.objects.create(order=order, kind=kind, reason=reason, actor=actor.user,
                                        actor_label=actor.label, at=at, detail=detail)


@transaction.atomic
def order_override_release(*, order: Order, actor: Actor, reason: str = "", at: datetime | None = None) -> Order:
    """Lift a hold the system set (stock short, unmapped SKU, expired reservations, no lines):
    back to paid, without allocating; any partial reservations go back to their pools. Holds a
    person set are lifted with the ordinary release."""
    from orders.models import OrderOverride

    _require(actor, "override_release")
    reason = _override_reason(reason)
    order = _lock(order)
    if not _override_may(order, "override_release"):
        raise TransitionNotAllowed(f"订单 {order.number} 当前不是系统挂起,不能紧急放行(人工挂起请用「解除挂起」)")
    at = at or timezone.now()
    released = sum(r.quantity for r in inventory.release_order_reservations(
        order=order, actor=actor, reason=f"紧急放行: {reason}", at=at))
    from_status, previous = order.status, order.hold_reason
    order.force_release()
    order.hold_reason, order.hold_note, order.overridden = "", "", True
    _save(order, ["status", "hold_reason", "hold_note", "overridden"])
    _record_override(order, kind=OrderOverride.Kind.RELEASE, actor=actor, reason=reason, at=at,
                     detail={"previous_reason": previous, "released_quantity": released})
    events.order_override_released(order=order, from_status=from_status, actor=actor, previous_reason=previous,
                                   reason=reason, released=released, at=at)
    _after_commit(order, "released")
    return order


def _ship_unreserved(order: Order, *, warehouse: Warehouse, actor: Actor, reason: str,
                     reserved_here: dict[int, int]) -> list[tuple[str, int]]:
    """Take what the lines still need, unreserved, from the warehouse's available stock: one
    `ship` move per pool (on hand down, reserved untouched), so the ledger still adds up. It
    never takes stock reserved for other orders, nor goes below zero."""
    from inventory.models import StockLevel, StockMove

    need: dict[int, int] = defaultdict(int)
    skus: dict[int, Sku] = {}
    for line in order.lines.select_related("sku").order_by("id"):
        if line.sku_id is None:
            raise InvalidInput(f"订单 {order.number} 有未映射 SKU 的商品行「{line.title}」,无法发货")
        missing = line.quantity - reserved_here.get(line.pk, 0)
        if missing > 0:
            need[line.sku_id] += missing
            skus[line.sku_id] = line.sku
    if not need:
        return []
    for sku_id in sorted(need):
        StockLevel.objects.get_or_create(warehouse=warehouse, sku_id=sku_id)
    pools = {p.sku_id: p for p in StockLevel.objects.select_for_update().filter(
        warehouse=warehouse, sku_id__in=need).order_by("id")}
    short = [f"{skus[s].code}(需 {q},可用 {pools[s].available})" for s, q in need.items() if pools[s].available < q]
    if short:
        raise InsufficientStock(f"{warehouse.name} 可用库存不足: {'、'.join(short)};请先入库或盘点")
    moves, shipped = [], []
    for sku_id in sorted(need):
        pool, quantity = pools[sku_id], need[sku_id]
        pool.on_hand -= quantity
        pool.save(update_fields=["on_hand", "updated_at"])
        moves.append(StockMove(stock_level=pool, kind=StockMove.Kind.SHIP, on_hand_delta=-quantity,
                               reserved_delta=0, on_hand_after=pool.on_hand, reserved_after=pool.reserved,
                               order_id=order.pk, reason=f"订单 {order.number} 紧急放行发货(无预占): {reason}"[:255],
                               actor=actor.user, actor_label=actor.label, source=actor.source))
        shipped.append((skus[sku_id].code, quantity))
    StockMove.objects.bulk_create(moves)
    return shipped


@transaction.atomic
def order_override_ship(*, order: Order, actor: Actor, reason: str = "", warehouse: Warehouse | None = None,
                        carrier: str = "", tracking_number: str = "", at: datetime | None = None) -> Order:
    """Ship an order the system held (e.g. stock short) from one warehouse although it is not
    (fully) reserved: that
    warehouse's reservations are consumed, any in other warehouses released, and what is
    still missing leaves the warehouse's available stock through a `ship` move that names the
    override. Refused (409) when the warehouse does not have it: count or receive it first."""
    from orders import shipping
    from orders.models import OrderOverride

    _require(actor, "override_ship")
    reason = _override_reason(reason)
    if warehouse is None:
        raise InvalidInput("紧急放行发货须选择发货仓")
    if not actor.scope.allows_warehouse(warehouse.pk):
        raise InvalidInput(f"未知仓库: {warehouse.code}")
    carrier, tracking_number = _ship_codes(carrier, tracking_number)
    order = _lock(order)
    if not _override_may(order, "override_ship"):
        raise TransitionNotAllowed(
            f"订单 {order.number} 当前不是系统挂起(状态「{order.get_status_display()}」),不能紧急放行发货")
    at = at or timezone.now()
    consumed = inventory.consume_order_reservations(order=order, actor=actor, at=at, warehouse=warehouse)
    # What other warehouses hold for it goes back to their pools: the whole order leaves here.
    inventory.release_order_reservations(order=order, actor=actor, reason=f"紧急放行改由 {warehouse.code} 发货", at=at)
    reserved_here: dict[int, int] = defaultdict(int)
    for r in consumed:
        reserved_here[r.order_line_id] += r.quantity
    unreserved = _ship_unreserved(order, warehouse=warehouse, actor=actor, reason=reason, reserved_here=reserved_here)
    from_status = order.status
    order.force_ship()
    order.hold_reason, order.hold_note, order.overridden = "", "", True
    _save(order, ["status", "hold_reason", "hold_note", "overridden"])
    # consumed=[]: the one parcel carries every line, reserved or not.
    parcels = shipping.ship_parcels(order=order, consumed=[], warehouse=warehouse, carrier=carrier,
                                    tracking_number=tracking_number, at=at)
    _record_override(order, kind=OrderOverride.Kind.SHIP, actor=actor, reason=reason, at=at,
                     detail={"warehouse": warehouse.code, "unreserved": [[c, q] for c, q in unreserved],
                             "reserved": sum(reserved_here.values()), "from_status": from_status})
    events.order_override_shipped(order=order, from_status=from_status, actor=actor, reason=reason,
                                  warehouse_name=warehouse.name, warehouse_code=warehouse.code, unreserved=unreserved,
                                  carrier=carrier, tracking_number=tracking_number,
                                  shipments=[p.pk for p in parcels], at=at)
    _after_commit(order, order.status)
    return order


@transaction.atomic
def override_mark_reviewed(*, override_ids: list[int], actor: Actor, at: datetime | None = None) -> int:
    """A supervisor looked at these overrides afterwards; returns how many were newly marked."""
    from orders.models import OrderOverride

    if not actor.can("orders.override_order"):
        raise NotPermitted(f"{actor.label} 没有权限复核紧急放行")
    return OrderOverride.objects.filter(pk__in=override_ids, reviewed_at__isnull=True).update(
        reviewed_by=actor.user, reviewed_at=at or timezone.now())


# --- one entry point for the admin and the API ---------------------------------------------
TRANSITION_SERVICES: dict[str, Callable[..., Order]] = {name: globals()[f"order_{name}"] for name in ACTIONS}
# Extra arguments each action accepts from a person (admin form, API body).
TRANSITION_PARAMS = {name: {p.name for p in a.params} for name, a in ACTIONS.items() if a.params}


def order_transition(*, order: Order, name: str, actor: Actor, params: dict | None = None) -> Order:
    """Run the named action's service with the parameters it accepts."""
    from orders.selectors import ensure_order_in_scope  # imported here: selectors reads services too

    ensure_order_in_scope(order=order, actor=actor)  # outside the person's shops/warehouses: 404
    spec = action(name)
    params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    unknown = set(params) - {p.name for p in spec.params}
    if unknown:
        raise InvalidInput(f"操作「{spec.label}」不接受参数: {', '.join(sorted(unknown))}")
    for p in spec.params:
        if p.name not in params:
            if p.required:
                raise InvalidInput(f"操作「{spec.label}」缺少参数: {p.name}")
            continue
        value = params[p.name]
        if not isinstance(value, str):
            raise InvalidInput(f"参数 {p.name} 必须是文本")
        if len(value) > p.max_length:
            raise InvalidInput(f"参数 {p.name} 不能超过 {p.max_length} 个字符")
        if p.kind == "choice" and value not in {c[0] for c in p.choices}:
            raise InvalidInput(f"参数 {p.name} 无效: {value}(可选: {', '.join(c[0] for c in p.choices)})",
                               code=ErrorCode.HOLD_REASON_RESERVED if p.name == "reason" and value in HoldReason.values
                               else ErrorCode.INVALID)
        if p.kind in ("warehouse", "any_warehouse"):
            warehouse = Warehouse.objects.filter(code=value).first()
            if warehouse is None or not actor.scope.allows_warehouse(warehouse.pk):
                raise InvalidInput(f"未知仓库: {value}")
            params[p.name] = warehouse
    return TRANSITION_SERVICES[name](order=order, actor=actor, **params)
