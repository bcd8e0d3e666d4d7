"""Packing by scan (扫码装箱, issue 15): what the phone page on the warehouse floor does.

A *pack unit* is what goes into one box:
- a batch parcel (`Parcel`, from `orders.batches`): every member order's open shipment in
  that warehouse (key ``P<parcel id>``; a member cancelled after the batch was built is
  left out, as on the packing list);
- or an open shipment that is in no batch (e.g. prepared with `shipment_create`; key
  ``S<shipment id>``).

The flow: scan (or type) an order number, a parcel code or a tracking number → the unit's
lines; scan each SKU barcode (or SKU code), or type a quantity; `pack_scan` counts them
into a *progress* dict the caller keeps (the page keeps it in the session), refusing an
unknown barcode, a SKU that is not in the box and a count beyond the line's quantity.
`unit_pack` then packs only when every line, gift lines included, is complete: each
shipment → packed, each allocated order → packed (`order_pack`: its public "packed"
event, lead-time reservations confirmed), plus an internal timeline note per order saying
the box was checked by scan. Scanning the box's tracking number (or giving carrier +
tracking number when it has none) ships it: `unit_ship` calls the order ship service for
each order with the scanned shipment (reservations consumed through the stock ledger,
shipment shipped, order shipped or partially shipped).

Permissions: `orders.pack_order` to scan and pack, `orders.ship_order` to ship (仓管 and
主管 hold both). Scope: only units of warehouses the person may see; anything else reads
as "not this warehouse's parcel or unknown" (its existence is never revealed). Every
refusal is a `DomainError` and changes nothing; packing or shipping a unit a second time
changes nothing either (the result says it was already done).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from config.actors import Actor
from config.errors import InvalidInput, NotFound, NotPermitted, TransitionNotAllowed
from inventory.models import Sku, StockLevel, Warehouse
from orders import events, services
from orders.models import (EventKind, Order, OrderEvent, OrderStatus, Parcel, ParcelOrder, Shipment, ShipmentLine,
                           ShipmentStatus)

PACK_PERMISSION = "orders.pack_order"
SHIP_PERMISSION = "orders.ship_order"
SH = ShipmentStatus
UNPACKED = (SH.CREATED, SH.PICKED)
OPEN = (SH.CREATED, SH.PICKED, SH.PACKED)
LEFT_OUT = (OrderStatus.CANCELLED,)  # a merged parcel's cancelled member is not packed
BLOCKING = (OrderStatus.ON_HOLD, OrderStatus.CANCELLED)
MAX_QUANTITY = 9999
LIST_LIMIT = 200


class State:
    TO_PACK = "to_pack"
    PACKED = "packed"
    SHIPPED = "shipped"
    BLOCKED = "blocked"


# --- the unit ----------------------------------------------------------------------------------
@dataclass
class PackLine:
    id: int  # the ShipmentLine
    order_number: str
    sku_id: int | None
    sku_code: str
    barcode: str
    title: str
    quantity: int
    is_gift: bool
    location: str
    scanned: int = 0

    @property
    def done(self) -> bool:
        return self.scanned >= self.quantity

    @property
    def missing(self) -> int:
        return max(self.quantity - self.scanned, 0)


@dataclass
class PackUnit:
    key: str
    code: str
    warehouse_id: int | None
    warehouse_name: str
    batch_number: str
    created_at: datetime | None
    orders: list[Order]
    shipments: list[Shipment]
    state: str
    blocked_reason: str = ""
    lines: list[PackLine] = field(default_factory=list)

    @property
    def order_numbers(self) -> list[str]:
        return [o.number for o in self.orders]

    @property
    def tracking_numbers(self) -> list[str]:
        return sorted({s.tracking_number for s in self.shipments if s.tracking_number})

    @property
    def carrier(self) -> str:
        return next((s.carrier for s in self.shipments if s.carrier), "")

    @property
    def total(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def scanned(self) -> int:
        return sum(min(line.scanned, line.quantity) for line in self.lines)

    @property
    def complete(self) -> bool:
        return bool(self.lines) and all(line.done for line in self.lines)

    @property
    def gift_count(self) -> int:
        return sum(line.quantity for line in self.lines if line.is_gift)


def _require(actor: Actor, perm: str, what: str) -> None:
    if not actor.can(perm):
        raise NotPermitted(_("%(user)s 没有权限%(what)s") % {"user": actor.label, "what": what})


def _not_here(code: str) -> NotFound:
    return NotFound(_("不是本仓的包裹或编号未知:%(code)s") % {"code": code})


def pack_warehouses(*, actor: Actor) -> list[Warehouse]:
    """The warehouses this person may pack for (their scope; everyone active when unlimited)."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    qs = Warehouse.objects.filter(is_active=True)
    if actor.scope.warehouse_ids is not None:
        qs = Warehouse.objects.filter(pk__in=actor.scope.warehouse_ids)
    return list(qs.order_by("priority", "id"))


