"""Order write side: one function per business action.

Each service is atomic, locks the order row, checks the actor's permission (the same
`permission=` the FSM transition carries), calls the transition (state only), moves stock
through `inventory.services`, writes one timeline event and notifies after commit.
Admin, API, jobs, imports and the portal all come through here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable

import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition, can_proceed

from config import notify
from config.actors import Actor
from inventory import services as inventory
from inventory.models import Reservation, Sku, SkuMapping, Warehouse
from orders import events
from config.errors import ConcurrentUpdate, InvalidInput, NotPermitted, TransitionNotAllowed, UnknownTransition
from orders.models import Customer, HoldReason, Order, OrderLine, OrderStatus, Shop
from orders.platforms.base import NormalizedOrder

TRANSITION_LABELS = {
    "pay": _("确认付款"),
    "allocate": _("分仓预占"),
    "hold": _("挂起"),
    "release": _("解除挂起"),
    "pack": _("打包"),
    "ship": _("发货"),
    "deliver": _("确认签收"),
    "complete": _("完成"),
    "cancel": _("取消"),
    "mark_returned": _("标记退货"),
}


def transition_permission(name: str) -> str | None:
    """The `permission=` declared on the Order transition `name`."""
    meta = getattr(getattr(Order, name, None), "_django_fsm", None)
    if meta is None:
        raise UnknownTransition(f"未知的操作: {name}")
    return next(iter(meta.transitions.values())).permission


def available_transitions(*, order: Order, actor: Actor) -> list[str]:
    """The transitions `actor` may take from the order's current state (for buttons)."""
    return [
        name for name in TRANSITION_LABELS
        if can_proceed(getattr(order, name), check_conditions=True) and actor.can(transition_permission(name))
    ]


# --- plumbing -----------------------------------------------------------------------------
def _lock(order: Order) -> Order:
    try:
        # of=("self",): lock the order row only; FOR UPDATE over the join would also lock the
        # shop row and so serialise every order of a shop (and block new orders' FK checks).
        return Order.objects.select_for_update(of=("self",)).select_related("shop").get(pk=order.pk)
    except Order.DoesNotExist as exc:
        raise InvalidInput("订单不存在", code="not_found") from exc


def _check(order: Order, name: str, actor: Actor) -> None:
    if not actor.can(transition_permission(name)):
        raise NotPermitted(f"{actor.label} 没有权限对订单「{TRANSITION_LABELS[name]}」")
    if not can_proceed(getattr(order, name)):
        raise TransitionNotAllowed(
            f"订单 {order.number} 当前状态为「{order.get_status_display()}」,不能{TRANSITION_LABELS[name]}"
        )


def _save(order: Order, fields: list[str]) -> None:
    try:
        order.save(update_fields=[*fields, "updated_at"])
    except ConcurrentTransition as exc:
        raise ConcurrentUpdate(f"订单 {order.number} 已被他人修改,请刷新后重试") from exc


def _after_commit(order: Order, kind: str, message: str = "") -> None:
    order_id = order.pk
    transaction.on_commit(lambda: notify.order_changed(order_id, kind=kind, message=message))


def _do(order: Order, name: str, actor: Actor, *, kind: str | None = None, message: str = "",
        fields: tuple[str, ...] = (), data: dict | None = None, at: datetime | None = None,
        before: Callable[[Order], None] | None = None, **kwargs) -> Order:
    """Lock, check, transition, save, record: the shape every simple service shares."""
    order = _lock(order)
    _check(order, name, actor)
    from_status = order.status
    if before is not None:
        before(order)
    getattr(order, name)(**kwargs)
    _save(order, ["status", *fields])
    events.order_transitioned(order=order, kind=kind or order.status, from_status=from_status, actor=actor,
                              message=message, data=data, at=at)
    _after_commit(order, kind or order.status, message)
    return order


# --- customers and creation ---------------------------------------------------------------
def normalize_phone(raw: str, region: str = "CN") -> str:
    """E.164 for a valid number, '' for an empty or masked one (e.g. '138****5678')."""
    raw = (raw or "").strip()
    if not raw or "*" in raw:
        return ""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def customer_for(*, phone: str, name: str = "", region: str = "CN") -> Customer | None:
    normalized = normalize_phone(phone, region)
    if not normalized:
        return None
    customer = Customer.objects.filter(phone=normalized).order_by("id").first()
    if customer is None:
        customer = Customer.objects.create(phone=normalized, name=name)
    return customer


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


