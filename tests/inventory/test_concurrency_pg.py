"""Concurrent allocations on PostgreSQL never oversell, never deadlock, and keep the books.

Real threads, each with its own database connection, released together by a barrier,
race for the last units of a pool. Each test commits for real (`transaction=True`), so
the row locks taken by `allocate_order` (`select_for_update`, pools in id order) are
what keeps the stock right — not a test transaction wrapped around everything.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Callable

import pytest
from django.db.models import Sum

from config.actors import Actor, Source
from inventory.audit import audit
from inventory.models import Reservation, StockLevel, StockMove
from orders import services
from orders.models import HoldReason, Order, OrderLine, OrderStatus as S
from tests.concurrency import run_together
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SYSTEM = Actor.system("concurrency-test", source=Source.JOB)


def allocate(order: Order) -> Callable[[], Order]:
    return lambda: services.order_allocate(order=order, actor=SYSTEM)


def errors_of(outcomes) -> list[BaseException]:
    return [value for kind, value in outcomes if kind == "error"]


def assert_pools_sound() -> None:
    """0 <= reserved <= on_hand, reserved == active reservations, for every pool."""
    active = dict(
        Reservation.objects.filter(status=Reservation.Status.ACTIVE)
        .values("stock_level").annotate(q=Sum("quantity")).values_list("stock_level", "q")
    )
    for pool in StockLevel.objects.all():
        assert 0 <= pool.reserved <= pool.on_hand, pool
        assert pool.reserved == active.get(pool.pk, 0), pool


def assert_allocations_whole(orders: list[Order]) -> tuple[list[Order], list[Order]]:
    """Allocated orders have every line fully reserved; held ones reserve nothing.

    Returns (allocated, held), re-read from the database.
    """
    fresh = list(Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("pk"))
    reserved = defaultdict(int)
    for line_id, quantity in Reservation.objects.filter(
        order_line__order__in=fresh, status=Reservation.Status.ACTIVE
    ).values_list("order_line_id", "quantity"):
        reserved[line_id] += quantity
    allocated, held = [], []
    for order in fresh:
        lines = list(order.lines.all())
        if order.status == S.ALLOCATED:
            assert order.hold_reason == ""
            for line in lines:
                assert reserved[line.pk] == line.quantity, (order.number, line)
            allocated.append(order)
        else:
            assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.STOCK_SHORT), order.number
            assert all(reserved[line.pk] == 0 for line in lines), order.number
            assert order.events.filter(kind="held").count() == 1
            held.append(order)
        assert order.events.filter(kind="allocated").count() == int(order.status == S.ALLOCATED)
    return allocated, held


def test_two_dozen_orders_race_for_the_last_ten_units_and_exactly_ten_win():
    # Given 10 units of one SKU across two warehouses and 24 paid one-unit orders
    near, far = WarehouseFactory(), WarehouseFactory()
    sku = SkuFactory()
    stock(near, sku, 6)
    stock(far, sku, 4)
    orders = [make_order(lines=[(sku, 1)]) for _ in range(24)]

    # When all 24 are allocated at the same moment
    outcomes = run_together([allocate(o) for o in orders])

    # Then nobody failed (no deadlock, no serialization error), 10 won and 14 wait for stock
    assert errors_of(outcomes) == []
    allocated, held = assert_allocations_whole(orders)
    assert (len(allocated), len(held)) == (10, 14)
    pools = {p.warehouse_id: p for p in StockLevel.objects.filter(sku=sku)}
    assert (pools[near.pk].reserved, pools[far.pk].reserved) == (6, 4)
    assert (pools[near.pk].on_hand, pools[far.pk].on_hand) == (6, 4)
    assert StockMove.objects.filter(kind=StockMove.Kind.RESERVE).count() == 10
    assert_pools_sound()
    assert audit() == []


def test_multi_unit_and_multi_line_orders_on_two_skus_neither_oversell_nor_deadlock():
    # Given two SKUs with a few units in each of two warehouses (created so that one SKU's
    # pools sort before the other's in one warehouse and after it in the other)
    wh1, wh2 = WarehouseFactory(), WarehouseFactory()
    a, b = SkuFactory(), SkuFactory()
    stock(wh1, a, 4)
    stock(wh1, b, 3)
    stock(wh2, b, 5)
    stock(wh2, a, 3)
    supply = {a.pk: 7, b.pk: 8}
    # and 30 orders of 2-3 units: single-line on either SKU, and two-line orders whose lines
    # come in both orders (A then B, B then A), far more than the stock covers
    rng = random.Random(20240611)
    shapes = [
        lambda: [(a, rng.choice([2, 3]))],
        lambda: [(b, rng.choice([2, 3]))],
        lambda: [(a, 1), (b, rng.choice([1, 2]))],
        lambda: [(b, rng.choice([1, 2])), (a, rng.choice([1, 2]))],
    ]
    orders = [make_order(lines=shapes[i % len(shapes)]()) for i in range(30)]

    # When they are all allocated at once
    outcomes = run_together([allocate(o) for o in orders])

    # Then no worker failed, each order is all-or-nothing, and the pools add up
    assert errors_of(outcomes) == []
    allocated, held = assert_allocations_whole(orders)
    assert allocated and held
    demand = Counter()
    for line in OrderLine.objects.filter(order__in=allocated):
        demand[line.sku_id] += line.quantity
    for sku in (a, b):
        reserved = StockLevel.objects.filter(sku=sku).aggregate(r=Sum("reserved"))["r"]
        assert reserved == demand[sku.pk] <= supply[sku.pk]
    # A held order was refused for a reason that still holds: some SKU it needs has fewer
    # units left (in all warehouses together) than it wants, since stock only went down.
    left = {sku.pk: supply[sku.pk] - demand[sku.pk] for sku in (a, b)}
    for order in held:
        need = Counter()
        for line in order.lines.all():
            need[line.sku_id] += line.quantity
        assert any(need[sku_id] > left[sku_id] for sku_id in need), order.number
    assert_pools_sound()
    assert audit() == []


def test_cancellations_racing_allocations_hand_stock_over_without_losing_a_unit():
    # Given 5 units of one SKU, all reserved by 5 allocated orders
    wh = WarehouseFactory()
    other = WarehouseFactory()
    sku = SkuFactory()
    stock(wh, sku, 3)
    stock(other, sku, 2)
    first = [make_order(lines=[(sku, 1)]) for _ in range(5)]
    for order in first:
        assert services.order_allocate(order=order, actor=SYSTEM).status == S.ALLOCATED
    waiting = [make_order(lines=[(sku, 1)]) for _ in range(15)]
    supervisor = Actor.of(staff("supervisor", username="sup-cancel"), Source.ADMIN)

    # When the 5 are cancelled while 15 new orders are allocated, all at once
    cancels = [lambda o=o: services.order_cancel(order=o, actor=supervisor, reason="客户取消") for o in first]
    outcomes = run_together(cancels + [allocate(o) for o in waiting])

    # Then every call succeeded and no unit was lost or counted twice
    assert errors_of(outcomes) == []
    assert set(Order.objects.filter(pk__in=[o.pk for o in first]).values_list("status", flat=True)) == {S.CANCELLED}
    assert not Reservation.objects.filter(order_line__order__in=first, status=Reservation.Status.ACTIVE).exists()
    assert StockMove.objects.filter(kind=StockMove.Kind.RELEASE).count() == 5
    allocated, held = assert_allocations_whole(waiting)
    assert len(allocated) + len(held) == 15
    assert 0 <= len(allocated) <= 5
    totals = StockLevel.objects.filter(sku=sku).aggregate(on_hand=Sum("on_hand"), reserved=Sum("reserved"))
    assert totals == {"on_hand": 5, "reserved": len(allocated)}
    assert_pools_sound()
    assert audit() == []
