"""Pick batches: merge (合单), pick lists and packing lists, per warehouse.

A batch (09:00 and 15:00 by default, `ORDERHUB["PICK_BATCH_TIMES"]`, or on demand from the
admin) takes every order of one warehouse that is ready to pick — allocated (or partially
shipped from another warehouse) with active reservations there, and in no batch yet — and:

1. **merges** them into parcels: orders of the same customer, to the same receiver (name,
   phone) and address, all presale or all not, every shop allowing it (`Shop.allow_merge`),
   share one parcel. An order on hold is never allocated, so it is never a candidate.
   Anything else is a parcel of its own.
2. gives each order its open `Shipment` for that warehouse (created here, with the lines
   reserved there), linked through `ParcelOrder` — one per order and warehouse, ever, so a
   later batch never picks the order again.
3. orders the parcels: presale orders flagged for priority (tag in `PRIORITY_TAGS`) first,
   then by promised ship-by time and payment time.

The pick list sums the quantities per SKU and location (`StockLevel.location`), priority
parcels in a section of their own ahead of the rest; a packing list is one slip per parcel
with every line, gifts marked. Printing either marks the batch printed.

A merge is undone (`parcel_unmerge`) while none of its shipments is packed: each order goes
back to a parcel of its own in the same batch.

Permission: `orders.build_pickbatch` (仓管, 运营, 主管) for building, reading, printing and
undoing. A warehouse-scoped person sees only their warehouses' batches (others are 404);
a shop-scoped person sees only their shops' orders in them.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from config.actors import Actor
from config.errors import InvalidInput, NotFound, NotPermitted, TransitionNotAllowed
from inventory.models import Reservation, StockLevel, Warehouse
from orders.models import (Order, OrderStatus, Parcel, ParcelOrder, PickBatch, Shipment, ShipmentLine,
                           ShipmentStatus)
from orders.selectors import masked

PERMISSION = "orders.build_pickbatch"
READY = (OrderStatus.ALLOCATED, OrderStatus.PARTIALLY_SHIPPED)
# A presale order carrying one of these tags is picked first (预售优先发货).
PRIORITY_TAGS = frozenset({"priority", "presale_priority", "优先", "优先发货"})
DEFAULT_TIMES = ("09:00", "15:00")
_SPACE = re.compile(r"\s+")


def batch_times() -> list[str]:
    """The configured daily batch times, "HH:MM" in TIME_ZONE."""
    times = settings.ORDERHUB.get("PICK_BATCH_TIMES") or DEFAULT_TIMES
    if isinstance(times, str):
        times = [t for t in times.replace(";", ",").split(",") if t.strip()]
    out = []
    for t in times:
        hour, minute = (int(x) for x in str(t).strip().split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError(f"PICK_BATCH_TIMES: {t!r}")
        out.append(f"{hour:02d}:{minute:02d}")
    return out


# --- access ------------------------------------------------------------------------------------
def _require(actor: Actor) -> None:
    if not actor.can(PERMISSION):
        raise NotPermitted(f"{actor.label} 没有权限操作拣货批次")


def batch_list(*, actor: Actor) -> QuerySet[PickBatch]:
    """The batches the actor may see (their warehouses only)."""
    _require(actor)
    qs = PickBatch.objects.select_related("warehouse")
    if actor.scope.warehouse_ids is not None:
        qs = qs.filter(warehouse_id__in=actor.scope.warehouse_ids)
    return qs


def batch_get(*, pk, actor: Actor) -> PickBatch:
    batch = batch_list(actor=actor).filter(pk=pk).first()
    if batch is None:
        raise NotFound("拣货批次不存在")
    return batch


# An order cancelled or put on hold after its batch was built is left off the lists (not picked).
OFF_THE_LISTS = (OrderStatus.CANCELLED, OrderStatus.ON_HOLD)


def _members(batch: PickBatch, actor: Actor) -> QuerySet[ParcelOrder]:
    qs = ParcelOrder.objects.filter(parcel__batch=batch).exclude(order__status__in=OFF_THE_LISTS)
    if actor.scope.shop_ids is not None:
        qs = qs.filter(order__shop_id__in=actor.scope.shop_ids)
    return qs


# --- merge -------------------------------------------------------------------------------------
def _norm(value: str) -> str:
    return _SPACE.sub("", value or "").lower()


def merge_key(order: Order, warehouse_id: int):
    """Orders with the same key (never None) share a parcel."""
    if not order.shop.allow_merge or order.customer_id is None:
        return None
    return (warehouse_id, order.customer_id, _norm(order.receiver_name), _norm(order.receiver_phone),
            order.country, _norm(order.province), _norm(order.city), _norm(order.district), _norm(order.address),
            order.is_presale)


def is_priority(order: Order) -> bool:
    return bool(order.is_presale and PRIORITY_TAGS.intersection(order.tags or []))


def _candidates(warehouse: Warehouse) -> list[int]:
    batched = ParcelOrder.objects.filter(warehouse=warehouse).values("order_id")
    return sorted(set(Reservation.objects.filter(
        status=Reservation.Status.ACTIVE, stock_level__warehouse=warehouse,
        order_line__order__status__in=READY).exclude(order_line__order_id__in=batched).values_list(
        "order_line__order_id", flat=True)))


def _batch_number(warehouse: Warehouse, at: datetime) -> str:
    local = timezone.localtime(at)
    base = f"PB-{warehouse.code}-{local:%Y%m%d-%H%M}"
    taken = PickBatch.objects.filter(number__startswith=base).count()
    return base if not taken else f"{base}-{taken + 1}"


@transaction.atomic
def batch_build(*, warehouse: Warehouse, actor: Actor, slot: str = "", at: datetime | None = None) -> PickBatch | None:
    """Build one warehouse's batch now. None when nothing is waiting to be picked."""
    _require(actor)
    if not actor.scope.allows_warehouse(warehouse.pk):
        raise NotFound("仓库不存在")
    at = at or timezone.now()
    warehouse = Warehouse.objects.select_for_update().get(pk=warehouse.pk)  # one build per warehouse at a time
    ids = _candidates(warehouse)
    if not ids:
        return None
    # Lock the orders (ids ascending, as every order service locks), then re-read what is still ready.
    orders = list(Order.objects.select_for_update(of=("self",)).select_related("shop").filter(
        pk__in=ids, status__in=READY).order_by("pk"))
    if not orders:
        return None
    reserved: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for order_id, line_id, quantity in Reservation.objects.filter(
            status=Reservation.Status.ACTIVE, stock_level__warehouse=warehouse,
            order_line__order_id__in=[o.pk for o in orders]).values_list(
            "order_line__order_id", "order_line_id", "quantity"):
        reserved[order_id][line_id] += quantity
    orders = [o for o in orders if reserved.get(o.pk)]

    groups: dict[object, list[Order]] = {}
    for order in orders:
        key = merge_key(order, warehouse.pk)
        groups.setdefault(key if key is not None else ("alone", order.pk), []).append(order)
    far = datetime.max.replace(tzinfo=timezone.get_current_timezone())

    def rank(members: list[Order]):
        return (not any(is_priority(o) for o in members),
                min(o.promised_ship_at or far for o in members), min(o.paid_at or o.placed_at for o in members),
                members[0].pk)

    ordered = sorted(groups.values(), key=rank)
    batch = PickBatch.objects.create(warehouse=warehouse, number=_batch_number(warehouse, at), slot=slot,
                                     created_at=at, created_by=actor.label, order_count=len(orders),
                                     parcel_count=len(ordered))
    parcels = Parcel.objects.bulk_create([Parcel(
        batch=batch, warehouse=warehouse, code=f"{batch.number}-{i:05d}", customer_id=members[0].customer_id,
        is_presale=members[0].is_presale, priority=any(is_priority(o) for o in members), position=i, created_at=at)
        for i, members in enumerate(ordered, start=1)])

    # One open shipment per order here: the one already prepared (e.g. a label printed), else a new one.
    existing = {}
    for shipment in Shipment.objects.filter(order_id__in=[o.pk for o in orders], warehouse=warehouse,
                                            status__in=[ShipmentStatus.CREATED, ShipmentStatus.PICKED],
                                            parcel_member__isnull=True).order_by("id"):
        existing.setdefault(shipment.order_id, shipment)
    from orders.shipping import default_provider

    provider = default_provider()
    new = [Shipment(order=o, warehouse=warehouse, provider=provider, created_at=at)
           for o in orders if o.pk not in existing]
    Shipment.objects.bulk_create(new)
    ShipmentLine.objects.bulk_create([ShipmentLine(shipment=s, order_line_id=line_id, quantity=q)
                                      for s in new for line_id, q in reserved[s.order_id].items()])
    shipment_of = {**existing, **{s.order_id: s for s in new}}
    ParcelOrder.objects.bulk_create([ParcelOrder(parcel=parcel, order=o, warehouse=warehouse,
                                                 shipment=shipment_of[o.pk])
                                     for parcel, members in zip(parcels, ordered) for o in members])
    return batch


