"""The stock-short retry job makes progress over every held order, however many are stuck."""

from __future__ import annotations

import pytest

from inventory.models import StockLevel
from orders import services
from orders.models import HoldReason, Order, OrderStatus
from orders.tasks import retry_stock_short_orders
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db


def test_retry_reaches_a_servable_order_behind_250_permanently_short_ones(system):
    warehouse, never, arriving = WarehouseFactory(code="main"), SkuFactory(code="NEVER"), SkuFactory(code="ARRIVING")
    for _ in range(250):
        services.order_allocate(order=make_order(lines=[(never, 1)]), actor=system)
    last = services.order_allocate(order=make_order(lines=[(arriving, 2)]), actor=system)
    assert Order.objects.filter(status=OrderStatus.ON_HOLD, hold_reason=HoldReason.STOCK_SHORT).count() == 251
    stock(warehouse, arriving, 2)

    assert retry_stock_short_orders() == 1

    last.refresh_from_db()
    assert (last.status, last.hold_reason) == (OrderStatus.ALLOCATED, "")
    assert StockLevel.objects.get(sku=arriving).reserved == 2
    assert Order.objects.filter(status=OrderStatus.ON_HOLD, hold_reason=HoldReason.STOCK_SHORT).count() == 250
