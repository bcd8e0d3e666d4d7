"""Inventory background jobs (django-q2). Thin: look things up, call a service; safe to run twice."""

from __future__ import annotations

import logging

from inventory.audit import audit
from inventory.models import StockLevel

logger = logging.getLogger(__name__)


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