@transaction.atomic
def parcel_unmerge(*, parcel: Parcel, actor: Actor) -> list[Parcel]:
    """Undo a merge before packing: every order but the first gets a parcel of its own (same
    batch, same place in it). Refused once any of its shipments is packed or gone."""
    _require(actor)
    if not actor.scope.allows_warehouse(parcel.warehouse_id):
        raise NotFound("包裹不存在")
    order_ids = sorted(ParcelOrder.objects.filter(parcel=parcel).values_list("order_id", flat=True))
    list(Order.objects.select_for_update().filter(pk__in=order_ids).order_by("pk"))
    parcel = Parcel.objects.select_for_update().get(pk=parcel.pk)
    members = list(ParcelOrder.objects.select_related("order", "shipment").filter(parcel=parcel).order_by("id"))
    if len(members) < 2:
        raise InvalidInput(f"包裹 {parcel.code} 不是合并包裹")
    for m in members:
        packed = m.shipment is not None and m.shipment.status not in (ShipmentStatus.CREATED, ShipmentStatus.PICKED)
        if packed or m.order.status not in READY:
            raise TransitionNotAllowed(f"包裹 {parcel.code} 已打包或已发货,不能撤销合单")
    split = []
    for i, m in enumerate(members[1:], start=2):
        new = Parcel.objects.create(batch_id=parcel.batch_id, warehouse_id=parcel.warehouse_id,
                                    code=f"{parcel.code}-{i}", customer_id=m.order.customer_id,
                                    is_presale=m.order.is_presale, priority=is_priority(m.order),
                                    position=parcel.position)
        m.parcel = new
        m.save(update_fields=["parcel"])
        split.append(new)
    parcel.priority = is_priority(members[0].order)
    parcel.save(update_fields=["priority"])
    PickBatch.objects.filter(pk=parcel.batch_id).update(parcel_count=Parcel.objects.filter(
        batch_id=parcel.batch_id).count())
    return [parcel, *split]


