"""Batched and per-order allocations, and stock receipts/adjustments, at the same moment on
PostgreSQL: no deadlock, no oversell, every order all or nothing, the ledger balanced.

Real threads with their own connections, released together (`tests.concurrency`), each
committing for real (`transaction=True`), so the row locks are what keeps stock right.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.db.models import Sum

from config.actors import Actor, Source
from config.errors import InvalidInput, TransitionNotAllowed
from inventory import services as inventory
from inventory.audit import audit
from inventory.models import StockLevel, StockMove
from orders import services
from orders.models import Order, OrderLine
from tests.concurrency import run_together
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock
from tests.inventory.test_concurrency_pg import assert_allocations_whole, assert_pools_sound, errors_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SYSTEM = Actor.system("race-test", source=Source.JOB)


def per_order(orders: list[Order]):
    """Allocate these one by one; an order a batch got first is skipped (it is not paid any more)."""
    def call() -> Counter:
        seen = Counter()
        for order in orders:
            try:
                seen[services.order_allocate(order=order, actor=SYSTEM).status] += 1
            except TransitionNotAllowed:
                seen["taken"] += 1
        return seen
    return call


def bulk(orders: list[Order]):
    return lambda: services.order_allocate_bulk(order_ids=[o.pk for o in orders], actor=SYSTEM)


def two_skus_in_three_warehouses():
    warehouses = [WarehouseFactory(), WarehouseFactory(), WarehouseFactory(lead_time_days=2)]
    a, b = SkuFactory(), SkuFactory()
    # created so that the two SKUs' pools interleave differently in each warehouse
    for wh, sku, qty in [(warehouses[0], a, 5), (warehouses[0], b, 4), (warehouses[1], b, 6),
                         (warehouses[1], a, 3), (warehouses[2], a, 4), (warehouses[2], b, 2)]:
        stock(wh, sku, qty)
    return warehouses, a, b


def random_orders(a, b, n: int, seed: int) -> list[Order]:
    rng = random.Random(seed)
    shapes = [lambda: [(a, rng.randint(1, 3))], lambda: [(b, rng.randint(1, 3))],
              lambda: [(a, rng.randint(1, 2)), (b, rng.randint(1, 2))],
              lambda: [(b, rng.randint(1, 2)), (a, rng.randint(1, 2))]]
    return [make_order(lines=rng.choice(shapes)()) for _ in range(n)]


def test_batches_and_single_allocations_racing_over_the_same_orders_never_deadlock_or_oversell():
    # Given 24 units of two SKUs and 48 paid orders wanting far more
    _warehouses, a, b = two_skus_in_three_warehouses()
    supply = {a.pk: 12, b.pk: 12}
    orders = random_orders(a, b, 48, seed=11)

    # When two batches (each half the orders, interleaved) and four one-by-one workers
    # (walking all orders, from both ends) allocate at the same moment
    calls = [bulk(orders[0::2]), bulk(orders[1::2]),
             per_order(orders), per_order(orders[::-1]), per_order(orders[12:]), per_order(orders[30:])]
    outcomes = run_together(calls)

    # Then nobody failed, every order was decided once and is all or nothing, and the pools add up
    assert errors_of(outcomes) == []
    allocated, held = assert_allocations_whole(orders)
    assert len(allocated) + len(held) == 48 and allocated and held
    demand = Counter()
    for line in OrderLine.objects.filter(order__in=allocated):
        demand[line.sku_id] += line.quantity
    for sku in (a, b):
        assert StockLevel.objects.filter(sku=sku).aggregate(r=Sum("reserved"))["r"] == demand[sku.pk] <= supply[sku.pk]
    assert StockMove.objects.filter(kind=StockMove.Kind.RESERVE).count() == sum(
        o.reservations.count() for o in OrderLine.objects.filter(order__in=allocated))
    assert_pools_sound()
    assert audit() == []


def test_receipts_and_adjustments_racing_allocations_keep_ledger_and_counts_consistent():
    # Given two SKUs in three warehouses and 30 paid orders
    warehouses, a, b = two_skus_in_three_warehouses()
    before = {p.pk: p.on_hand for p in StockLevel.objects.all()}
    orders = random_orders(a, b, 30, seed=5)
    clerk = Actor.system("clerk", source=Source.ADMIN)

    def receive(wh, sku, qty):
        return lambda: inventory.stock_receive(warehouse=wh, sku=sku, quantity=qty, actor=clerk, reason="到货")

    def adjust(wh, sku, delta):
        def call():
            try:
                return inventory.stock_adjust(warehouse=wh, sku=sku, delta=delta, actor=clerk, reason="报损")
            except InvalidInput as exc:  # refused: it would go below what is reserved
                assert exc.code == "below_reserved"
                return None
        return call

    # When batches and single allocations run while goods arrive and damaged units are written off
    calls = [bulk(orders[0::3]), bulk(orders[1::3]), per_order(orders[2::3]), per_order(orders[::-1]),
             receive(warehouses[0], a, 3), receive(warehouses[1], b, 2), receive(warehouses[2], a, 1),
             adjust(warehouses[0], b, -2), adjust(warehouses[1], a, -1), adjust(warehouses[2], b, -1)]
    outcomes = run_together(calls)

    # Then nothing failed, and every pool's on-hand is what it started with plus the moves
    # that happened (receipts always, adjustments only when they were accepted)
    assert errors_of(outcomes) == []
    assert_allocations_whole(orders)
    for pool in StockLevel.objects.all():
        moved = pool.moves.exclude(kind=StockMove.Kind.RECEIPT, reason="test").aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
        assert pool.on_hand == before[pool.pk] + (moved["on_hand"] or 0)
        assert pool.reserved == (moved["reserved"] or 0)
        assert 0 <= pool.reserved <= pool.on_hand
    accepted = [v for kind, v in outcomes[7:] if v is not None]
    assert StockMove.objects.filter(kind=StockMove.Kind.ADJUSTMENT).count() == len(accepted)
    assert StockMove.objects.filter(kind=StockMove.Kind.RECEIPT, reason="到货").count() == 3
    # each ledger row's running counts follow the pool's own history, in id order
    for pool in StockLevel.objects.all():
        on_hand = reserved = 0
        for move in pool.moves.order_by("id"):
            on_hand += move.on_hand_delta
            reserved += move.reserved_delta
            assert (move.on_hand_after, move.reserved_after) == (on_hand, reserved), move
    assert_pools_sound()
    assert audit() == []