@transaction.atomic
def order_create(*, shop: Shop, data: NormalizedOrder, actor: Actor, at: datetime | None = None) -> Order:
    """Store a new order from any channel. Paid orders are marked paid; an order with no
    lines or an unmapped SKU is stored and put on hold with the reason, never dropped."""
    if not data.platform_order_id:
        raise InvalidInput("缺少平台订单号")
    if Order.objects.filter(shop=shop, platform_order_id=data.platform_order_id).exists():
        raise InvalidInput(f"订单已存在: {shop.code} {data.platform_order_id}", code="duplicate")
    for i, line in enumerate(data.lines, start=1):
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) or line.quantity <= 0:
            raise InvalidInput(f"第 {i} 行数量必须是正整数(收到 {line.quantity!r})")
    at = at or timezone.now()
    customer = customer_for(phone=data.buyer_phone or data.receiver_phone, name=data.buyer_name or data.receiver_name,
                            region=data.country or "CN")
    try:
        with transaction.atomic():
            order = Order.objects.create(
                shop=shop, platform_order_id=data.platform_order_id, customer=customer,
                platform_status=data.platform_status, currency=data.currency or shop.currency,
                goods_amount=_money(data.goods_amount, "商品金额"), discount_amount=_money(data.discount_amount, "优惠金额"),
                shipping_fee=_money(data.shipping_fee, "运费"), paid_amount=_money(data.paid_amount, "实付金额"),
                receiver_name=data.receiver_name, receiver_phone=data.receiver_phone, country=data.country or "CN",
                province=data.province, city=data.city, district=data.district, address=data.address,
                postcode=data.postcode, is_presale=data.is_presale, promised_ship_at=data.promised_ship_at,
                source_detail=data.source_detail, coupon_codes=list(data.coupon_codes), member_level=data.member_level,
                is_vip=data.is_vip, buyer_note=data.buyer_note, seller_note=data.seller_note,
                invoice_title=data.invoice_title, invoice_tax_number=data.invoice_tax_number, tags=list(data.tags),
                placed_at=data.placed_at or at, platform_updated_at=data.platform_updated_at, raw=data.raw,
            )
    except IntegrityError as exc:
        raise InvalidInput(f"订单已存在: {shop.code} {data.platform_order_id}", code="duplicate") from exc
    OrderLine.objects.bulk_create([
        OrderLine(order=order, sku=_resolve_sku(shop, line), platform_sku_id=line.platform_sku_id, title=line.title[:255],
                  quantity=line.quantity, unit_price=_money(line.unit_price, "单价"),
                  discount_amount=_money(line.discount_amount, "行优惠"), is_gift=line.is_gift)
        for line in data.lines
    ])
    events.order_created(order=order, actor=actor, at=data.placed_at or at)
    if data.paid:
        order = order_pay(order=order, actor=actor, at=data.paid_at or at)
    return order


