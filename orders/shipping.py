"""Shipments: one parcel per order and warehouse, moved by people and by carrier scans.

- `ship_parcels` is the shipment half of `orders.services.order_ship` (which locks the
  order, consumes the reservations and moves the order): it creates, or takes the open,
  shipment of each warehouse that shipped, with its lines, and ships it.
- `shipment_transition` lets staff pick and pack a parcel before it leaves.
- `apply_tracking` stores a carrier's scans (duplicates dropped, ordered by their own time)
  and moves the shipment and the order: the first scan of a parcel that has not left yet
  ships it (the order becomes shipped or partially shipped), delivered delivers it (the
  order is delivered when every parcel is), exception flags it (an internal event and a
  notification), returned marks it returned. Each new scan is a public timeline event.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from config import notify
from config.actors import Actor
from config.errors import NotFound, NotPermitted, TransitionNotAllowed
from inventory.models import Reservation, Warehouse
from orders import events, services
from orders.carriers import codes
from orders.carriers.base import RANK, TrackingUpdate
from orders.models import (SHIPMENT_AWAY, CarrierAccount, Order, OrderEvent, OrderStatus, Shipment, ShipmentLine,
                           ShipmentStatus, TrackingEvent, TrackingProvider, TrackingState)

SH = ShipmentStatus
OPEN = [SH.CREATED, SH.PICKED, SH.PACKED]  # not yet with the carrier
FIRST_POLL_AFTER = timedelta(hours=1)


def default_provider() -> str:
    """Where new parcels are tracked: the default active account's provider, else the sandbox."""
    account = CarrierAccount.objects.filter(is_active=True, is_default=True).order_by("id").first()
    return account.provider if account else TrackingProvider.SANDBOX


# --- shipping (called by orders.services with the order row locked) ---------------------------
def ship_parcels(*, order: Order, consumed: list[Reservation], warehouse: Warehouse | None, carrier: str,
                 tracking_number: str, at: datetime, parcel: Shipment | None = None) -> list[Shipment]:
    """Ship one shipment per warehouse whose reservations were just consumed."""
    by_warehouse: dict[int | None, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for line_id, quantity, warehouse_id in Reservation.objects.filter(pk__in=[r.pk for r in consumed]).values_list(
            "order_line_id", "quantity", "stock_level__warehouse_id").order_by("id"):
        by_warehouse[warehouse_id][line_id] += quantity
    if not by_warehouse:  # nothing was reserved (e.g. an order shipped outside the stock pool)
        key = warehouse.pk if warehouse else (parcel.warehouse_id if parcel else None)
        by_warehouse[key] = {line.pk: line.quantity for line in order.lines.all()}
    provider = default_provider()
    shipped = []
    for warehouse_id, lines in by_warehouse.items():
        if parcel is not None and parcel.warehouse_id in (warehouse_id, None):
            shipment, parcel = parcel, None  # the scanned parcel (one without a warehouse takes the first)
            shipment.warehouse_id = warehouse_id
        else:
            shipment = (Shipment.objects.select_for_update().filter(order=order, warehouse_id=warehouse_id,
                                                                    status__in=OPEN).order_by("id").first())
        if shipment is None:
            shipment = Shipment.objects.create(order=order, warehouse_id=warehouse_id, carrier=carrier,
                                               tracking_number=tracking_number, provider=provider, created_at=at)
        if carrier:
            shipment.carrier = carrier
        if tracking_number:
            shipment.tracking_number = tracking_number
        if not shipment.lines.exists():
            ShipmentLine.objects.bulk_create([ShipmentLine(shipment=shipment, order_line_id=line_id, quantity=q)
                                              for line_id, q in lines.items()])
        shipment.ship()
        shipment.shipped_at = at
        shipment.next_poll_at = at + FIRST_POLL_AFTER if shipment.tracking_number else None
        shipment.save()
        shipped.append(shipment)
    from orders import tracking_push  # issue 15: tracking numbers back to the platform, in this transaction

    tracking_push.enqueue(order=order, shipments=shipped, at=at)
    return shipped


def deliver_open_parcels(*, order: Order, at: datetime) -> int:
    """A person confirmed the order signed for: every parcel still with the carrier is delivered."""
    done = 0
    for shipment in Shipment.objects.select_for_update().filter(order=order, status__in=SHIPMENT_AWAY).order_by("id"):
        shipment.deliver()
        shipment.delivered_at = at
        shipment.next_poll_at = None
        shipment.save()
        done += 1
    return done


# --- staff steps before a parcel leaves --------------------------------------------------------
SHIPMENT_ACTIONS = {"pick": "orders.pack_order", "pack": "orders.pack_order"}


@transaction.atomic
def shipment_create(*, order: Order, actor: Actor, warehouse: Warehouse | None = None, carrier: str = "",
                    tracking_number: str = "", at: datetime | None = None) -> Shipment:
    """A parcel prepared before it ships (e.g. its label printed): the carrier's first scan of
    its tracking number ships it."""
    if not actor.can("orders.pack_order"):
        raise NotPermitted(f"{actor.label} 没有权限建立包裹")
    carrier, tracking_number = services._ship_codes(carrier, tracking_number)
    order = services._lock(order)
    if order.status not in (OrderStatus.ALLOCATED, OrderStatus.PACKED, OrderStatus.PARTIALLY_SHIPPED):
        raise TransitionNotAllowed(f"订单 {order.number} 当前状态为「{order.get_status_display()}」,不能建立包裹")
    at = at or timezone.now()
    shipment = Shipment.objects.create(order=order, warehouse=warehouse, carrier=carrier, provider=default_provider(),
                                       tracking_number=tracking_number, created_at=at)
    reserved: dict[int, int] = defaultdict(int)
    active = Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE)
    if warehouse is not None:
        active = active.filter(stock_level__warehouse=warehouse)
    for line_id, quantity in active.values_list("order_line_id", "quantity"):
        reserved[line_id] += quantity
    ShipmentLine.objects.bulk_create([ShipmentLine(shipment=shipment, order_line_id=k, quantity=v)
                                      for k, v in reserved.items()])
    return shipment


