import pytest

from inventory.audit import audit
from orders import services
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db


def test_paid_order_allocates_ships_and_books_balance(system):
    wh = WarehouseFactory()
    sku = SkuFactory()
    stock(wh, sku, 5)
    order = make_order(lines=[(sku, 2)])
    assert order.status == "paid"
    order = services.order_allocate(order=order, actor=system)
    assert order.status == "allocated"
    order = services.order_pack(order=order, actor=system)
    order = services.order_ship(order=order, actor=system)
    assert order.status == "shipped"
    pool = sku.stock_levels.get()
    assert (pool.on_hand, pool.reserved) == (3, 0)
    assert audit() == []
