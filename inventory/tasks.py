"""Inventory background jobs (django-q2). Thin: look things up, call a service; safe to run twice."""

from __future__ import annotations

import logging

from config.actors import Actor, Source
from inventory.audit import audit
from inventory.models import StockLevel
from inventory.services import expired_reservation_order_ids
from orders.errors import DomainError

logger = logging.getLogger(__name__)


def expire_lead_time_reservations() -> int:
    """Release lead-time reservations not confirmed in time (24 h by default) and hold their
    orders with reason `reservation_expired`. Returns how many orders were processed.

    Each order is re-read and handled in its own transaction by the service, which
    re-checks for expired reservations under the row lock, so a second run (or two
    overlapping runs) changes nothing more.
    """
    from orders.models import Order
    from orders.services import order_expire_reservations

    actor = Actor.system("reservation_expiry", source=Source.JOB)
    done = 0
    for order_id in expired_reservation_order_ids():
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            continue
        try:
            order_expire_reservations(order=order, actor=actor)
        except DomainError as exc:  # one stuck order must not stop the others
            logger.warning("reservation expiry: order %s skipped: %s", order_id, exc)
            continue
        done += 1
    if done:
        logger.info("reservation expiry: released the reservations of %d order(s)", done)
    return done


def run_inventory_audit() -> int:
    """Nightly proof that every pool equals its ledger. Raises (so the task shows as failed in
    the admin) listing the problems; otherwise returns the number of pools checked."""
    problems = audit()
    if problems:
        for line in problems:
            logger.error("inventory audit: %s", line)
        shown = "\n".join(problems[:50])
        more = f"\n… and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise RuntimeError(f"inventory audit FAILED: {len(problems)} problem(s)\n{shown}{more}")
    return StockLevel.objects.count()