@transaction.atomic
def shipment_transition(*, shipment: Shipment, name: str, actor: Actor) -> Shipment:
    """Pick or pack one parcel (state only; the order moves when the parcel ships)."""
    if name not in SHIPMENT_ACTIONS:
        raise NotFound(f"未知的包裹操作: {name}")
    if not actor.can(SHIPMENT_ACTIONS[name]):
        raise NotPermitted(f"{actor.label} 没有权限操作包裹")
    services._lock(shipment.order)
    shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
    if not can_proceed(getattr(shipment, name)):
        raise TransitionNotAllowed(f"包裹当前状态为「{shipment.get_status_display()}」,不能{name}")
    getattr(shipment, name)()
    shipment.save()
    return shipment


# --- carrier scans -------------------------------------------------------------------------------
@dataclass
class TrackingResult:
    shipments: int = 0
    scans_added: int = 0
    duplicates: int = 0
    transitions: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def merge(self, other: "TrackingResult") -> None:
        self.shipments += other.shipments
        self.scans_added += other.scans_added
        self.duplicates += other.duplicates
        self.transitions += other.transitions
        self.unmatched += other.unmatched

    def as_dict(self) -> dict:
        return {"shipments": self.shipments, "scans_added": self.scans_added, "duplicates": self.duplicates,
                "transitions": self.transitions, "unmatched": self.unmatched}


def shipments_for(update: TrackingUpdate):
    qs = Shipment.objects.filter(tracking_number=update.tracking_number)
    if update.carrier:
        qs = qs.filter(carrier__in=[update.carrier, ""])
    return qs.order_by("id")


def record_tracking(*, updates: list[TrackingUpdate], actor: Actor) -> TrackingResult:
    """Apply what a provider said to every shipment carrying each tracking number (each
    shipment in its own transaction)."""
    total = TrackingResult()
    for update in updates:
        ids = list(shipments_for(update).values_list("pk", flat=True))
        if not ids:
            total.unmatched.append(update.tracking_number)
            continue
        for shipment_id in ids:
            total.merge(apply_tracking(shipment_id=shipment_id, update=update, actor=actor))
    return total


