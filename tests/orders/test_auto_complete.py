"""Delivered orders complete by themselves N days after delivery, unless something is open."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orders import batch_tasks, services
from orders.models import EventKind, Order, OrderEvent, OrderStatus
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db
DELIVERED_AT = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def delivered(system):
    """make(days_ago=…) → an order delivered `DELIVERED_AT`."""
    sku = SkuFactory(code="SKU-AC")
    wh = WarehouseFactory(code="ac")
    stock(wh, sku, 100)

    def make() -> Order:
        order = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system)
        order = services.order_pack(order=order, actor=system)
        order = services.order_ship(order=order, actor=system, carrier="SF", tracking_number=f"SF{order.pk:06d}",
                                    at=DELIVERED_AT - timedelta(days=2))
        return services.order_deliver(order=order, actor=system, at=DELIVERED_AT)

    return make


def status(order: Order) -> str:
    return Order.objects.get(pk=order.pk).status


def test_a_delivered_order_completes_after_seven_days_with_an_event(delivered):
    order = delivered()
    result = batch_tasks.auto_complete_delivered(now=DELIVERED_AT + timedelta(days=7, minutes=1))
    assert result["completed"] == [order.number]
    assert status(order) == OrderStatus.COMPLETED
    event = OrderEvent.objects.get(order=order, kind=EventKind.COMPLETED)
    assert (event.from_status, event.to_status, event.actor_label, event.source) == (
        "delivered", "completed", "auto complete", "job")
    assert event.occurred_at == DELIVERED_AT + timedelta(days=7, minutes=1)


def test_not_before_n_days(delivered):
    order = delivered()
    assert batch_tasks.auto_complete_delivered(now=DELIVERED_AT + timedelta(days=6, hours=23))["completed"] == []
    assert status(order) == OrderStatus.DELIVERED


def test_n_is_configurable(delivered, settings):
    settings.ORDERHUB = {**settings.ORDERHUB, "AUTO_COMPLETE_DAYS": 3}
    order = delivered()
    batch_tasks.auto_complete_delivered(now=DELIVERED_AT + timedelta(days=3, minutes=1))
    assert status(order) == OrderStatus.COMPLETED


def test_a_refund_request_blocks_it(delivered):
    order = delivered()
    Order.objects.filter(pk=order.pk).update(refund_requested=True)
    assert batch_tasks.auto_complete_delivered(now=DELIVERED_AT + timedelta(days=30))["completed"] == []
    assert status(order) == OrderStatus.DELIVERED
    assert not OrderEvent.objects.filter(order=order, kind=EventKind.COMPLETED).exists()


def test_an_open_aftersales_case_blocks_it(delivered, monkeypatch):
    blocked, free = delivered(), delivered()
    monkeypatch.setattr(batch_tasks, "aftersales_open", lambda order: order.pk == blocked.pk)
    result = batch_tasks.auto_complete_delivered(now=DELIVERED_AT + timedelta(days=8))
    assert result == {"completed": [free.number], "skipped": [blocked.number]}
    assert (status(blocked), status(free)) == (OrderStatus.DELIVERED, OrderStatus.COMPLETED)


def test_only_delivered_orders_and_only_once(delivered, system):
    order = delivered()
    shipped = services.order_allocate(order=make_order(lines=[(SkuFactory(code="SKU-AC"), 1)]), actor=system)
    shipped = services.order_pack(order=shipped, actor=system)
    shipped = services.order_ship(order=shipped, actor=system, carrier="SF", tracking_number="SF999999",
                                  at=DELIVERED_AT - timedelta(days=30))
    later = DELIVERED_AT + timedelta(days=40)
    assert batch_tasks.auto_complete_delivered(now=later)["completed"] == [order.number]
    assert batch_tasks.auto_complete_delivered(now=later)["completed"] == []
    assert status(shipped) == OrderStatus.SHIPPED
    assert OrderEvent.objects.filter(order=order, kind=EventKind.COMPLETED).count() == 1


def test_the_schedules_include_the_pick_batches_and_auto_complete(settings):
    from orders.management.commands import setup_schedules

    by_name = {s["name"]: s for s in setup_schedules.SCHEDULES}
    assert by_name["pick batch"]["cron"] == "0 9,15 * * *"
    assert by_name["pick batch"]["func"] == "orders.batch_tasks.build_pick_batches"
    assert (by_name["auto complete"]["func"], by_name["auto complete"]["minutes"]) == (
        "orders.batch_tasks.auto_complete_delivered", 60)
    settings.ORDERHUB = {**settings.ORDERHUB, "PICK_BATCH_TIMES": ["08:30", "14:30", "20:00"]}
    assert [s["cron"] for s in setup_schedules._pick_batch_schedules()] == ["0 20 * * *", "30 8,14 * * *"]


def test_the_scheduled_batch_builds_one_batch_per_warehouse_with_orders(system):
    from orders.models import PickBatch

    sku = SkuFactory(code="SKU-PB")
    a, b = WarehouseFactory(code="pa", priority=1), WarehouseFactory(code="pb", priority=2)
    stock(a, sku, 5)
    services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system)
    built = batch_tasks.build_pick_batches(slot="09:00")
    assert list(built) == ["pa"]
    batch = PickBatch.objects.get()
    assert (batch.warehouse, batch.slot, batch.order_count, batch.created_by) == (a, "09:00", 1, "pick batch")
    assert batch_tasks.build_pick_batches(slot="15:00") == {}
    assert b.pick_batches.count() == 0
