"""The per-scan tracking path as it was before batching (one transaction and ~13 statements
per update and shipment), kept as the reference the batched `orders.shipping.record_tracking`
must match: the equivalence tests feed the same scans through both and compare every row."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from config.actors import Actor
from config.errors import NotFound, NotPermitted
from inventory.models import Warehouse
from orders import events, services
from orders.carriers import codes
from orders.carriers.base import RANK, TrackingUpdate
from orders.models import OrderEvent, Shipment, TrackingEvent, TrackingState
from orders.shipping import OPEN, TrackingResult, _move, shipments_for


def record_tracking_per_scan(*, updates: list[TrackingUpdate], actor: Actor) -> TrackingResult:
    """Apply what a provider said to every shipment carrying each tracking number (each
    shipment in its own transaction)."""
    total = TrackingResult()
    for update in updates:
        ids = list(shipments_for(update).values_list("pk", flat=True))
        if not ids:
            total.unmatched.append(update.tracking_number)
            continue
        for shipment_id in ids:
            total.merge(apply_tracking_per_scan(shipment_id=shipment_id, update=update, actor=actor))
    return total


@transaction.atomic
def apply_tracking_per_scan(*, shipment_id: int, update: TrackingUpdate, actor: Actor,
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