def _state(orders: list[Order], shipments: list[Shipment]) -> tuple[str, str]:
    for o in orders:
        if o.status in BLOCKING:
            return State.BLOCKED, (_("订单 %(number)s 已挂起,不能装箱或发货") if o.status == OrderStatus.ON_HOLD
                                   else _("订单 %(number)s 已取消,不能装箱或发货")) % {"number": o.number}
    statuses = {s.status for s in shipments}
    if not shipments or not statuses & set(OPEN):
        return State.SHIPPED, ""
    if statuses & set(UNPACKED):
        return State.TO_PACK, ""
    return State.PACKED, ""


def _assemble(key: str, code: str, warehouse: Warehouse | None, batch_number: str, created_at,
              members: list[tuple[Order, Shipment]]) -> PackUnit:
    kept = [(o, s) for o, s in members if o.status not in LEFT_OUT] or members
    orders = [o for o, _s in kept]
    shipments = [s for _o, s in kept]
    state, reason = _state(orders, shipments)
    return PackUnit(key=key, code=code, warehouse_id=warehouse.pk if warehouse else None,
                    warehouse_name=warehouse.name if warehouse else "", batch_number=batch_number,
                    created_at=created_at, orders=orders, shipments=shipments, state=state, blocked_reason=reason)


def _with_lines(unit: PackUnit) -> PackUnit:
    """The lines still to be packed (those of the unpacked shipments), gifts last."""
    shipment_ids = [s.pk for s in unit.shipments if s.status in (UNPACKED if unit.state == State.TO_PACK else OPEN)]
    rows = list(ShipmentLine.objects.filter(shipment_id__in=shipment_ids).select_related(
        "order_line", "order_line__sku", "shipment__order").order_by("order_line__is_gift", "shipment_id", "id"))
    sku_ids = {r.order_line.sku_id for r in rows if r.order_line.sku_id}
    locations = dict(StockLevel.objects.filter(warehouse_id=unit.warehouse_id, sku_id__in=sku_ids).values_list(
        "sku_id", "location")) if unit.warehouse_id else {}
    unit.lines = [PackLine(
        id=r.pk, order_number=r.shipment.order.number, sku_id=r.order_line.sku_id,
        sku_code=r.order_line.sku.code if r.order_line.sku else "", barcode=r.order_line.sku.barcode if r.order_line.sku
        else "", title=r.order_line.title, quantity=r.quantity, is_gift=r.order_line.is_gift,
        location=locations.get(r.order_line.sku_id, "")) for r in rows]
    return unit


def _unit_of_parcel(parcel: Parcel, *, lock: bool = False) -> PackUnit:
    members = list(ParcelOrder.objects.filter(parcel=parcel, shipment__isnull=False).select_related(
        "order", "shipment").order_by("order_id"))
    if lock:
        locked = {o.pk: o for o in Order.objects.select_for_update(of=("self",)).filter(
            pk__in=[m.order_id for m in members]).order_by("pk")}
        shipments = {s.pk: s for s in Shipment.objects.select_for_update().filter(
            pk__in=[m.shipment_id for m in members]).order_by("pk")}
        pairs = [(locked[m.order_id], shipments[m.shipment_id]) for m in members]
    else:
        pairs = [(m.order, m.shipment) for m in members]
    return _assemble(f"P{parcel.pk}", parcel.code, parcel.warehouse, parcel.batch.number, parcel.batch.created_at,
                     pairs)


