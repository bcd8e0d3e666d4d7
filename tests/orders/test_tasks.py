"""Background jobs: reservation expiry, the nightly inventory audit, stock-short retry."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from inventory import services as inventory_services
from inventory.audit import audit
from inventory.models import Reservation, StockLevel
from inventory.tasks import run_inventory_audit
from orders import services
from orders.models import HoldReason, Order, OrderStatus
from orders.tasks import expire_lead_time_reservations, retry_stock_short_orders
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db


def _reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def lead_time_order(system):
    """An order allocated now from a warehouse with a transfer lead time (T+2)."""
    warehouse = WarehouseFactory(code="transfer", lead_time_days=2)
    sku = SkuFactory()
    stock(warehouse, sku, 10)
    order = services.order_allocate(order=make_order(lines=[(sku, 3)]), actor=system)
    assert order.status == OrderStatus.ALLOCATED
    reservation = Reservation.objects.get(order_line__order=order)
    assert reservation.expires_at is not None
    return order


def _later(hours: float):
    return time_machine.travel(timezone.now() + timedelta(hours=hours), tick=False)


# --- reservation expiry ---------------------------------------------------------------------
def test_expiry_releases_lead_time_stock_held_past_24_hours_and_holds_the_order(lead_time_order):
    with _later(25):
        assert expire_lead_time_reservations() == 1
    order = _reload(lead_time_order)
    assert (order.status, order.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.RESERVATION_EXPIRED)
    reservation = Reservation.objects.get(order_line__order=order)
    assert reservation.status == Reservation.Status.RELEASED
    pool = StockLevel.objects.get(pk=reservation.stock_level_id)
    assert (pool.on_hand, pool.reserved) == (10, 0)
    held = order.events.get(kind="held")
    assert (held.source, held.actor_label) == ("job", "reservation_expiry")
    assert audit() == []


def test_expiry_twice_changes_nothing_more(lead_time_order):
    with _later(25):
        expire_lead_time_reservations()
        events = lead_time_order.events.count()
        moves = StockLevel.objects.get().moves.count()
        assert expire_lead_time_reservations() == 0
    assert lead_time_order.events.count() == events
    assert StockLevel.objects.get().moves.count() == moves
    assert _reload(lead_time_order).status == OrderStatus.ON_HOLD


def test_expiry_leaves_reservations_younger_than_24_hours(lead_time_order):
    with _later(23):
        assert expire_lead_time_reservations() == 0
    assert _reload(lead_time_order).status == OrderStatus.ALLOCATED
    assert Reservation.objects.get().status == Reservation.Status.ACTIVE


def test_expiry_leaves_a_packed_order_alone(lead_time_order, system):
    services.order_pack(order=lead_time_order, actor=system)
    with _later(48):
        assert expire_lead_time_reservations() == 0
    assert _reload(lead_time_order).status == OrderStatus.PACKED
    assert Reservation.objects.get().status == Reservation.Status.ACTIVE
    assert StockLevel.objects.get().reserved == 3


def test_expiry_leaves_a_confirmed_reservation_alone(lead_time_order, system):
    services.order_confirm_stock(order=lead_time_order, actor=system)
    with _later(48):
        assert expire_lead_time_reservations() == 0
    assert _reload(lead_time_order).status == OrderStatus.ALLOCATED
    assert StockLevel.objects.get().reserved == 3


def test_expiry_never_touches_stock_without_a_lead_time(system):
    warehouse, sku = WarehouseFactory(lead_time_days=0), SkuFactory()
    stock(warehouse, sku, 5)
    order = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system)
    with _later(24 * 30):
        assert expire_lead_time_reservations() == 0
    assert _reload(order).status == OrderStatus.ALLOCATED


# --- nightly inventory audit ----------------------------------------------------------------
def test_audit_task_returns_the_pools_checked_when_the_books_balance(system):
    stock(WarehouseFactory(), SkuFactory(), 5)
    stock(WarehouseFactory(), SkuFactory(), 7)
    assert run_inventory_audit() == 2


def test_audit_task_fails_loudly_naming_the_broken_pool(system):
    pool = stock(WarehouseFactory(code="broken"), SkuFactory(code="SKU-X"), 5)
    StockLevel.objects.filter(pk=pool.pk).update(on_hand=9)  # a write that bypassed the ledger
    with pytest.raises(RuntimeError) as excinfo:
        run_inventory_audit()
    message = str(excinfo.value)
    assert "1 problem" in message and "broken/SKU-X" in message and "on_hand 9 != ledger 5" in message


# --- stock-short retry ----------------------------------------------------------------------
@pytest.fixture
def short_order(system):
    warehouse, sku = WarehouseFactory(code="main"), SkuFactory(code="SKU-SHORT")
    order = services.order_allocate(order=make_order(lines=[(sku, 2)]), actor=system)
    assert (order.status, order.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.STOCK_SHORT)
    return order, warehouse, sku


def test_retry_allocates_a_stock_short_order_once_stock_arrives(short_order):
    order, warehouse, sku = short_order
    stock(warehouse, sku, 5)
    assert retry_stock_short_orders() == 1
    order = _reload(order)
    assert (order.status, order.hold_reason) == (OrderStatus.ALLOCATED, "")
    assert StockLevel.objects.get(warehouse=warehouse, sku=sku).reserved == 2
    assert list(order.events.filter(source="job").values_list("kind", flat=True)) == ["released", "allocated"]
    assert audit() == []


def test_retry_twice_allocates_once(short_order):
    order, warehouse, sku = short_order
    stock(warehouse, sku, 5)
    assert retry_stock_short_orders() == 1
    assert retry_stock_short_orders() == 0
    assert StockLevel.objects.get(warehouse=warehouse, sku=sku).reserved == 2
    assert _reload(order).events.filter(kind="allocated").count() == 1


def test_retry_without_enough_stock_leaves_the_order_and_its_timeline_alone(short_order):
    order, warehouse, sku = short_order
    stock(warehouse, sku, 1)  # still one short
    events = order.events.count()
    assert retry_stock_short_orders() == 0
    order = _reload(order)
    assert (order.status, order.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.STOCK_SHORT)
    assert order.events.count() == events
    assert StockLevel.objects.get().reserved == 0


def test_retry_that_still_falls_short_rolls_the_release_back(system):
    """Stock exists, but not where the order may ship from (another country): nothing changes."""
    sku = SkuFactory()
    order = services.order_allocate(order=make_order(lines=[(sku, 1)], country="US", province="California",
                                                     city="Los Angeles", phone="+1 213-734-2231"), actor=system)
    assert order.hold_reason == HoldReason.STOCK_SHORT
    stock(WarehouseFactory(country="CN"), sku, 5)
    events = order.events.count()
    assert retry_stock_short_orders() == 0
    order = _reload(order)
    assert (order.status, order.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.STOCK_SHORT)
    assert order.events.count() == events


def test_retry_leaves_orders_held_for_other_reasons(system):
    warehouse, sku = WarehouseFactory(), SkuFactory()
    stock(warehouse, sku, 5)
    order = services.order_hold(order=make_order(lines=[(sku, 1)]), actor=system, note="买家要求暂缓发货")
    assert retry_stock_short_orders() == 0
    assert (_reload(order).status, _reload(order).hold_reason) == (OrderStatus.ON_HOLD, HoldReason.MANUAL)
