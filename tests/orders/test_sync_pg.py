"""Two syncs of one shop started at the same moment on PostgreSQL: one runs, one skips.

Real threads, each with its own database connection (tests/concurrency.py), racing for the
shop's lease — the conditional UPDATE in `orders.sync.acquire_lease`. The winner's first
page is held at the fake platform until the loser has returned, so the two runs really
overlap.
"""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone

from orders import sync
from orders.models import Order, ShopSyncState, SyncStatus
from tests.concurrency import run_together
from tests.orders.test_sync import ALL, N_ORDERS, ingest, order_ids, platform, server, shop  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_syncs_of_one_shop_started_at_once_one_runs_one_skips(shop, platform):  # noqa: F811
    platform.gate = threading.Event()

    def start():
        result = sync.run_sync(shop, sleep=lambda s: None, page_size=2)
        if result.outcome == "skipped":
            platform.gate.set()  # the winner may go on only once the loser has given up
        return result

    outcomes = run_together([start, start])
    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    results = sorted((value for _, value in outcomes), key=lambda r: r.outcome)
    assert [r.outcome for r in results] == ["ok", "skipped"], [(r.outcome, r.error) for r in results]
    winner, loser = results
    assert winner.created == N_ORDERS and loser.created == 0 and "lease" in loser.error
    assert platform.pages_asked() == [1, 2, 3]  # only the winner talked to the platform
    assert order_ids(shop) == ALL and Order.objects.filter(shop=shop).count() == N_ORDERS
    state = ShopSyncState.objects.get(shop=shop)
    assert state.status == SyncStatus.OK and state.lease_owner == "" and state.last_created == N_ORDERS


def test_eight_workers_racing_for_one_lease_exactly_one_gets_it(shop):  # noqa: F811
    now = timezone.now()
    outcomes = run_together([lambda i=i: sync.acquire_lease(shop, f"worker-{i}", now=now) for i in range(8)])
    assert [kind for kind, _ in outcomes] == ["ok"] * 8, outcomes
    assert [value for _, value in outcomes].count(True) == 1
    holder = ShopSyncState.objects.get(shop=shop).lease_owner
    assert holder == f"worker-{[value for _, value in outcomes].index(True)}"


def test_an_expired_lease_is_taken_over_by_exactly_one_of_two(shop):  # noqa: F811
    from datetime import timedelta

    expired = timezone.now() - timedelta(seconds=1)
    ShopSyncState.objects.filter(shop=shop).update(lease_owner="dead", lease_expires_at=expired)
    now = timezone.now()
    outcomes = run_together([lambda i=i: sync.acquire_lease(shop, f"heir-{i}", now=now) for i in range(2)])
    assert sorted(value for _, value in outcomes) == [False, True]
    assert ShopSyncState.objects.get(shop=shop).lease_owner.startswith("heir-")
