"""A supervisor allocates a paid order from its admin page, in a real browser."""

from __future__ import annotations

import pytest

from inventory.audit import audit
from inventory.models import StockLevel
from orders.models import Order, OrderEvent
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def login(page, base_url: str, username: str, password: str = "pass-1234") -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def test_supervisor_allocates_a_paid_order_with_the_button(live_server, transactional_db, browser_page, results_dir):
    warehouse = WarehouseFactory(code="suzhou", name="苏州仓")
    sku = SkuFactory(code="E2E-1", name="折叠盆")
    stock(warehouse, sku, 5)
    order = make_order(lines=[(sku, 2)], platform_order_id="E2E-1001")
    staff("supervisor")
    page = browser_page

    login(page, live_server.url, "supervisor")
    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    panel = page.locator("#order-transitions")
    assert "已付款" in panel.locator(".current").inner_text()
    assert panel.locator("button", has_text="打包").count() == 0  # not from paid

    panel.locator("button", has_text="分仓预占").click()
    page.wait_for_url(f"**/admin/orders/order/{order.pk}/change/")

    assert "已分仓" in page.locator("#order-transitions .current").inner_text()
    assert "已分仓" in page.locator("ul.messagelist").inner_text()
    assert panel.locator("button", has_text="打包").count() == 1
    page.screenshot(path=str(results_dir / "admin_order_allocated.png"), full_page=True)

    assert Order.objects.get(pk=order.pk).status == "allocated"
    assert OrderEvent.objects.filter(order=order, kind="allocated", actor__username="supervisor", source="admin").exists()
    assert StockLevel.objects.get(sku=sku).reserved == 2
    assert audit() == []
