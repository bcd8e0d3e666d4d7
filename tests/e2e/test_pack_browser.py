"""Packing by scan on a phone (375×667) in a real browser: a 苏州仓 keeper opens a box by its
order number, scans its SKUs (typed + Enter, as a scanner does), confirms packing, then ships
it on a tracking number. No console errors; nothing wider than the screen."""

from __future__ import annotations

from decimal import Decimal

import pytest

from config.actors import Actor
from inventory.audit import audit
from inventory.models import StockLevel
from orders import batches, services
from orders.models import Order, ParcelOrder, Shipment
from orders.platforms.base import NormalizedLine, NormalizedOrder
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, scoped, staff, stock

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("tests")


def _order(shop, lines, gifts):
    data = NormalizedOrder(
        platform_order_id="E2E-PACK-1", paid=True, paid_amount=Decimal("100"), goods_amount=Decimal("100"),
        receiver_name="张三", receiver_phone="13800138000", buyer_phone="13800138000", province="江苏省",
        city="苏州市", district="姑苏区", address="人民路 1 号",
        lines=[NormalizedLine(title=s.name, quantity=q, unit_price=Decimal("10"), sku_code=s.code) for s, q in lines]
        + [NormalizedLine(title=f"赠品 {s.name}", quantity=q, sku_code=s.code, is_gift=True) for s, q in gifts])
    return services.order_allocate(order=services.order_create(shop=shop, data=data, actor=SYSTEM), actor=SYSTEM)


def _no_overflow(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_a_keeper_packs_and_ships_a_parcel_by_scan_on_a_phone(live_server, transactional_db, browser_page,
                                                             results_dir):
    su = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    cup = SkuFactory(code="SKU-CUP", name="折叠杯 350ml 雾霾蓝", barcode="6901000000011")
    spoon = SkuFactory(code="SKU-SPOON", name="小勺", barcode="6901000000095")
    stock(su, cup, 10)
    stock(su, spoon, 10)
    StockLevel.objects.filter(warehouse=su, sku=cup).update(location="A-01-02")
    order = _order(ShopFactory(code="tmall"), [(cup, 2)], [(spoon, 1)])
    batches.batch_build(warehouse=su, actor=SYSTEM)
    parcel = ParcelOrder.objects.get(order=order).parcel
    scoped(staff("warehouse", "su-keeper"), warehouses=[su])

    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    failed: list[tuple[int, str]] = []  # a refusal is an HTTP 400/409 page: Chrome logs it as a failed load
    page.on("response", lambda r: failed.append((r.status, r.url.split("/", 3)[-1])) if r.status >= 400 else None)
    page.set_viewport_size({"width": 375, "height": 667})

    page.goto(f"{live_server.url}/pack/")  # anonymous: the admin login, then back here
    page.fill("#id_username", "su-keeper")
    page.fill("#id_password", "pass-1234")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/pack/")
    assert page.locator("#current-warehouse").inner_text() == "苏州仓"
    assert page.locator("#count-to-pack").inner_text() == "1"
    assert parcel.code in page.locator("#to-pack").inner_text()
    assert page.evaluate("document.activeElement.id") == "scan-code"  # autofocus: the scanner types here
    _no_overflow(page)
    page.screenshot(path=str(results_dir / "pack_list.png"), full_page=True)

    page.keyboard.type(order.number)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/pack/box/P{parcel.pk}/")
    assert page.locator("#confirm-pack").is_disabled()

    for code in ("6901000000011", "6901000000011"):
        page.keyboard.type(code)  # focus is back in the scan field after each scan
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert "已扫 2 / 3 件" in page.locator("#unit-progress").inner_text()
    page.keyboard.type("6901000000011")  # one too many
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "数量超出" in page.locator("#scan-error").inner_text()
    _no_overflow(page)
    page.screenshot(path=str(results_dir / "pack_scanning.png"), full_page=True)

    page.keyboard.type("SKU-SPOON")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "已扫 3 / 3 件" in page.locator("#unit-progress").inner_text()
    page.click("#confirm-pack")
    page.wait_for_selector("#ship-form")
    assert page.locator("#unit-state").inner_text() == "已装箱待发货"
    assert Order.objects.get(pk=order.pk).status == "packed"
    _no_overflow(page)
    page.screenshot(path=str(results_dir / "pack_packed.png"), full_page=True)

    page.select_option("#ship-carrier", "SF")
    page.fill("#ship-tracking", "SF1234567890")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/pack/")
    assert page.locator("#count-shipped").inner_text() == "1"
    assert "已发货" in page.locator(".messages").inner_text()
    page.screenshot(path=str(results_dir / "pack_shipped.png"), full_page=True)

    shipment = Shipment.objects.get(order=order)
    assert (Order.objects.get(pk=order.pk).status, shipment.status, shipment.tracking_number) == (
        "shipped", "shipped", "SF1234567890")
    assert StockLevel.objects.get(warehouse=su, sku=cup).on_hand == 8
    assert audit() == []
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []
    assert [f for f in failed if f[1] != "favicon.ico"] == [(400, f"pack/box/P{parcel.pk}/")]  # the one refusal
