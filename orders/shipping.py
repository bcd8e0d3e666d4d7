"""Shipments: one parcel per order and warehouse, moved by people and by carrier scans.

- `ship_parcels` is the shipment half of `orders.services.order_ship` (which locks the
  order, consumes the reservations and moves the order): it creates, or takes the open,
  shipment of each warehouse that shipped, with its lines, and ships it.
- `shipment_transition` lets staff pick and pack a parcel before it leaves.
- `record_tracking` stores a carrier's scans (duplicates dropped, ordered by their own time)
  and moves the shipment and the order: the first scan of a parcel that has not left yet
  ships it (the order becomes shipped or partially shipped), delivered delivers it (the
  order is delivered when every parcel is), exception flags it (an internal event and a
  notification), returned marks it returned. Each new scan is a public timeline event.
  Scans are applied in batches (`apply_updates`: up to 500 scans per transaction, a fixed
  number of statements per batch); only the parcels whose state changes go through the
  per-shipment transitions, each on its own instance, and the rows and events they change
  are written together at the end of the batch (`orders.batch_writes`).
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
from orders.batch_writes import Writes, insert_rows
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


# Scans are applied in batches: one transaction per at most BATCH_SCANS scans (or BATCH_PAIRS
# shipment updates), a fixed handful of statements per batch, and the per-shipment services
# only for the parcels whose state changes.
BATCH_SCANS = 500
BATCH_PAIRS = 500
_NUMBERS_PER_QUERY = 1000


def record_tracking(*, updates: list[TrackingUpdate], actor: Actor, now: datetime | None = None) -> TrackingResult:
    """Apply what a provider said to every shipment carrying each tracking number.

    The public entry for pushes, polls and imports. Updates are matched to shipments (one
    query per 1,000 tracking numbers), then applied in batches by `apply_updates`, in their
    order; an update whose tracking number matches no shipment is counted in `unmatched`."""
    total = TrackingResult()
    by_number: dict[str, list[tuple[int, str]]] = defaultdict(list)
    numbers = sorted({u.tracking_number for u in updates})
    for start in range(0, len(numbers), _NUMBERS_PER_QUERY):
        for pk, carrier, number in Shipment.objects.filter(
                tracking_number__in=numbers[start:start + _NUMBERS_PER_QUERY]).values_list(
                "pk", "carrier", "tracking_number").order_by("id"):
            by_number[number].append((pk, carrier))
    pairs: list[tuple[int, TrackingUpdate]] = []
    for update in updates:
        ids = [pk for pk, carrier in by_number.get(update.tracking_number, ())
               if not update.carrier or carrier in (update.carrier, "")]
        if not ids:
            total.unmatched.append(update.tracking_number)
            continue
        pairs += [(pk, update) for pk in ids]
    for chunk in batches_of(pairs):
        total.merge(apply_updates(pairs=chunk, actor=actor, now=now))
    return total


def batches_of(pairs: list[tuple[int, TrackingUpdate]]):
    """Consecutive slices of at most BATCH_SCANS scans (an update with more is a slice of its own)."""
    chunk: list[tuple[int, TrackingUpdate]] = []
    scans = 0
    for pair in pairs:
        n = len(pair[1].scans)
        if chunk and (scans + n > BATCH_SCANS or len(chunk) >= BATCH_PAIRS):
            yield chunk
            chunk, scans = [], 0
        chunk.append(pair)
        scans += n
    if chunk:
        yield chunk


def apply_tracking(*, shipment_id: int, update: TrackingUpdate, actor: Actor,
                   now: datetime | None = None) -> TrackingResult:
    """Store the new scans of one shipment and move it (and its order) forward."""
    if not Shipment.objects.filter(pk=shipment_id).exists():
        raise NotFound("包裹不存在")
    return apply_updates(pairs=[(shipment_id, update)], actor=actor, now=now)


@dataclass
class _Step:
    """What one update concluded about one shipment once its new scans are stored."""

    target: str | None  # the state the parcel should be in; None = no news
    at: datetime  # when it got there (the deciding scan's time)
    note: str
    first_at: datetime | None  # the parcel's oldest scan (the time it shipped, if it had not)
    newest_at: datetime | None  # the parcel's newest scan (`last_scan_at`)


class _Scans:
    """A shipment's stored scans as far as the rules need them: keys, oldest, newest, final.
    `seq` orders like the row id (new rows get ids after every existing one, in insert order)."""

    __slots__ = ("keys", "first", "newest", "final")
    FINAL = (TrackingState.DELIVERED, TrackingState.RETURNED)

    def __init__(self):
        self.keys: set[str] = set()
        self.first = self.newest = self.final = None  # (occurred_at, seq, state, description)

    def add(self, occurred_at, seq, state, description, key) -> None:
        self.keys.add(key)
        row = (occurred_at, seq, state, description)
        if self.first is None or row[:2] < self.first[:2]:
            self.first = row
        if self.newest is None or row[:2] > self.newest[:2]:
            self.newest = row
        if state in self.FINAL and (self.final is None or row[:2] > self.final[:2]):
            self.final = row


def _step(scans: _Scans, update: TrackingUpdate, now: datetime) -> _Step:
    """The rules: a delivered or returned scan is the end whenever it was scanned; otherwise
    the newest stored scan. The provider's summary state wins when this update is the newest
    news (a late, older push never moves a parcel back)."""
    newest, final = scans.newest, scans.final
    target = final[2] if final else (newest[2] if newest else None)
    newest_here = max((s.occurred_at for s in update.scans), default=None)
    if update.state and (newest is None or newest_here is None or newest_here >= newest[0]):
        if target is None or RANK.get(update.state, 0) >= RANK.get(target, 0) or target == TrackingState.EXCEPTION:
            target = update.state
    deciding = final or newest
    return _Step(target=target, at=deciding[0] if deciding else now,
                 note=update.note or (deciding[3] if deciding else ""),
                 first_at=scans.first[0] if scans.first else None, newest_at=newest[0] if newest else None)


_PROBES: dict[str, Shipment] = {}


def _moves(status: str, target: str) -> bool:
    """Would `_move` change a parcel in `status` for `target`? (Read from the FSM, no query.)"""
    probe = _PROBES.get(status)
    if probe is None:
        probe = _PROBES[status] = Shipment(status=status)
    T = TrackingState
    name = {T.IN_TRANSIT: "move", T.OUT_FOR_DELIVERY: "move", T.EXCEPTION: "flag_exception",
            T.RETURNED: "mark_returned", T.DELIVERED: "deliver"}.get(target)
    return bool(name) and can_proceed(getattr(probe, name))


@transaction.atomic
def apply_updates(*, pairs: list[tuple[int, TrackingUpdate]], actor: Actor,
                  now: datetime | None = None) -> TrackingResult:
    """Apply `(shipment id, update)` pairs in one transaction, with the same results as
    applying them one by one. Idempotent: a scan already stored (same key) is dropped, within
    the batch too, and no state ever moves backwards.

    1. Lock the orders, then their shipments (the order first, as every order service does).
    2. Load the stored scans' keys and times in one query; drop duplicates; work out, update by
       update, where each parcel is (`_step`), in memory.
    3. Insert the new scans and their public timeline events in bulk (the unique key is a
       safety net: a row that already exists is skipped, and so is its event).
    4. Only for the parcels whose state changes (or that have not shipped yet), run the
       per-shipment transitions (`_ship_locked`, `_move`) in the updates' order; the others
       just get their `last_scan_at`. The rows and events all this changes are written by
       `batch_writes.Writes` (one statement per table, the events in the order they
       happened), before shipping (which reads and writes as it goes) and at the end.
    """
    result = TrackingResult()
    if not pairs:
        return result
    if not actor.can("orders.ship_order"):
        raise NotPermitted(f"{actor.label} 没有权限记录物流轨迹")
    now = now or timezone.now()
    ids = sorted({pk for pk, _u in pairs})
    orders = {o.pk: o for o in Order.objects.select_for_update(of=("self",)).filter(
        pk__in=Shipment.objects.filter(pk__in=ids).values("order_id")).order_by("pk")}
    # Every parcel of those orders, locked: the ones the updates name, and per order the
    # parcels not yet at the end (when the last one is delivered, the order is).
    shipments: dict[int, Shipment] = {}
    away: dict[int, set[int]] = {pk: set() for pk in orders}
    wanted = set(ids)
    for s in Shipment.objects.select_for_update().filter(order_id__in=sorted(orders)).order_by("pk"):
        if s.pk in wanted:
            shipments[s.pk] = s
        if s.status not in (SH.DELIVERED, SH.RETURNED):
            away[s.order_id].add(s.pk)
    order_of = {pk: s.order_id for pk, s in shipments.items()}

    scans: dict[int, _Scans] = defaultdict(_Scans)
    for sid, pk, key, occurred_at, state, description in TrackingEvent.objects.filter(shipment_id__in=ids).values_list(
            "shipment_id", "pk", "key", "occurred_at", "state", "description").order_by():
        scans[sid].add(occurred_at, pk, state, description, key)

    seq = 1 << 62  # new rows sort after every stored one, in insert order
    new_rows: list[TrackingEvent] = []
    steps: list[tuple[int, _Step]] = []  # in the updates' order
    names: dict[int, str] = {}
    for sid, update in pairs:
        shipment = shipments.get(sid)
        if shipment is None:  # deleted since it was matched
            result.unmatched.append(update.tracking_number)
            continue
        result.shipments += 1
        known = scans[sid]
        fresh, seen = [], set()
        for scan in update.scans:
            if scan.key in known.keys or scan.key in seen:
                result.duplicates += 1
                continue
            seen.add(scan.key)
            fresh.append(scan)
        fresh.sort(key=lambda s: s.occurred_at)
        for s in fresh:
            seq += 1
            known.add(s.occurred_at, seq, s.state, s.description, s.key)
            new_rows.append(TrackingEvent(shipment_id=sid, occurred_at=s.occurred_at, description=s.description,
                                          location=s.location, state=s.state, carrier_state=s.carrier_state,
                                          key=s.key, raw=s.raw, received_at=now))
        names.setdefault(sid, codes.carrier_name(shipment.carrier or update.carrier))
        steps.append((sid, _step(known, update, now)))

    # 3. New scans and their public events (the events are written with step 4's, at its end).
    writes = Writes()
    if new_rows:
        inserted = insert_rows(TrackingEvent, new_rows, skip_conflicts=True, returning=["shipment_id", "key", "id"])
        if inserted is None:  # not PostgreSQL: insert, then read the ids back
            TrackingEvent.objects.bulk_create(new_rows, batch_size=BATCH_SCANS, ignore_conflicts=True)
            inserted = TrackingEvent.objects.filter(shipment_id__in=sorted({r.shipment_id for r in new_rows}),
                                                    received_at=now).values_list("shipment_id", "key", "pk")
        stored = {(sid, key): pk for sid, key, pk in inserted}
        fields = []
        for row in new_rows:
            pk = stored.get((row.shipment_id, row.key))
            if pk is None:  # stored meanwhile by someone else: a duplicate after all
                result.duplicates += 1
                continue
            result.scans_added += 1
            shipment = shipments[row.shipment_id]
            fields.append(events.tracking_scan_fields(
                order=orders[order_of[row.shipment_id]], actor=actor, shipment_id=row.shipment_id, state=row.state,
                carrier_name=names[row.shipment_id], tracking_number=shipment.tracking_number,
                description=row.description, scan_id=pk, at=row.occurred_at))
        for f in fields:  # written with the step's events, in this order, when `writes` flushes
            writes.event(f)

    # 4. Which parcels change: simulate the state machine on each parcel's steps.
    changing: set[int] = set()
    status = {sid: s.status for sid, s in shipments.items()}
    for sid, step in steps:
        if sid in changing or step.target is None:
            continue
        if status[sid] in OPEN or _moves(status[sid], step.target):
            changing.add(sid)
    for sid in {sid for sid, _s in steps} - changing:
        newest = scans[sid].newest
        shipment = shipments[sid]
        if newest is not None and shipment.last_scan_at != newest[0]:
            shipment.last_scan_at = newest[0]
            writes.save(shipment, ["last_scan_at", "updated_at"])
    stale: set[int] = set()  # parcels an earlier step may have changed (another parcel of their order shipped)
    for sid, step in steps:
        if sid in changing:
            _apply_step(orders[order_of[sid]], shipments, sid, step, stale=stale, away=away, actor=actor,
                        result=result, writes=writes)
    writes.flush()
    return result


def _away(order_ids) -> dict[int, set[int]]:
    """Per order, its parcels not yet at the end (delivered or returned): when the last one
    is delivered, the order is. Kept up to date by `_apply_step` (the orders are locked)."""
    away: dict[int, set[int]] = {pk: set() for pk in order_ids}
    if away:
        for order_id, pk in Shipment.objects.filter(order_id__in=sorted(away)).exclude(
                status__in=[SH.DELIVERED, SH.RETURNED]).values_list("order_id", "pk"):
            away[order_id].add(pk)
    return away


_SAVED = ["status", "exception_flag", "exception_note", "delivered_at", "next_poll_at", "last_scan_at", "updated_at"]


def _apply_step(order: Order, shipments: dict[int, Shipment], shipment_id: int, step: _Step, *, stale: set[int],
                away: dict[int, set[int]], actor: Actor, result: TrackingResult, writes: Writes) -> None:
    """One update's effect on a parcel that changes state. The order and the parcel are the
    rows `apply_updates` locked (the order is changed in place by the services, so it stays
    current; a parcel is read again once another parcel of its order has shipped). Each goes
    through its transition and its service here; their rows and events are saved by
    `writes` (`_SAVED`: every field `_move` may change), except around shipping, which
    saves as it goes (what is pending is flushed first)."""
    if shipment_id in stale:
        shipments[shipment_id] = Shipment.objects.select_for_update().get(pk=shipment_id)
        stale.discard(shipment_id)
    shipment = shipments[shipment_id]
    shipment.last_scan_at = step.newest_at
    if step.target is None:
        writes.save(shipment, ["last_scan_at", "updated_at"])
        return
    # The first scan of a parcel that has not left yet: it ships (and the order with it).
    if shipment.status in OPEN:
        if not can_proceed(order.ship):
            writes.save(shipment, ["last_scan_at", "updated_at"])
            return  # the order is not ready to ship (e.g. still being allocated): staff decide
        writes.flush()  # shipping reads and saves the order's rows itself
        warehouse = Warehouse.objects.filter(pk=shipment.warehouse_id).first()
        services._ship_locked(order, actor=actor, warehouse=warehouse, carrier=shipment.carrier,
                              tracking_number=shipment.tracking_number, at=step.first_at or step.at, parcel=shipment)
        stale.update(pk for pk, s in shipments.items() if s.order_id == order.pk and pk != shipment_id)
        away.update(_away([order.pk]))  # shipping may have created parcels
        shipment = shipments[shipment_id] = Shipment.objects.select_for_update().get(pk=shipment_id)
        shipment.last_scan_at = step.newest_at
        result.transitions.append(f"{shipment.pk}:shipped")
    # Then the parcel's state.
    _move(order, shipment, step.target, at=step.at, actor=actor, note=step.note, result=result,
          away=away[order.pk], writes=writes)
    writes.save(shipment, _SAVED)
    if shipment.status in (SH.DELIVERED, SH.RETURNED):
        away[order.pk].discard(shipment.pk)


def _move(order: Order, shipment: Shipment, target: str, *, at: datetime, actor: Actor, note: str,
          result: TrackingResult, away: set[int] | None = None, writes: Writes | None = None) -> None:
    """Move a parcel one step towards `target` (and its order when its last parcel is
    delivered). `away`: the order's parcels not yet delivered or returned, if the caller keeps
    them (else they are read). `writes`: the events (and the order's row) are written when
    it flushes, else now; the parcel is always saved by the caller."""
    T = TrackingState
    record = writes.event if writes is not None else (lambda fields: OrderEvent.objects.create(**fields))
    if target in (T.IN_TRANSIT, T.OUT_FOR_DELIVERY) and can_proceed(shipment.move):
        shipment.move()
        result.transitions.append(f"{shipment.pk}:in_transit")
    elif target == T.EXCEPTION and can_proceed(shipment.flag_exception):
        shipment.flag_exception()
        shipment.exception_flag, shipment.exception_note = True, note[:255]
        record(events.shipment_exception_fields(order=order, actor=actor, shipment_id=shipment.pk,
                                                tracking_number=shipment.tracking_number, note=note, at=at))
        order_id, message = order.pk, f"{shipment.tracking_number} {note}"[:200]
        transaction.on_commit(lambda: notify.order_changed(order_id, kind="shipment_exception", message=message))
        result.transitions.append(f"{shipment.pk}:exception")
    elif target == T.RETURNED and can_proceed(shipment.mark_returned):
        shipment.mark_returned()
        shipment.next_poll_at = None
        record(events.shipment_returned_fields(order=order, actor=actor, shipment_id=shipment.pk,
                                               tracking_number=shipment.tracking_number, note=note, at=at))
        order_id, number = order.pk, shipment.tracking_number
        transaction.on_commit(lambda: notify.order_changed(order_id, kind="shipment_returned", message=number))
        result.transitions.append(f"{shipment.pk}:returned")
    elif target == T.DELIVERED and can_proceed(shipment.deliver):
        shipment.deliver()
        shipment.delivered_at = at
        shipment.next_poll_at = None
        result.transitions.append(f"{shipment.pk}:delivered")  # saved by the caller
        others_away = (bool(away - {shipment.pk}) if away is not None else Shipment.objects.filter(
            order=order).exclude(pk=shipment.pk).exclude(status__in=[SH.DELIVERED, SH.RETURNED]).exists())
        if not others_away and order.status == OrderStatus.SHIPPED:
            services._deliver_locked(order, actor=actor, at=at, writes=writes)
            result.transitions.append(f"order:{order.number}:delivered")
