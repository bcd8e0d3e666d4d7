"""The admin home (config/dashboard.py): what each role sees, scoped numbers, every number a
link to a list of exactly that many rows, the first-day guide, bounded queries."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from config.actors import Actor
from config.dashboard import Day
from config.models import GuideDismissal
from orders import batches, services
from orders.models import HoldReason, Order, ShopSyncState, StockAlert, SyncStatus, WebhookEvent
from tests.factories import ShopFactory, SkuFactory, UserFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
ALL_PANELS = {"oh-orders-today", "oh-board", "oh-overdue", "oh-holds", "oh-low-stock", "oh-sync"}
# Written by hand from the role descriptions (README "Demo logins"), not read from roles.py:
# every role may view orders, stock, warehouses and shops, so every role gets every panel;
# the failing-webhook column is for those who run the channels (运营, 主管); the first-day
# pointers: orders to handle for those who act on orders (not 财务), the refund review for
# those who may cancel (客服, 主管), the export for everyone who may view orders.
HOME = {
    "customer_service": (ALL_PANELS, False, {"today", "refund", "export"}),
    "warehouse": (ALL_PANELS, False, {"today", "export"}),
    "finance": (ALL_PANELS, False, {"export"}),
    "operations": (ALL_PANELS, True, {"today", "export"}),
    "supervisor": (ALL_PANELS, True, {"today", "refund", "export"}),
}


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _home(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response.content.decode()


def _panels(page: str) -> set[str]:
    return set(re.findall(r'<section class="oh-panel" id="([\w-]+)"', page))


def _panel_html(page: str) -> str:
    return re.search(r'<div class="oh-panels">.*', page, re.S).group(0)


def _tips(page: str) -> set[str]:
    return set(re.findall(r'class="oh-tip oh-tip-(\w+)"', page))


def _links(page: str, section: str | None = None) -> list[tuple[str, int]]:
    """(url, number) of every link whose text is a number, in the whole home or one panel."""
    if section:
        match = re.search(rf'<section class="oh-panel" id="{section}">(.*?)</section>', page, re.S)
        page = match.group(1) if match else ""
    found = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>\s*(\d+)\s*</a>', page)
    return [(html.unescape(url), int(n)) for url, n in found]


@pytest.fixture
def world():
    """Two warehouses, two shops, orders in every state the panels count."""
    suzhou = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    beijing = WarehouseFactory(code="beijing", name="北京仓", priority=2)
    sku_sz, sku_bj = SkuFactory(code="SZ-1"), SkuFactory(code="BJ-1")
    stock(suzhou, sku_sz, 100)
    stock(beijing, sku_bj, 100)
    taobao = ShopFactory(code="tb", platform="taobao")
    jd = ShopFactory(code="jd", platform="jd")
    past = timezone.now() - timedelta(hours=3, minutes=1)

    def allocated(shop, sku, **kw):
        order = services.order_transition(order=make_order(shop=shop, lines=[(sku, 1)], **kw), name="allocate",
                                          actor=SYSTEM)
        assert order.status == "allocated"
        return order

    sz = [allocated(taobao, sku_sz) for _ in range(3)] + [allocated(jd, sku_sz)]
    bj = [allocated(jd, sku_bj) for _ in range(2)]
    services.order_transition(order=sz[0], name="pack", actor=SYSTEM)
    Order.objects.filter(pk__in=[sz[1].pk, bj[0].pk]).update(promised_ship_at=past)  # overdue
    day = Day.at()
    tonight = day.now + (day.end - day.now) / 2  # before the end of today (Asia/Shanghai), not late yet
    Order.objects.filter(pk__in=[sz[0].pk, sz[2].pk, bj[1].pk]).update(promised_ship_at=tonight)
    # sz[3] keeps its ship-by two days ahead (paid + 48 h): not due today
    batches.batch_build(warehouse=suzhou, actor=SYSTEM)  # sz[1..3] into a pick batch
    held = make_order(shop=taobao, lines=[(sku_sz, 1)])
    services.order_transition(order=held, name="hold", actor=SYSTEM, params={"reason": HoldReason.ADDRESS})
    make_order(shop=jd, lines=[(sku_bj, 1)], paid=False)  # pending payment
    refund = make_order(shop=taobao, lines=[(sku_sz, 1)])
    Order.objects.filter(pk=refund.pk).update(refund_requested=True)
    ShopSyncState.objects.create(shop=taobao, status=SyncStatus.FAILED, last_error="timeout", lag_seconds=600,
                                 consecutive_failures=2, last_finished_at=timezone.now())
    ShopSyncState.objects.create(shop=jd, status=SyncStatus.OK, lag_seconds=30, last_finished_at=timezone.now())
    for i, status in enumerate(["failed", "dead", "done"]):
        WebhookEvent.objects.create(shop=taobao, platform="taobao", body="{}", body_sha256=f"{i:064d}", status=status)
    StockAlert.objects.create(sku=sku_sz, country="CN", available=1, threshold=5, opened_at=timezone.now())
    return {"suzhou": suzhou, "beijing": beijing, "taobao": taobao, "jd": jd, "sz": sz, "bj": bj}


@pytest.mark.parametrize("role", sorted(HOME))
def test_each_role_sees_its_panels_and_pointers(client, world, role):
    panels, webhooks, tips = HOME[role]
    page = _home(client, staff(role))
    assert _panels(page) == panels
    assert ("失败的 Webhook" in page) is webhooks
    assert _tips(page) == tips
    assert "13800138000" not in page and "张三" not in page  # the home never shows personal data
    assert 'id="app-list"' in page or "全部功能" in page  # the app list stays below


def test_a_staff_member_without_a_role_gets_no_panels(client, world):
    page = _home(client, UserFactory(username="nobody"))
    assert _panels(page) == set() and _tips(page) == set()


def test_board_numbers_and_overdue(client, world):
    page = _home(client, staff("supervisor"))
    assert re.search(r"今日待发 — 苏州仓: <a [^>]*>3</a>", page)  # sz[0] packed, sz[1] late, sz[2] tonight
    assert re.search(r"今日待发 — 北京仓: <a [^>]*>2</a>", page)
    nums = [n for _u, n in _links(page, "oh-board")]
    # 苏州仓 row: allocated 3, in batch 3 (sz[1..3]), packed 1, overdue 1, exceptions 0; 北京仓: 2, 0, 0, 1, 0
    assert [3, 3, 1, 1, 0] == nums[-10:-5] and [2, 0, 0, 1, 0] == nums[-5:]
    assert 'class="num oh-late"' in page  # overdue highlighted
    overdue = _links(page, "oh-overdue")
    assert overdue[0][1] == 2  # sz[1] and bj[0]
    assert overdue[-1][1] == 5  # due by tonight: sz[0..2], bj[0..1]
    assert "超时 3 小时" in page  # the oldest


def test_board_counts_parcels_in_a_carrier_exception_per_warehouse(client, world):
    from orders import shipping
    from orders.carriers.base import Scan, TrackingUpdate

    packed = world["sz"][0]
    services.order_ship(order=packed, actor=SYSTEM, carrier="SF", tracking_number="SF-EX-1")
    scan = Scan(occurred_at=timezone.now(), description="快件滞留", state="exception")
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF-EX-1", None, (scan,))], actor=SYSTEM)
    user = staff("supervisor")
    page = _home(client, user)
    nums = [n for _u, n in _links(page, "oh-board")]
    assert nums[-10:-5][-1] == 1 and nums[-5:][-1] == 0  # 苏州仓 1, 北京仓 0
    url = [u for u, n in _links(page, "oh-board") if "shipment" in u][0]
    listed = client.get(url)
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1 and "SF-EX-1" in listed.content.decode()
    beijing_only = scoped(staff("warehouse", "bj-keeper"), warehouses=[world["beijing"]])
    assert [n for u, n in _links(_home(client, beijing_only), "oh-board") if "shipment" in u] == [0]


@pytest.mark.parametrize("role", ["supervisor", "finance", "operations"])
def test_every_number_links_to_a_list_of_that_many_rows(client, world, role):
    user = staff(role)
    page = _home(client, user)
    links = _links(page)
    assert len(links) >= 25
    for url, number in links:
        if "/change/" in url:
            continue
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.context["cl"].result_count == number, url


def test_a_suzhou_only_user_gets_suzhou_numbers_only(client, world):
    user = scoped(staff("warehouse"), warehouses=[world["suzhou"]])
    page = _home(client, user)
    assert "苏州仓" in page and "北京仓" not in page
    assert re.search(r"今日待发 — 苏州仓: <a [^>]*>3</a>", page)
    assert _links(page, "oh-overdue")[0][1] == 1  # bj[0] is Beijing's
    for url, number in _links(page):
        if "/change/" in url:
            continue
        assert client.get(url).context["cl"].result_count == number, url


def test_a_shop_scoped_user_counts_their_shop_only(client, world):
    user = scoped(staff("customer_service"), shops=[world["jd"]])
    page = _home(client, user)
    today = _links(page, "oh-orders-today")
    assert max(n for _u, n in today) == 4  # jd: 1 + 2 allocated + 1 pending
    assert ">tb<" not in page  # taobao's sync row is out of scope
    for url, number in _links(page):
        if "/change/" in url:
            continue
        assert client.get(url).context["cl"].result_count == number, url


def test_numbers_are_cached_per_scope(client, world):
    import time_machine

    supervisor = staff("supervisor")
    # The clock stands still: ages such as "12 秒" are drawn at each render, so on a slow
    # machine two renders a second apart would differ even with the numbers cached.
    with time_machine.travel(timezone.now(), tick=False):
        page = _home(client, supervisor)
        make_order(shop=world["taobao"], lines=[])
        assert _panel_html(_home(client, supervisor)) == _panel_html(page)  # within the cache time
        suzhou = scoped(staff("warehouse"), warehouses=[world["suzhou"]])
        assert "北京仓" not in _home(client, suzhou)  # another scope, its own entry
        cache.clear()
        assert _panel_html(_home(client, supervisor)) != _panel_html(page)


def test_the_guide_is_dismissed_for_good(client, world):
    user = staff("customer_service")
    page = _home(client, user)
    assert "今天待处理的订单" in page and "开始一次退货审核" in page and "导出对账" in page
    client.logout()
    client.force_login(user)
    assert client.post(reverse("dashboard_guide_dismiss")).status_code == 302
    assert GuideDismissal.objects.filter(user=user).count() == 1
    assert _tips(_home(client, user)) == set()
    assert client.post(reverse("dashboard_guide_dismiss")).status_code == 302  # twice: still one row
    assert GuideDismissal.objects.filter(user=user).count() == 1


def test_dismissing_needs_a_post_with_csrf_and_a_staff_login(world):
    from django.test import Client

    user = staff("finance")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("dashboard_guide_dismiss")).status_code == 403
    assert strict.get(reverse("dashboard_guide_dismiss")).status_code == 405
    anonymous = Client()
    assert anonymous.post(reverse("dashboard_guide_dismiss")).status_code == 302  # to the login page
    assert not GuideDismissal.objects.exists()


def test_the_refund_pointer_counts_refund_requests(client, world):
    page = _home(client, staff("supervisor"))
    tip = re.search(r'oh-tip-refund"><a href="([^"]+)"', page).group(1)
    assert client.get(html.unescape(tip)).context["cl"].result_count == 1
    assert "售后模块尚未上线" in page


def test_charts_are_inline_svg_with_their_numbers(client, world):
    page = _home(client, staff("supervisor"))
    assert page.count('<svg class="oh-bars" role="img"') >= 3
    assert "<title id=\"oh-chart-board-title\">今日待发(按仓库):苏州仓 3,北京仓 2</title>" in page
    assert "cdn" not in page.lower() and "<script src=\"http" not in page


def test_queries_are_bounded(client, world, django_assert_max_num_queries):
    """A fixed number of queries (each panel one or two grouped queries, plus the database
    cache's own reads and writes), whatever the number of warehouses, shops or orders."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = staff("supervisor")
    client.force_login(user)
    client.get(reverse("admin:index"))
    cache.clear()
    with CaptureQueriesContext(connection) as first:
        client.get(reverse("admin:index"))
    assert len(first) <= 75
    for i in range(5):
        w = WarehouseFactory(code=f"more-{i}")
        stock(w, SkuFactory(code=f"MORE-{i}"), 1)
        ShopSyncState.objects.create(shop=ShopFactory(code=f"more-{i}"))
        make_order(shop=world["jd"], lines=[])
    cache.clear()
    with CaptureQueriesContext(connection) as second:
        client.get(reverse("admin:index"))
    assert len(second) == len(first)
    with django_assert_max_num_queries(25):  # every panel from the cache
        client.get(reverse("admin:index"))


def test_a_refused_dismissal_is_a_domain_error():
    from config.dashboard import guide_dismiss
    from config.errors import NotPermitted

    with pytest.raises(NotPermitted):
        guide_dismiss(actor=Actor.system("job"))


def test_a_hold_without_a_reason_links_to_its_list(client, world):
    Order.objects.filter(status="on_hold").update(hold_reason="")
    user = staff("supervisor")
    page = _home(client, user)
    assert "未注明" in page
    for url, number in _links(page, "oh-holds"):
        assert client.get(url).context["cl"].result_count == number, url


def test_the_home_in_english(client, world):
    client.force_login(staff("supervisor"))
    page = client.get(reverse("admin:index"), headers={"accept-language": "en"}).content.decode()
    assert "Warehouse board" in page and "To ship today" in page and "Orders today" in page
    assert "仓库看板" not in page


def test_failing_shops_link_and_the_oldest_late_order(client, world):
    page = _home(client, staff("operations"))
    failing = re.search(r'<a class="oh-late" href="([^"]+)">1 个店铺失败</a>', page)
    assert failing
    assert client.get(html.unescape(failing.group(1))).context["cl"].result_count == 1
    oldest = re.search(r'最早 <a href="([^"]+)">(OH\d+)</a>', page)
    assert oldest.group(2) in {world["sz"][1].number, world["bj"][0].number}
    assert client.get(oldest.group(1)).status_code == 200