def batch_mark_printed(*, batch: PickBatch, actor: Actor, at: datetime | None = None) -> PickBatch:
    """The pick or packing list was printed or downloaded (the first time is kept)."""
    _require(actor)
    if batch.printed_at is None:
        batch.printed_at, batch.printed_by = at or timezone.now(), actor.label
        PickBatch.objects.filter(pk=batch.pk, printed_at__isnull=True).update(
            printed_at=batch.printed_at, printed_by=batch.printed_by)
    return batch


# --- pick list ---------------------------------------------------------------------------------
@dataclass
class PickRow:
    location: str
    sku_code: str
    sku_name: str
    barcode: str
    quantity: int
    orders: int
    priority: bool


def pick_list(*, batch: PickBatch, actor: Actor) -> list[PickRow]:
    """Quantities summed per SKU (and location), priority parcels first, then by location."""
    _require(actor)
    member_ids = _members(batch, actor).values("shipment_id")
    totals: dict[tuple[bool, int], list] = {}
    for sku_id, priority, quantity, order_id in ShipmentLine.objects.filter(shipment_id__in=member_ids).values_list(
            "order_line__sku_id", "shipment__parcel_member__parcel__priority", "quantity", "shipment__order_id"):
        row = totals.setdefault((bool(priority), sku_id), [0, set()])
        row[0] += quantity
        row[1].add(order_id)
    sku_ids = {k[1] for k in totals}
    levels = {sku_id: (loc, code, name, barcode) for sku_id, loc, code, name, barcode in StockLevel.objects.filter(
        warehouse_id=batch.warehouse_id, sku_id__in=sku_ids).values_list(
        "sku_id", "location", "sku__code", "sku__name", "sku__barcode")}
    rows = []
    for (priority, sku_id), (quantity, orders) in totals.items():
        loc, code, name, barcode = levels.get(sku_id, ("", "", "", ""))
        rows.append(PickRow(location=loc, sku_code=code, sku_name=name, barcode=barcode, quantity=quantity,
                            orders=len(orders), priority=priority))
    rows.sort(key=lambda r: (not r.priority, r.location == "", r.location, r.sku_code))
    return rows


