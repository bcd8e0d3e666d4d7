"""The order list in a real browser: badges, ship-by countdown, row buttons, and a bulk hold
through its confirmation page with one result message per order (screenshots saved)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders import services
from orders.models import Order
from tests.factories import SYSTEM, SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_supervisor_holds_two_orders_from_the_list(live_server, transactional_db, browser_page, results_dir):
    warehouse = WarehouseFactory(code="suzhou", name="苏州仓")
    sku = SkuFactory(code="E2E-OL", name="折叠盆")
    stock(warehouse, sku, 5)
    late = make_order(lines=[(sku, 1)], promised_ship_at=timezone.now() - timedelta(hours=2, minutes=10))
    soon = make_order(lines=[(sku, 1)], promised_ship_at=timezone.now() + timedelta(hours=3, minutes=10))
    done = services.order_cancel(order=make_order(lines=[(sku, 1)]), actor=SYSTEM, reason="x")
    staff("supervisor")
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "supervisor")
    page.fill("#id_password", "pass-1234")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/orders/order/")
    rows = page.locator("#result_list tbody tr")
    assert "已超时 2 小时" in rows.filter(has_text=late.number).inner_text()
    assert "剩余 3 小时" in rows.filter(has_text=soon.number).inner_text()
    assert rows.filter(has_text=late.number).locator("a.row-action-allocate").count() == 1
    page.screenshot(path=str(results_dir / "orderlist_1_list.png"), full_page=True)

    for order in (late, done):
        rows.filter(has_text=order.number).locator("input.action-select").check()
    page.select_option("select[name=action]", "hold_selected")
    page.click("button[name=index]")
    page.wait_for_selector("#bulk-confirm")
    page.select_option("#id_reason", "address")
    page.fill("#id_note", "门牌号待确认")
    page.screenshot(path=str(results_dir / "orderlist_2_hold_confirm.png"), full_page=True)
    page.click("input[name=apply]")
    page.wait_for_selector("ul.messagelist")
    text = page.locator("ul.messagelist").inner_text()
    assert f"{late.number}:成功" in text and f"{done.number}:拒绝" in text and "成功 1 单" in text
    page.screenshot(path=str(results_dir / "orderlist_3_results.png"), full_page=True)

    assert Order.objects.get(pk=late.pk).status == "on_hold"
    assert Order.objects.get(pk=late.pk).hold_note == "门牌号待确认"
    assert Order.objects.get(pk=done.pk).status == "cancelled"
    assert errors == []