@transaction.atomic
def apply_tracking(*, shipment_id: int, update: TrackingUpdate, actor: Actor,
                   now: datetime | None = None) -> TrackingResult:
    """Store the new scans of one shipment and move it (and its order) forward. Idempotent:
    a scan already stored (same key) is dropped, and no state ever moves backwards."""
    if not actor.can("orders.ship_order"):
        raise NotPermitted(f"{actor.label} 没有权限记录物流轨迹")
    now = now or timezone.now()
    result = TrackingResult(shipments=1)
    order_id = Shipment.objects.filter(pk=shipment_id).values_list("order_id", flat=True).first()
    if order_id is None:
        raise NotFound("包裹不存在")
    order = services._lock_pk(order_id)  # the order first, as every order service does
    shipment = Shipment.objects.select_for_update().get(pk=shipment_id)

    # 1. The scans, deduplicated by key (within the update too).
    known = set(shipment.tracking_events.values_list("key", flat=True))
    fresh, seen = [], set()
    for scan in update.scans:
        if scan.key in known or scan.key in seen:
            result.duplicates += 1
            continue
        seen.add(scan.key)
        fresh.append(scan)
    fresh.sort(key=lambda s: s.occurred_at)
    rows = TrackingEvent.objects.bulk_create([TrackingEvent(
        shipment=shipment, occurred_at=s.occurred_at, description=s.description, location=s.location, state=s.state,
        carrier_state=s.carrier_state, key=s.key, raw=s.raw, received_at=now) for s in fresh])
    result.scans_added = len(rows)
    name = codes.carrier_name(shipment.carrier or update.carrier)
    OrderEvent.objects.bulk_create([OrderEvent(**events.tracking_scan_fields(
        order=order, actor=actor, shipment_id=shipment.pk, state=row.state, carrier_name=name,
        tracking_number=shipment.tracking_number, description=row.description, scan_id=row.pk, at=row.occurred_at))
        for row in rows])

    # 2. Where the parcel is now: a delivered or returned scan is the end whenever it was
    #    scanned; otherwise the newest stored scan. The provider's summary state wins when
    #    this update is the newest news (a late, older push never moves a parcel back).
    newest = shipment.tracking_events.order_by("-occurred_at", "-id").first()
    final = shipment.tracking_events.filter(state__in=[TrackingState.DELIVERED, TrackingState.RETURNED]).order_by(
        "-occurred_at", "-id").first()
    target = final.state if final else (newest.state if newest else None)
    newest_here = max((s.occurred_at for s in update.scans), default=None)
    if update.state and (newest is None or newest_here is None or newest_here >= newest.occurred_at):
        if target is None or RANK.get(update.state, 0) >= RANK.get(target, 0) or target == TrackingState.EXCEPTION:
            target = update.state
    if newest is not None:
        shipment.last_scan_at = newest.occurred_at
    if target is None:
        shipment.save(update_fields=["last_scan_at", "updated_at"])
        return result
    at = (final or newest).occurred_at if (final or newest) else now

    # 3. The first scan of a parcel that has not left yet: it ships (and the order with it).
    if shipment.status in OPEN:
        if not can_proceed(order.ship):
            shipment.save(update_fields=["last_scan_at", "updated_at"])
            return result  # the order is not ready to ship (e.g. still being allocated): staff decide
        first = shipment.tracking_events.order_by("occurred_at", "id").first()
        warehouse = Warehouse.objects.filter(pk=shipment.warehouse_id).first()
        order = services._ship_locked(order, actor=actor, warehouse=warehouse, carrier=shipment.carrier,
                                      tracking_number=shipment.tracking_number, at=first.occurred_at if first else at,
                                      parcel=shipment)
        shipment = Shipment.objects.select_for_update().get(pk=shipment_id)
        shipment.last_scan_at = newest.occurred_at if newest else None
        result.transitions.append(f"{shipment.pk}:shipped")

    # 4. Then the parcel's state.
    note = update.note or ((final or newest).description if (final or newest) else "")
    _move(order, shipment, target, at=at, actor=actor, note=note, result=result)
    shipment.save()
    return result


def _move(order: Order, shipment: Shipment, target: str, *, at: datetime, actor: Actor, note: str,
          result: TrackingResult) -> None:
    T = TrackingState
    if target in (T.IN_TRANSIT, T.OUT_FOR_DELIVERY) and can_proceed(shipment.move):
        shipment.move()
        result.transitions.append(f"{shipment.pk}:in_transit")
    elif target == T.EXCEPTION and can_proceed(shipment.flag_exception):
        shipment.flag_exception()
        shipment.exception_flag, shipment.exception_note = True, note[:255]
        events.shipment_exception(order=order, actor=actor, shipment_id=shipment.pk,
                                  tracking_number=shipment.tracking_number, note=note, at=at)
        order_id, message = order.pk, f"{shipment.tracking_number} {note}"[:200]
        transaction.on_commit(lambda: notify.order_changed(order_id, kind="shipment_exception", message=message))
        result.transitions.append(f"{shipment.pk}:exception")
    elif target == T.RETURNED and can_proceed(shipment.mark_returned):
        shipment.mark_returned()
        shipment.next_poll_at = None
        events.shipment_returned(order=order, actor=actor, shipment_id=shipment.pk,
                                 tracking_number=shipment.tracking_number, note=note, at=at)
        order_id, number = order.pk, shipment.tracking_number
        transaction.on_commit(lambda: notify.order_changed(order_id, kind="shipment_returned", message=number))
        result.transitions.append(f"{shipment.pk}:returned")
    elif target == T.DELIVERED and can_proceed(shipment.deliver):
        shipment.deliver()
        shipment.delivered_at = at
        shipment.next_poll_at = None
        shipment.save()
        result.transitions.append(f"{shipment.pk}:delivered")
        others_away = Shipment.objects.filter(order=order).exclude(pk=shipment.pk).exclude(
            status__in=[SH.DELIVERED, SH.RETURNED]).exists()
        if not others_away and order.status == OrderStatus.SHIPPED:
            services._deliver_locked(order, actor=actor, at=at)
            result.transitions.append(f"order:{order.number}:delivered")