def _unit_of_shipment(shipment: Shipment, *, lock: bool = False) -> PackUnit:
    order = shipment.order
    if lock:
        order = Order.objects.select_for_update(of=("self",)).get(pk=shipment.order_id)
        shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
    code = shipment.tracking_number or order.number
    return _assemble(f"S{shipment.pk}", code, shipment.warehouse, "", shipment.created_at, [(order, shipment)])


def _in_scope(unit: PackUnit, actor: Actor) -> bool:
    scope = actor.scope
    if not scope.allows_warehouse(unit.warehouse_id):
        return False
    return all(scope.allows_shop(o.shop_id) for o in unit.orders)


def _load(key: str, *, lock: bool = False) -> PackUnit | None:
    kind, pk = (key or "")[:1], (key or "")[1:]
    if not pk.isdigit():
        return None
    if kind == "P":
        parcel = Parcel.objects.select_related("batch", "warehouse").filter(pk=int(pk)).first()
        return _unit_of_parcel(parcel, lock=lock) if parcel else None
    if kind == "S":
        shipment = Shipment.objects.select_related("order", "warehouse").filter(
            pk=int(pk), parcel_member__isnull=True).first()
        return _unit_of_shipment(shipment, lock=lock) if shipment else None
    return None


def _checked(unit: PackUnit | None, *, actor: Actor, warehouse: Warehouse, code: str) -> PackUnit:
    if unit is None or unit.warehouse_id is None or not _in_scope(unit, actor):
        raise _not_here(code)
    if unit.warehouse_id != warehouse.pk:
        raise InvalidInput(_("包裹 %(code)s 属于 %(warehouse)s,不是当前仓库的包裹;请先切换仓库") % {
            "code": unit.code, "warehouse": unit.warehouse_name})
    return unit


def unit_get(*, key: str, actor: Actor, warehouse: Warehouse) -> PackUnit:
    """One unit by its key, with its lines (404 outside the person's scope)."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    return _with_lines(_checked(_load(key), actor=actor, warehouse=warehouse, code=key))


def _unit_of_order_shipment(shipment: Shipment) -> PackUnit:
    member = ParcelOrder.objects.filter(shipment=shipment).select_related("parcel", "parcel__batch",
                                                                           "parcel__warehouse").first()
    return _unit_of_parcel(member.parcel) if member else _unit_of_shipment(shipment)


def unit_find(*, code: str, actor: Actor, warehouse: Warehouse) -> PackUnit:
    """The unit a scanned code names: a parcel code, an order number or a tracking number.
    Several candidates (an order with parcels in two warehouses): the one of this warehouse,
    still open, wins."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    code = (code or "").strip()
    if not code or len(code) > 64:
        raise InvalidInput(_("请扫描或输入订单号、包裹号或运单号"))
    parcel = Parcel.objects.select_related("batch", "warehouse").filter(code__iexact=code).first()
    if parcel is not None:
        return _with_lines(_checked(_unit_of_parcel(parcel), actor=actor, warehouse=warehouse, code=code))
    shipments = list(Shipment.objects.select_related("order", "warehouse").filter(
        Q(order__number__iexact=code) | Q(tracking_number__iexact=code)).order_by("-id")[:20])
    if not shipments:
        raise _not_here(code)
    units = [_unit_of_order_shipment(s) for s in shipments]
    units = [u for u in units if _in_scope(u, actor)]
    if not units:
        raise _not_here(code)
    rank = {State.TO_PACK: 0, State.PACKED: 1, State.BLOCKED: 2, State.SHIPPED: 3}
    units.sort(key=lambda u: (u.warehouse_id != warehouse.pk, rank[u.state]))
    return _with_lines(_checked(units[0], actor=actor, warehouse=warehouse, code=code))


# --- the list ----------------------------------------------------------------------------------
@dataclass
class PackBoard:
    warehouse: Warehouse
    to_pack: list[PackUnit]
    packed: list[PackUnit]
    shipped_today: int


