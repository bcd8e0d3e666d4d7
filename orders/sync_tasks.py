"""Sync jobs (django-q2): the every-minute dispatcher and one shop's sync run.

Thin wrappers over `orders.sync`. Both are safe to run twice and on several clusters at once:
the dispatcher claims each due shop with a conditional UPDATE before enqueueing it, and a run
takes the shop's lease in the database (a second one skips).
"""

from __future__ import annotations

import logging

from django.utils import timezone

from orders import sync
from orders.models import Shop

logger = logging.getLogger(__name__)


def dispatch_due_syncs(enqueue=None) -> int:
    """Enqueue a sync for every enabled shop whose interval has passed. Returns how many."""
    if enqueue is None:
        from django_q.tasks import async_task as enqueue
    now = timezone.now()
    queued = 0
    for state in sync.due_states(now):
        if sync.claim_due(state, now):
            enqueue("orders.sync_tasks.sync_shop_task", state.shop_id,
                    task_name=f"sync {state.shop.code}"[:100], group="sync")
            queued += 1
    if queued:
        logger.info("sync dispatcher: %d shop(s) queued", queued)
    return queued


def sync_shop_task(shop_id: int) -> dict:
    """One sync run of one shop. Platform failures are recorded on the shop's sync state
    (admin: 同步状态) and returned, not raised: the dispatcher schedules the retry, so
    django-q2 must not run the task again by itself."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None:
        return {"shop": shop_id, "outcome": "gone"}
    return sync.run_sync(shop, owner=sync.default_owner("q")).as_dict()
