"""The customer H5 portal in a real browser at phone size (375 × 667): phone → code from the
outbox → my orders → the timeline; and the lock-out after too many wrong codes. No request
may fail and no page may log a JavaScript or CSP error."""

from __future__ import annotations

import re

import pytest

from config.actors import Actor
from orders import services as order_services
from portal.models import PortalLoginCode, PortalSmsOutbox
from tests.factories import SkuFactory, WarehouseFactory, stock
from tests.portal.conftest import place_order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = "13800138000"
SYSTEM = Actor.system("tests")


@pytest.fixture
def phone_page(browser_page, results_dir):
    """The browser page at 375 × 667, recording every problem a customer would hit."""
    from django.core.cache import cache

    cache.clear()  # rate-limit counters: the database cache table is not flushed between tests
    page = browser_page
    page.set_viewport_size({"width": 375, "height": 667})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.problems = problems
    out = results_dir / "portal"
    out.mkdir(parents=True, exist_ok=True)
    page.shot = lambda name: page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    return page


def outbox_code() -> str:
    text = PortalSmsOutbox.objects.order_by("-id").values_list("text", flat=True).first()
    return re.search(r"\b(\d{6})\b", text).group(1)


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= 375


def test_phone_code_orders_and_timeline(live_server, phone_page):
    warehouse = WarehouseFactory(code="e2e-wh", name="SECRET仓")
    sku = SkuFactory(code="E2E-P1", name="折叠盆")
    stock(warehouse, sku, 5)
    shipped = place_order(buyer=PHONE, sku=sku, title="折叠收纳盆(大号)", seller_note="SECRET")
    shipped = order_services.order_allocate(order=shipped, actor=SYSTEM)
    shipped = order_services.order_pack(order=shipped, actor=SYSTEM)
    order_services.order_ship(order=shipped, actor=SYSTEM, carrier="SF", tracking_number="SF1122334455")
    place_order(buyer=PHONE, title="厨房置物架")
    page, base = phone_page, live_server.url

    page.goto(f"{base}/h5/")
    assert page.locator("h1").inner_text() == "查询我的订单"
    assert fits_the_screen(page)
    page.shot("1-phone")
    page.fill("#id_phone", PHONE)
    page.click("button.primary")
    page.wait_for_url(f"{base}/h5/verify/")
    assert "138****8000" in page.inner_text("main")
    page.shot("2-code")

    page.fill("#id_code", outbox_code())
    page.click("button.primary")
    page.wait_for_url(f"{base}/h5/orders/")
    cards = page.locator("a.card.order")
    assert cards.count() == 2
    assert "厨房置物架" in cards.nth(0).inner_text()  # newest first
    assert "运输中" in cards.nth(1).inner_text()
    assert fits_the_screen(page)
    page.shot("3-orders")

    cards.nth(1).click()
    page.wait_for_url(re.compile(r".*/h5/orders/[A-Za-z0-9_-]{20,}/$"))
    steps = page.locator("#timeline li span").all_inner_texts()
    assert steps[0].startswith("已发货") and "SF1122334455" in steps[0]
    assert steps[-1] == "订单已提交"
    assert "顺丰速运" in page.inner_text("#parcels")
    body = page.inner_text("body")
    assert "SECRET" not in body
    assert fits_the_screen(page)
    page.shot("4-timeline")

    assert page.problems == []


def test_too_many_wrong_codes_lock_the_code(live_server, phone_page):
    place_order(buyer=PHONE)
    page, base = phone_page, live_server.url
    page.goto(f"{base}/h5/")
    page.fill("#id_phone", PHONE)
    page.click("button.primary")
    page.wait_for_url(f"{base}/h5/verify/")
    right = outbox_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"

    for left in (4, 3, 2, 1):
        page.fill("#id_code", wrong)
        page.click("button.primary")
        assert f"还可尝试 {left} 次" in page.inner_text("#verify-error")
    page.fill("#id_code", wrong)
    page.click("button.primary")

    assert "错误次数过多" in page.inner_text("#verify-error")
    assert page.locator("#id_code").count() == 0  # no form left for this code
    page.shot("5-locked")
    page.goto(f"{base}/h5/orders/")
    assert page.url == f"{base}/h5/"  # not logged in
    assert PortalLoginCode.objects.get().attempts == 5
    assert page.problems == []