def pack_board(*, actor: Actor, warehouse: Warehouse, now: datetime | None = None) -> PackBoard:
    """The warehouse's boxes waiting to be packed (today's batches and anything older still
    open) and those packed but not shipped yet; parcels only of orders the person may see."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    if not actor.scope.allows_warehouse(warehouse.pk):
        raise _not_here(warehouse.code)
    now = now or timezone.now()
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    open_shipments = Shipment.objects.filter(warehouse=warehouse, status__in=OPEN)
    if actor.scope.shop_ids is not None:
        open_shipments = open_shipments.filter(order__shop_id__in=actor.scope.shop_ids)
    parcel_ids = set(ParcelOrder.objects.filter(shipment__in=open_shipments).values_list("parcel_id", flat=True))
    members: dict[int, list[tuple[Order, Shipment]]] = defaultdict(list)
    for m in ParcelOrder.objects.filter(parcel_id__in=parcel_ids, shipment__isnull=False).select_related(
            "order", "shipment").order_by("order_id"):
        members[m.parcel_id].append((m.order, m.shipment))
    units = [_assemble(f"P{p.pk}", p.code, p.warehouse, p.batch.number, p.batch.created_at, members[p.pk])
             for p in Parcel.objects.select_related("batch", "warehouse").filter(pk__in=parcel_ids).order_by(
                 "batch__created_at", "position", "id")]
    units += [_unit_of_shipment(s) for s in open_shipments.filter(parcel_member__isnull=True).select_related(
        "order", "warehouse").order_by("created_at", "id")]
    units = [u for u in units if _in_scope(u, actor)
             and not all(o.status == OrderStatus.CANCELLED for o in u.orders)]
    to_pack = [u for u in units if u.state in (State.TO_PACK, State.BLOCKED)]
    packed = [u for u in units if u.state == State.PACKED]
    line_counts: dict[int, int] = defaultdict(int)
    for shipment_id, quantity in ShipmentLine.objects.filter(
            shipment_id__in=[s.pk for u in units for s in u.shipments]).values_list("shipment_id", "quantity"):
        line_counts[shipment_id] += quantity
    for u in units:
        u.item_count = sum(line_counts[s.pk] for s in u.shipments)  # type: ignore[attr-defined]
    shipped_today = Shipment.objects.filter(warehouse=warehouse, shipped_at__gte=start,
                                            shipped_at__lt=start + timedelta(days=1)).count()
    return PackBoard(warehouse=warehouse, to_pack=to_pack[:LIST_LIMIT], packed=packed[:LIST_LIMIT],
                     shipped_today=shipped_today)


# --- scanning goods (no database change: the progress lives with the caller) -------------------
def new_progress() -> dict:
    return {"seq": 0, "counts": {}}


def apply_progress(unit: PackUnit, progress: dict | None) -> PackUnit:
    counts = (progress or {}).get("counts") or {}
    for line in unit.lines:
        line.scanned = int(counts.get(str(line.id), 0))
    return unit


def _sku_matches(code: str) -> list[Sku]:
    return list(Sku.objects.filter(Q(barcode=code) | Q(code__iexact=code)).order_by("id"))


def pack_scan(*, unit: PackUnit, progress: dict, code: str, quantity: int = 1, actor: Actor) -> tuple[dict, str]:
    """Count one scan (or `quantity` of one SKU) into `progress`. Returns the new progress and
    a confirmation; a wrong barcode, a SKU not in this box, or more than the box needs is
    refused (`InvalidInput`) and the progress is left as it was."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    code = (code or "").strip()
    if unit.state != State.TO_PACK:
        raise TransitionNotAllowed(_unit_refusal(unit))
    if not code:
        raise InvalidInput(_("请扫描商品条码或输入 SKU 编码"))
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(_("数量必须是 1 到 %(max)s 之间的整数") % {"max": MAX_QUANTITY})
    apply_progress(unit, progress)
    skus = _sku_matches(code)
    if not skus:
        raise InvalidInput(_("未知条码:%(code)s,不是任何商品的条码或 SKU 编码") % {"code": code})
    sku_ids = {s.pk for s in skus}
    lines = [line for line in unit.lines if line.sku_id in sku_ids]
    if not lines:
        raise InvalidInput(_("商品 %(sku)s(%(name)s)不在本包裹中,请勿装入") % {"sku": skus[0].code,
                                                                           "name": skus[0].name})
    wanted = sum(line.quantity for line in lines)
    have = sum(line.scanned for line in lines)
    if have + quantity > wanted:
        raise InvalidInput(_("数量超出:%(sku)s 本包裹共 %(wanted)s 件,已扫 %(have)s 件,不能再加 %(quantity)s 件") % {
            "sku": lines[0].sku_code, "wanted": wanted, "have": have, "quantity": quantity})
    counts = dict(progress.get("counts") or {})
    left = quantity
    for line in lines:  # paid lines first, gift lines last (the unit's order)
        take = min(line.missing, left)
        if take:
            counts[str(line.id)] = line.scanned + take
            left -= take
    new = {"seq": int(progress.get("seq", 0)) + 1, "counts": counts}
    return new, _("已扫 %(sku)s × %(quantity)s(%(have)s/%(wanted)s)") % {
        "sku": lines[0].sku_code, "quantity": quantity, "have": have + quantity, "wanted": wanted}