# --- the lifecycle ------------------------------------------------------------------------
@transaction.atomic
def order_pay(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    at = at or timezone.now()

    def stamp(o: Order) -> None:
        o.paid_at = o.paid_at or at
        if o.promised_ship_at is None and not o.is_presale:
            o.promised_ship_at = o.paid_at + timedelta(hours=o.shop.ship_within_hours)

    order = _do(order, "pay", actor, kind="paid", fields=("paid_at", "promised_ship_at"), at=at, before=stamp)
    if not order.lines.exists():
        order = _hold_locked(order, actor=actor, reason=HoldReason.NO_LINES, note="订单没有商品行", at=at)
    elif order.lines.filter(sku__isnull=True).exists():
        unmapped = ", ".join(order.lines.filter(sku__isnull=True).values_list("platform_sku_id", flat=True)[:5])
        order = _hold_locked(order, actor=actor, reason=HoldReason.SKU_UNMAPPED, note=f"未映射的平台 SKU: {unmapped}", at=at)
    return order


@transaction.atomic
def order_allocate(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Reserve stock by the routing rules. Short stock or an unmapped SKU puts the order
    on hold with the reason and reserves nothing; the call itself still succeeds."""
    order = _lock(order)
    _check(order, "allocate", actor)
    at = at or timezone.now()
    # Read the lines (with their SKUs) once: the checks below and the allocation share them.
    lines = list(order.lines.select_related("sku"))
    if not lines:
        return _hold_locked(order, actor=actor, reason=HoldReason.NO_LINES, note="订单没有商品行", at=at)
    if any(line.sku_id is None for line in lines):
        return _hold_locked(order, actor=actor, reason=HoldReason.SKU_UNMAPPED, note="存在未映射的 SKU", at=at)
    result = inventory.allocate_order(order=order, actor=actor, at=at, lines=lines)
    if not result.ok:
        return _hold_locked(order, actor=actor, reason=HoldReason.STOCK_SHORT, note=result.shortage_text(), at=at)
    from_status = order.status
    order.allocate()
    order.hold_reason, order.hold_note = "", ""
    _save(order, ["status", "hold_reason", "hold_note"])
    names = "、".join(w.name for w in result.warehouses)
    events.order_transitioned(
        order=order, kind="allocated", from_status=from_status, actor=actor, at=at,
        message=f"分配至 {names}" + ("(拆单)" if len(result.warehouses) > 1 else ""),
        data={"warehouses": [w.code for w in result.warehouses],
              "reservations": [[r.order_line_id, r.stock_level.warehouse.code, r.quantity] for r in result.reservations],
              "rules": {str(k): v for k, v in result.rules.items()}},
    )
    _after_commit(order, "allocated")
    return order


def _hold_locked(order: Order, *, actor: Actor, reason: str, note: str = "", at: datetime | None = None) -> Order:
    """Hold an order whose row this transaction already locked (the system may always hold
    for a data reason, e.g. stock short, even when the person who triggered it may not)."""
    if not can_proceed(order.hold):
        raise TransitionNotAllowed(f"订单 {order.number} 当前状态为「{order.get_status_display()}」,不能挂起")
    from_status = order.status
    order.hold()
    order.hold_reason, order.hold_note = reason, note[:255]
    _save(order, ["status", "hold_reason", "hold_note"])
    label = HoldReason(reason).label if reason in HoldReason.values else reason
    events.order_transitioned(order=order, kind="held", from_status=from_status, actor=actor, at=at,
                              message=f"挂起: {label}" + (f"({note})" if note else ""), data={"reason": reason})
    _after_commit(order, "held", str(label))
    return order


@transaction.atomic
def order_hold(*, order: Order, actor: Actor, reason: str = HoldReason.MANUAL, note: str = "",
               at: datetime | None = None) -> Order:
    if reason not in HoldReason.values:
        raise InvalidInput(f"未知的挂起原因: {reason}")
    order = _lock(order)
    _check(order, "hold", actor)
    return _hold_locked(order, actor=actor, reason=reason, note=note, at=at)


@transaction.atomic
def order_release(*, order: Order, actor: Actor, note: str = "", at: datetime | None = None) -> Order:
    """Lift a hold: back to allocated if stock is still reserved, else to paid."""
    order = _lock(order)
    _check(order, "release", actor)
    reserved = Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE).exists()
    from_status, reason = order.status, order.hold_reason
    order.release(to_allocated=reserved)
    order.hold_reason, order.hold_note = "", ""
    _save(order, ["status", "hold_reason", "hold_note"])
    events.order_transitioned(order=order, kind="released", from_status=from_status, actor=actor, at=at,
                              message="解除挂起" + (f": {note}" if note else ""), data={"previous_reason": reason})
    _after_commit(order, "released")
    return order


@transaction.atomic
def order_pack(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Packed: lead-time reservations are now backed by goods in hand, so they stop expiring."""
    def confirm(o: Order) -> None:
        Reservation.objects.filter(order_line__order=o, status=Reservation.Status.ACTIVE).update(expires_at=None)

    return _do(order, "pack", actor, kind="packed", at=at, before=confirm)


@transaction.atomic
def order_ship(*, order: Order, actor: Actor, warehouse: Warehouse | None = None, carrier: str = "",
               tracking_number: str = "", at: datetime | None = None) -> Order:
    """Goods left a warehouse (or all of them): consume those reservations. The order is
    partially shipped while another warehouse still holds reserved stock for it."""
    order = _lock(order)
    _check(order, "ship", actor)
    at = at or timezone.now()
    consumed = inventory.consume_order_reservations(order=order, actor=actor, at=at, warehouse=warehouse)
    if warehouse is not None and not consumed:
        raise InvalidInput(f"订单 {order.number} 在 {warehouse.name} 没有待发货的预占", code="nothing_to_ship")
    remaining = Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE).exists()
    from_status = order.status
    order.ship(complete=not remaining)
    _save(order, ["status"])
    where = f"{warehouse.name} " if warehouse else ""
    message = f"{where}已发货" + (f",{carrier} {tracking_number}" if tracking_number else "")
    events.order_transitioned(order=order, kind=order.status, from_status=from_status, actor=actor, at=at,
                              message=message, data={"warehouse": warehouse.code if warehouse else None,
                                                     "carrier": carrier, "tracking_number": tracking_number})
    _after_commit(order, order.status)
    return order


@transaction.atomic
def order_deliver(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    return _do(order, "deliver", actor, kind="delivered", at=at)


@transaction.atomic
def order_complete(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    return _do(order, "complete", actor, kind="completed", at=at)


@transaction.atomic
def order_cancel(*, order: Order, actor: Actor, reason: str = "", at: datetime | None = None) -> Order:
    """Cancel before shipping: every active reservation goes back to its pool."""
    def release(o: Order) -> None:
        inventory.release_order_reservations(order=o, actor=actor, reason="订单取消", at=at)
        o.hold_reason, o.hold_note = "", ""

    return _do(order, "cancel", actor, kind="cancelled", at=at, before=release, fields=("hold_reason", "hold_note"),
               message="订单已取消" + (f": {reason}" if reason else ""))


@transaction.atomic
def order_mark_returned(*, order: Order, actor: Actor, reason: str = "", at: datetime | None = None) -> Order:
    return _do(order, "mark_returned", actor, kind="returned", at=at,
               message="已退货退款" + (f": {reason}" if reason else ""))


@transaction.atomic
def order_expire_reservations(*, order: Order, actor: Actor, at: datetime | None = None) -> Order:
    """Lead-time stock not confirmed in time: give everything back and hold the order."""
    order = _lock(order)
    at = at or timezone.now()
    expired = Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE, expires_at__lte=at)
    if not expired.exists():
        return order
    released = inventory.release_order_reservations(order=order, actor=actor, reason="备货预占过期", at=at)
    if order.status == OrderStatus.ALLOCATED:
        order = _hold_locked(order, actor=actor, reason=HoldReason.RESERVATION_EXPIRED,
                             note=f"释放 {sum(r.quantity for r in released)} 件", at=at)
    return order


@transaction.atomic
def order_add_note(*, order: Order, actor: Actor, note: str) -> Order:
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


# --- one entry point for the admin and the API ---------------------------------------------
TRANSITION_SERVICES: dict[str, Callable[..., Order]] = {
    "pay": order_pay,
    "allocate": order_allocate,
    "hold": order_hold,
    "release": order_release,
    "pack": order_pack,
    "ship": order_ship,
    "deliver": order_deliver,
    "complete": order_complete,
    "cancel": order_cancel,
    "mark_returned": order_mark_returned,
}
# Extra arguments each transition accepts from a person (admin form, API body).
TRANSITION_PARAMS = {
    "hold": {"reason", "note"},
    "release": {"note"},
    "ship": {"warehouse", "carrier", "tracking_number"},
    "cancel": {"reason"},
    "mark_returned": {"reason"},
}


def order_transition(*, order: Order, name: str, actor: Actor, params: dict | None = None) -> Order:
    """Run the named transition's service with the parameters it accepts."""
    service = TRANSITION_SERVICES.get(name)
    if service is None:
        raise UnknownTransition(f"未知的操作: {name}")
    params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    unknown = set(params) - TRANSITION_PARAMS.get(name, set())
    if unknown:
        raise InvalidInput(f"操作「{TRANSITION_LABELS[name]}」不接受参数: {', '.join(sorted(unknown))}")
    for key in ("note", "reason", "carrier", "tracking_number"):
        if key in params and not isinstance(params[key], str):
            raise InvalidInput(f"参数 {key} 必须是文本")
    if "warehouse" in params:
        code = params["warehouse"]
        warehouse = Warehouse.objects.filter(code=code).first() if isinstance(code, str) else None
        if warehouse is None:
            raise InvalidInput(f"未知仓库: {code}")
        params["warehouse"] = warehouse
    return service(order=order, actor=actor, **params)