# --- packing lists -----------------------------------------------------------------------------
@dataclass
class SlipLine:
    sku_code: str
    title: str
    quantity: int
    is_gift: bool
    order_number: str


@dataclass
class PackingSlip:
    parcel_id: int
    code: str
    priority: bool
    is_presale: bool
    merged: bool
    order_numbers: list[str]
    shops: list[str]
    receiver: str
    phone: str
    address: str
    buyer_notes: list[str]
    lines: list[SlipLine] = field(default_factory=list)

    @property
    def total_quantity(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def gift_count(self) -> int:
        return sum(line.quantity for line in self.lines if line.is_gift)


def packing_lists(*, batch: PickBatch, actor: Actor) -> list[PackingSlip]:
    """One slip per parcel, in pick order; personal data masked for those who may not see it."""
    _require(actor)
    members = list(_members(batch, actor).select_related("parcel", "order", "order__shop").order_by(
        "parcel__position", "parcel_id", "id"))
    lines: dict[int, list] = defaultdict(list)
    for shipment_id, quantity, code, title, is_gift, number in ShipmentLine.objects.filter(
            shipment_id__in=[m.shipment_id for m in members]).values_list(
            "shipment_id", "quantity", "order_line__sku__code", "order_line__title", "order_line__is_gift",
            "shipment__order__number").order_by("order_line__is_gift", "order_line_id"):
        lines[shipment_id].append(SlipLine(sku_code=code or "", title=title, quantity=quantity, is_gift=is_gift,
                                           order_number=number))
    slips: dict[int, PackingSlip] = {}
    for m in members:
        o = m.order
        slip = slips.get(m.parcel_id)
        if slip is None:
            address = " ".join(x for x in (o.province, o.city, o.district, masked(o.address, "address", actor=actor))
                               if x)
            slip = slips[m.parcel_id] = PackingSlip(
                parcel_id=m.parcel_id, code=m.parcel.code, priority=m.parcel.priority, is_presale=m.parcel.is_presale,
                merged=False, order_numbers=[], shops=[], receiver=masked(o.receiver_name, "name", actor=actor),
                phone=masked(o.receiver_phone, "phone", actor=actor), address=address, buyer_notes=[])
        slip.order_numbers.append(o.number)
        if o.shop.name not in slip.shops:
            slip.shops.append(o.shop.name)
        if o.buyer_note:
            slip.buyer_notes.append(o.buyer_note)
        slip.lines.extend(lines.get(m.shipment_id, []))
    for slip in slips.values():
        slip.merged = len(slip.order_numbers) > 1
        slip.lines.sort(key=lambda line: (line.is_gift, line.order_number))
    return list(slips.values())


# --- Excel -------------------------------------------------------------------------------------
def batch_workbook(*, batch: PickBatch, actor: Actor) -> bytes:
    """拣货单 and 装箱单 sheets (openpyxl write-only)."""
    from openpyxl import Workbook

    picks, slips = pick_list(batch=batch, actor=actor), packing_lists(batch=batch, actor=actor)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("拣货单")
    ws.append([f"拣货单 {batch.number}", batch.warehouse.name])
    ws.append(["优先", "库位", "SKU 编码", "商品名称", "条码", "数量", "订单数"])
    for r in picks:
        ws.append(["优先" if r.priority else "", r.location, r.sku_code, r.sku_name, r.barcode, r.quantity, r.orders])
    ws = wb.create_sheet("装箱单")
    ws.append(["包裹号", "优先", "合单", "订单号", "收件人", "电话", "地址", "SKU 编码", "商品", "数量", "赠品"])
    for s in slips:
        for line in s.lines:
            ws.append([s.code, "优先" if s.priority else "", "合单" if s.merged else "", line.order_number,
                       s.receiver, s.phone, s.address, line.sku_code, line.title, line.quantity,
                       "赠品" if line.is_gift else ""])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


__all__ = ["PERMISSION", "batch_build", "batch_get", "batch_list", "batch_mark_printed", "batch_times",
           "batch_workbook", "packing_lists", "parcel_unmerge", "pick_list"]
