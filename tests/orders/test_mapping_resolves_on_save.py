"""Saving a SKU mapping — by any path — re-resolves the orders held for it, after commit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from inventory.models import SkuMapping, StockLevel
from orders import services
from orders.models import HoldReason, Order, OrderEvent, OrderStatus as S
from orders.platforms.base import NormalizedLine, NormalizedOrder
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, stock

pytestmark = pytest.mark.django_db


def _held_order(system, shop, platform_order_id, platform_sku_id, qty=2):
    data = NormalizedOrder(platform_order_id=platform_order_id, paid=True, paid_amount=Decimal("10"),
                           lines=[NormalizedLine(title="x", quantity=qty, platform_sku_id=platform_sku_id)])
    order = services.order_create(shop=shop, data=data, actor=system)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.SKU_UNMAPPED)
    return order


def test_saving_a_mapping_unblocks_only_the_orders_waiting_for_it(system, django_capture_on_commit_callbacks):
    shop, other_shop, sku, wh = ShopFactory(), ShopFactory(), SkuFactory(), WarehouseFactory()
    stock(wh, sku, 10)
    waiting = _held_order(system, shop, "W-1", "P-1")
    other_sku = _held_order(system, shop, "W-2", "P-2")
    other_shop_order = _held_order(system, other_shop, "W-3", "P-1")

    with django_capture_on_commit_callbacks(execute=True):
        SkuMapping.objects.create(shop=shop, platform_sku_id="P-1", sku=sku)

    waiting.refresh_from_db()
    assert waiting.status == S.ALLOCATED and waiting.lines.get().sku == sku
    assert OrderEvent.objects.filter(order=waiting, kind="skus_resolved", actor_label="sku_mapping").count() == 1
    assert StockLevel.objects.get(warehouse=wh, sku=sku).reserved == 2
    for untouched in (other_sku, other_shop_order):
        untouched.refresh_from_db()
        assert (untouched.status, untouched.hold_reason) == (S.ON_HOLD, HoldReason.SKU_UNMAPPED)


def test_fixing_a_mapping_resolves_too_and_a_short_order_stays_held_for_stock(system, django_capture_on_commit_callbacks):
    shop, sku, wh = ShopFactory(), SkuFactory(), WarehouseFactory()
    stock(wh, sku, 1)
    order = _held_order(system, shop, "W-9", "P-9", qty=3)
    mapping = SkuMapping.objects.create(shop=shop, platform_sku_id="P-OTHER", sku=sku)
    with django_capture_on_commit_callbacks(execute=True):
        mapping.platform_sku_id = "P-9"
        mapping.save()
    order = Order.objects.get(pk=order.pk)
    assert order.lines.get().sku == sku
    assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.STOCK_SHORT)
    assert StockLevel.objects.get(warehouse=wh, sku=sku).reserved == 0


@pytest.mark.parametrize("role, allowed", [
    ("customer_service", True), ("operations", True), ("supervisor", True),
    ("warehouse", False), ("finance", False),
])
def test_admin_action_resolves_selected_orders_for_roles_that_may_release(system, client, role, allowed):
    from django.urls import reverse

    from tests.factories import staff

    shop, sku, wh = ShopFactory(), SkuFactory(), WarehouseFactory()
    stock(wh, sku, 10)
    order = _held_order(system, shop, "A-1", "P-7")
    # Mapping saved inside the test transaction: its on-commit re-resolve does not run here,
    # so only the admin action can unblock the order.
    SkuMapping.objects.create(shop=shop, platform_sku_id="P-7", sku=sku)
    client.force_login(staff(role))
    response = client.post(reverse("admin:orders_order_changelist"),
                           {"action": "resolve_skus_selected", "_selected_action": [order.pk]}, follow=True)
    assert response.status_code == 200
    order.refresh_from_db()
    if allowed:
        assert order.status == S.ALLOCATED and order.lines.get().sku == sku
        assert "SKU 已全部匹配 1 单" in response.content.decode()
    else:
        assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.SKU_UNMAPPED)
        assert order.lines.get().sku is None