@dataclass
class Scan:
    kind: str  # "counted" (a SKU counted into the progress) or "open" (the code names another box)
    progress: dict
    message: str = ""
    key: str = ""


def unit_scan(*, unit: PackUnit, progress: dict, code: str, quantity: int = 1, actor: Actor,
              warehouse: Warehouse) -> Scan:
    """What a scan on an open box means: a SKU of the box is counted; an order number, parcel
    code or tracking number opens that box; anything else is refused."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    code = (code or "").strip()
    if not code:
        raise InvalidInput(_("请扫描商品条码或输入 SKU 编码"))
    if _sku_matches(code):
        new, message = pack_scan(unit=unit, progress=progress, code=code, quantity=quantity, actor=actor)
        return Scan("counted", new, message)
    try:
        other = unit_find(code=code, actor=actor, warehouse=warehouse)
    except NotFound:
        raise InvalidInput(_("未知编号:%(code)s(不是商品条码或 SKU 编码,也不是本仓的订单号、包裹号或运单号)") % {
            "code": code}) from None
    return Scan("open", progress, message=_("已是当前包裹") if other.key == unit.key else "", key=other.key)


def _unit_refusal(unit: PackUnit) -> str:
    if unit.state == State.BLOCKED:
        return unit.blocked_reason
    if unit.state == State.PACKED:
        return _("包裹 %(code)s 已装箱,请扫描运单号发货") % {"code": unit.code}
    return _("包裹 %(code)s 已发货,无需再装箱") % {"code": unit.code}


def missing_lines(unit: PackUnit) -> list[PackLine]:
    return [line for line in unit.lines if not line.done]


# --- packing and shipping (state changes) -------------------------------------------------------
@dataclass
class Outcome:
    unit: PackUnit
    changed: bool
    message: str


@transaction.atomic
def unit_pack(*, key: str, actor: Actor, warehouse: Warehouse, progress: dict,
              at: datetime | None = None) -> Outcome:
    """确认装箱: pack every shipment of the unit, and each allocated order with it — only when the
    progress shows every line (gift lines too) complete. Already packed: nothing changes."""
    _require(actor, PACK_PERMISSION, _("扫码装箱"))
    at = at or timezone.now()
    unit = _with_lines(_checked(_load(key, lock=True), actor=actor, warehouse=warehouse, code=key))
    if unit.state in (State.PACKED, State.SHIPPED):
        return Outcome(unit, False, _("包裹 %(code)s 已装箱,未重复操作") % {"code": unit.code})
    if unit.state == State.BLOCKED:
        raise TransitionNotAllowed(unit.blocked_reason)
    apply_progress(unit, progress)
    missing = missing_lines(unit)
    if not unit.lines:
        raise InvalidInput(_("包裹 %(code)s 没有待装商品") % {"code": unit.code})
    if missing:
        parts = [(_("赠品 %(sku)s 缺 %(n)s 件") if line.is_gift else _("%(sku)s 缺 %(n)s 件")) % {
            "sku": line.sku_code or line.title, "n": line.missing} for line in missing]
        raise InvalidInput(_("还不能装箱,未扫完:%(lines)s") % {"lines": ";".join(parts)})
    for o in unit.orders:
        if o.status not in (OrderStatus.ALLOCATED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.PACKED):
            raise TransitionNotAllowed(_("订单 %(number)s 当前状态为「%(status)s」,不能装箱") % {
                "number": o.number, "status": o.get_status_display()})
    for s in unit.shipments:
        if s.status in UNPACKED:
            s.pack()
            s.save()
    items, gifts = unit.total, unit.gift_count
    for o in unit.orders:
        if o.status == OrderStatus.ALLOCATED:
            services.order_pack(order=o, actor=actor, at=at)
        OrderEvent.objects.create(**events.event_fields(
            order=Order.objects.get(pk=o.pk), kind=EventKind.NOTE, actor=actor, at=at,
            message=f"扫码装箱:{unit.code},{items} 件" + (f"(含赠品 {gifts} 件)" if gifts else ""),
            data={"via": "scan", "action": "packed", "parcel": unit.code,
                  "shipments": [s.pk for s in unit.shipments if s.order_id == o.pk]}))
    return Outcome(unit, True, _("包裹 %(code)s 已装箱(%(items)s 件)") % {"code": unit.code, "items": items})


@transaction.atomic
def unit_ship(*, key: str, actor: Actor, warehouse: Warehouse, tracking_number: str, carrier: str = "",
              at: datetime | None = None) -> Outcome:
    """Ship a packed unit on its tracking number: the scanned number must be the box's own, or
    (a box without one yet) carrier + tracking number are given and must not belong to another
    parcel. Already shipped: nothing changes."""
    _require(actor, SHIP_PERMISSION, _("扫码发货"))
    at = at or timezone.now()
    unit = _checked(_load(key, lock=True), actor=actor, warehouse=warehouse, code=key)
    if unit.state == State.SHIPPED:
        return Outcome(unit, False, _("包裹 %(code)s 已发货,未重复操作") % {"code": unit.code})
    if unit.state == State.BLOCKED:
        raise TransitionNotAllowed(unit.blocked_reason)
    if unit.state == State.TO_PACK:
        raise TransitionNotAllowed(_("包裹 %(code)s 还没有装箱,请先扫码装箱") % {"code": unit.code})
    carrier, tracking_number = services._ship_codes(carrier, tracking_number)
    if not tracking_number:
        raise InvalidInput(_("请扫描运单号"))
    known = {t.upper() for t in unit.tracking_numbers}
    if known:
        if tracking_number.upper() not in known:
            raise InvalidInput(_("运单号 %(number)s 不是本包裹的运单号") % {"number": tracking_number})
        carrier = unit.carrier or carrier
        tracking_number = next(t for t in unit.tracking_numbers if t.upper() == tracking_number.upper())
    else:
        if not carrier:
            raise InvalidInput(_("本包裹还没有运单号:请选择快递公司并扫描运单号"))
        ours = [s.pk for s in unit.shipments]
        if Shipment.objects.filter(tracking_number__iexact=tracking_number).exclude(pk__in=ours).exists():
            raise InvalidInput(_("运单号 %(number)s 已用于其他包裹") % {"number": tracking_number})
    for o in unit.orders:
        if o.status not in (OrderStatus.PACKED, OrderStatus.PARTIALLY_SHIPPED):
            raise TransitionNotAllowed(_("订单 %(number)s 当前状态为「%(status)s」,不能发货") % {
                "number": o.number, "status": o.get_status_display()})
    for o, s in zip(unit.orders, unit.shipments):
        if s.status != SH.PACKED:
            continue
        s.carrier, s.tracking_number = carrier or s.carrier, tracking_number
        services._ship_locked(o, actor=actor, warehouse=warehouse, carrier=s.carrier, tracking_number=tracking_number,
                              at=at, parcel=s)
    return Outcome(unit, True, _("包裹 %(code)s 已发货(%(carrier)s %(number)s)") % {
        "code": unit.code, "carrier": carrier, "number": tracking_number})


__all__ = ["PACK_PERMISSION", "SHIP_PERMISSION", "State", "PackUnit", "PackLine", "PackBoard", "Outcome",
           "pack_warehouses", "pack_board", "unit_find", "unit_get", "pack_scan", "apply_progress", "new_progress",
           "missing_lines", "unit_scan", "Scan", "unit_pack", "unit_ship"]
