"""The admin home in a real browser: a supervisor's panels with their SVG charts, every
chart bar a link, no console errors; screenshots in test-results/e2e/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from config.actors import Actor
from orders import services
from orders.models import HoldReason, Order, ShopSyncState, SyncStatus
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("tests")


def login(page, base_url: str, username: str, password: str = "pass-1234") -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def test_supervisor_home_with_charts(live_server, transactional_db, browser_page, results_dir):
    cache.clear()
    suzhou = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    beijing = WarehouseFactory(code="beijing", name="北京仓", priority=2)
    sku_sz, sku_bj = SkuFactory(code="SZ-1"), SkuFactory(code="BJ-1")
    stock(suzhou, sku_sz, 50)
    stock(beijing, sku_bj, 50)
    taobao, jd = ShopFactory(code="tb", platform="taobao"), ShopFactory(code="jd", platform="jd")
    orders = [services.order_transition(order=make_order(shop=shop, lines=[(sku, 1)]), name="allocate", actor=SYSTEM)
              for shop, sku in [(taobao, sku_sz)] * 4 + [(jd, sku_bj)] * 2 + [(jd, sku_sz)]]
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(promised_ship_at=timezone.now() + timedelta(minutes=5))
    Order.objects.filter(pk=orders[0].pk).update(promised_ship_at=timezone.now() - timedelta(hours=2))
    services.order_transition(order=make_order(shop=taobao, lines=[(sku_sz, 1)]), name="hold", actor=SYSTEM,
                              params={"reason": HoldReason.RISK})
    ShopSyncState.objects.create(shop=taobao, status=SyncStatus.FAILED, last_error="HTTP 502", lag_seconds=900)
    staff("supervisor")
    page = browser_page
    errors: list[str] = []
    # A failed load shows as a console error without its URL: those are checked by response
    # (the admin's other pages have no favicon; that 404 is not the home's).
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
            and not r.url.endswith("/favicon.ico") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.url)
            and not r.url.startswith("data:") else None)

    login(page, live_server.url, "supervisor")
    home = page.locator("#oh-home")
    assert home.locator("#oh-guide .oh-tip").count() == 3
    page.screenshot(path=str(results_dir / "dashboard_home_supervisor.png"), full_page=True)
    board = home.locator("#oh-board")
    assert "今日待发 — 苏州仓: 5" in board.inner_text()  # 4 taobao + 1 jd from 苏州仓
    assert "今日待发 — 北京仓: 2" in board.inner_text()
    charts = home.locator("svg.oh-bars")
    assert charts.count() >= 3
    assert home.locator("#oh-chart-board-title").text_content() == "今日待发(按仓库):苏州仓 5,北京仓 2"
    box = charts.first.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 20  # drawn, not collapsed
    board.screenshot(path=str(results_dir / "dashboard_board.png"))

    # A bar is a link to the list of exactly those orders.
    board.locator("svg.oh-bars a").first.click()
    page.wait_for_url("**/admin/orders/order/**")
    assert page.locator("#result_list tbody tr").count() == 5
    page.go_back()

    # The guide goes away for good.
    page.click("#oh-guide-dismiss")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("#oh-guide").count() == 0
    page.reload()
    assert page.locator("#oh-guide").count() == 0
    page.screenshot(path=str(results_dir / "dashboard_home_after_guide.png"), full_page=True)
    assert errors == [] and failed == []
    assert external == []  # no CDN, nothing outside the site
