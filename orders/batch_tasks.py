"""django-q2 jobs for the warehouse day: the pick batches, and auto-completing delivered orders.

- `build_pick_batches` (schedule "pick batch", cron at `ORDERHUB["PICK_BATCH_TIMES"]`):
  one batch per active warehouse with orders waiting (`orders.batches.batch_build`).
- `auto_complete_delivered` (schedule "auto complete", hourly): an order delivered at least
  `ORDERHUB["AUTO_COMPLETE_DAYS"]` days ago (default 7) completes through
  `orders.services.order_complete` as the system actor "auto complete" (its timeline event
  names it), unless the buyer asked the platform for a refund (`Order.refund_requested`) or
  something is open in after-sales (`aftersales_open`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from config.actors import Actor, Source
from config.errors import DomainError
from inventory.models import Warehouse
from orders import batches, services
from orders.models import EventKind, Order, OrderStatus

log = logging.getLogger("orderhub.batches")
BATCH_ACTOR = Actor.system("pick batch", source=Source.JOB)
COMPLETE_ACTOR = Actor.system("auto complete", source=Source.JOB)


def auto_complete_days() -> int:
    return int(settings.ORDERHUB.get("AUTO_COMPLETE_DAYS", 7))


def build_pick_batches(slot: str = "", now: datetime | None = None) -> dict:
    """Build this slot's batch in every active warehouse; returns {warehouse code: batch number}."""
    now = now or timezone.now()
    slot = slot or timezone.localtime(now).strftime("%H:%M")
    built = {}
    for warehouse in Warehouse.objects.filter(is_active=True).order_by("priority", "id"):
        try:
            batch = batches.batch_build(warehouse=warehouse, actor=BATCH_ACTOR, slot=slot, at=now)
        except DomainError as exc:  # one warehouse's trouble does not stop the others
            log.warning("pick batch %s: %s", warehouse.code, exc)
            continue
        if batch is not None:
            built[warehouse.code] = batch.number
    return built


def aftersales_open(order: Order) -> bool:
    """Hook: is an after-sales case (return, exchange, complaint) open for this order?

    The after-sales app has no cases yet; when it does, answer from them here."""
    return False


def due_for_completion(now: datetime | None = None, days: int | None = None):
    """Delivered orders whose last delivery is at least `days` old, no refund asked."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=auto_complete_days() if days is None else days)
    return (Order.objects.filter(status=OrderStatus.DELIVERED, refund_requested=False)
            .annotate(delivered_on=Max("events__occurred_at", filter=_delivered_event()))
            .filter(delivered_on__lte=cutoff).order_by("delivered_on", "pk"))


def _delivered_event():
    from django.db.models import Q

    return Q(events__kind=EventKind.DELIVERED)


def auto_complete_delivered(now: datetime | None = None, days: int | None = None, limit: int = 5000) -> dict:
    now = now or timezone.now()
    completed, skipped = [], []
    for order_id in list(due_for_completion(now, days).values_list("pk", flat=True)[:limit]):
        try:
            with transaction.atomic():
                order = services._lock_pk(order_id)
                if order.status != OrderStatus.DELIVERED or order.refund_requested or aftersales_open(order):
                    skipped.append(order.number)
                    continue
                services.order_complete(order=order, actor=COMPLETE_ACTOR, at=now)
                completed.append(order.number)
        except DomainError as exc:
            log.warning("auto complete %s: %s", order_id, exc)
            skipped.append(str(order_id))
    return {"completed": completed, "skipped": skipped}
