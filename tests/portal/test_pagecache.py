"""The render cache of the portal's pages (portal/pagecache.py): a repeated page is served
from the cache, and whatever changes what a page shows — through the real services, or a
bare QuerySet.update() that skips `updated_at` and signals — shows right after."""

from __future__ import annotations

import pickle
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from config.actors import Actor
from inventory.models import Warehouse
from orders import services as order_services
from orders import shipping
from orders.carriers.base import Scan, TrackingUpdate
from orders.ingest import platform_actor, upsert_order
from orders.models import Customer, Order, OrderLine
from orders.platforms.base import NormalizedLine, NormalizedOrder
from portal import pagecache, views
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, stock
from tests.portal.conftest import last_code, login, place_order
from tests.portal.test_orders import BUYER, tokens, visible_text

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
FRIEND = "13700001111"


@pytest.fixture
def renders(page_cache, monkeypatch):
    """How many times each page's content was rendered (not served from the cache)."""
    counts = {"list": 0, "order": 0}

    def counting(name, real):
        def wrapper(**kwargs):
            counts[name] += 1
            return real(**kwargs)
        return wrapper

    monkeypatch.setattr(views, "_list_content", counting("list", views._list_content))
    monkeypatch.setattr(views, "_order_content", counting("order", views._order_content))
    return counts


def pages(client) -> tuple[str, str]:
    """(my orders, the newest order's page), as a person reads them."""
    listing = client.get("/h5/orders/").content.decode()
    detail = client.get(f"/h5/orders/{tokens(listing)[0]}/")
    assert detail.status_code == 200
    return visible_text(listing), visible_text(detail.content.decode())


def packed(buyer: str = BUYER, **kwargs) -> Order:
    sku = SkuFactory()
    stock(WarehouseFactory(), sku, 5)
    order = place_order(buyer=buyer, sku=sku, **kwargs)
    order = order_services.order_allocate(order=order, actor=SYSTEM)
    return order_services.order_pack(order=order, actor=SYSTEM)


def test_a_repeated_page_is_served_from_the_cache(client, renders):
    packed()
    login(client, BUYER)
    first = pages(client)
    second = pages(client)

    assert renders == {"list": 1, "order": 1}
    assert first == second


def test_a_status_transition_and_the_shipment_show_at_once(client, renders):
    order = packed()
    login(client, BUYER)
    listing, detail = pages(client)
    assert "待揽收" in listing and "待揽收" in detail

    order_services.order_ship(order=order, actor=SYSTEM, carrier="SF", tracking_number="SF5550001")  # + its shipment

    listing, detail = pages(client)
    assert "运输中" in listing and "SF5550001" in listing  # the latest line
    assert "运输中" in detail and "顺丰速运" in detail and "SF5550001" in detail
    assert renders == {"list": 2, "order": 2}


def test_carrier_scans_through_the_tracking_batch_show_at_once(client, renders):
    now = timezone.now()
    with time_machine.travel(now - timedelta(hours=3)):
        order = packed()
    order = order_services.order_ship(order=order, actor=SYSTEM, carrier="SF", tracking_number="SF5550002",
                                      at=now - timedelta(hours=2))
    login(client, BUYER)
    pages(client)

    shipping.record_tracking(updates=[TrackingUpdate(carrier="SF", tracking_number="SF5550002", state=None, scans=(
        Scan(occurred_at=now - timedelta(hours=1), description="已到达苏州转运中心", state="in_transit"),))],
        actor=SYSTEM)
    listing, detail = pages(client)
    assert "包裹运输中" in listing and "包裹运输中" in detail

    shipping.record_tracking(updates=[TrackingUpdate(carrier="SF", tracking_number="SF5550002", state="delivered", scans=(
        Scan(occurred_at=now - timedelta(minutes=30), description="已签收,签收人 门卫", state="delivered"),))],
        actor=SYSTEM)
    listing, detail = pages(client)
    assert Order.objects.get(pk=order.pk).status == "delivered"
    assert "已签收" in listing and "包裹已签收" in detail and "门卫" not in detail


def _platform_order(**overrides) -> NormalizedOrder:
    data = dict(platform_order_id="UP-1", paid=True, paid_amount=Decimal("88.00"), goods_amount=Decimal("88.00"),
                buyer_name="李四", buyer_phone=BUYER, receiver_name="张三", receiver_phone=BUYER,
                province="江苏省", city="苏州市", district="姑苏区", address="人民路 88 号",
                lines=[NormalizedLine(title="折叠收纳盆", quantity=2, unit_price=Decimal("44.00"),
                                      platform_line_id="L1", sku_code="UP-SKU")])
    data.update(overrides)
    return NormalizedOrder(**data)


def test_a_platform_update_of_receiver_amounts_and_lines_shows_at_once(client, renders):
    shop = ShopFactory()
    SkuFactory(code="UP-SKU")
    upsert_order(shop=shop, data=_platform_order(), actor=platform_actor(shop), allocate=False)
    login(client, BUYER)
    listing, detail = pages(client)
    assert "张*" in detail and "折叠收纳盆" in listing and "88.00" in detail

    # The ingest writes these with QuerySet.update() (no updated_at, no signal).
    changed = _platform_order(receiver_name="王五五", district="吴中区", buyer_note="请周末送", paid_amount=Decimal("80.00"),
                              lines=[NormalizedLine(title="大号折叠收纳盆", quantity=2, unit_price=Decimal("40.00"),
                                                    platform_line_id="L1", sku_code="UP-SKU")])
    result = upsert_order(shop=shop, data=changed, actor=platform_actor(shop), allocate=False)
    assert result.outcome == "updated"

    listing, detail = pages(client)
    assert "王**" in detail and "吴中区" in detail and "请周末送" in detail
    assert "80.00" in listing and "大号折叠收纳盆" in listing and "40.00" in detail


def test_a_receiver_phone_changed_by_the_platform_takes_the_parcel_off_the_old_receivers_pages(client, renders):
    shop = ShopFactory()
    SkuFactory(code="UP-SKU")
    upsert_order(shop=shop, data=_platform_order(receiver_phone=FRIEND), actor=platform_actor(shop), allocate=False)
    login(client, FRIEND)
    listing = client.get("/h5/orders/").content.decode()
    token = tokens(listing)[0]
    assert client.get(f"/h5/orders/{token}/").status_code == 200

    upsert_order(shop=shop, data=_platform_order(receiver_phone="13700002222"), actor=platform_actor(shop),
                 allocate=False)

    assert tokens(client.get("/h5/orders/").content.decode()) == []
    assert client.get(f"/h5/orders/{token}/").status_code == 404  # though its order id is remembered


def test_bare_updates_without_updated_at_or_events_still_show(client, renders):
    order = place_order(buyer=BUYER, title="原标题")
    login(client, BUYER)
    pages(client)
    stamp = Order.objects.get(pk=order.pk).updated_at

    Order.objects.filter(pk=order.pk).update(buyer_note="改过的留言", updated_at=stamp)
    OrderLine.objects.filter(order=order).update(title="新标题")

    listing, detail = pages(client)
    assert "新标题" in listing and "改过的留言" in detail
    assert renders == {"list": 2, "order": 2}


def test_when_the_buyer_is_no_longer_this_phone_the_receiver_view_shows_without_prices(client, renders):
    order = place_order(buyer=BUYER, amount="520.00", buyer_note="BUYERNOTE")  # bought for myself
    login(client, BUYER)
    listing, detail = pages(client)
    assert "520.00" in listing and "BUYERNOTE" in detail

    Customer.objects.filter(pk=order.customer_id).update(phone="+8613900009999")  # e.g. a customer merge

    listing, detail = pages(client)
    assert "寄给您的包裹" in listing  # still the receiver: the parcel, nothing else
    for text in (listing, detail):
        assert "520.00" not in text and "BUYERNOTE" not in text and "折叠收纳盆" not in text


def test_a_new_gift_for_me_is_listed_at_once(client, renders):
    place_order(buyer=BUYER)
    login(client, BUYER)
    assert len(tokens(client.get("/h5/orders/").content.decode())) == 1

    place_order(buyer=FRIEND, receiver=BUYER)

    assert len(tokens(client.get("/h5/orders/").content.decode())) == 2


def test_a_warehouse_lead_time_change_and_the_next_day_change_the_expected_text(client, renders):
    warehouse = WarehouseFactory(code="ningbo-y", name="宁波保税仓Y", lead_time_days=1, priority=1)
    sku = SkuFactory(code="LEAD-2")
    stock(warehouse, sku, 5)
    at = datetime(2026, 12, 3, 15, 50, tzinfo=dt_timezone.utc)  # 23:50 in Shanghai
    with time_machine.travel(at, tick=False):
        order_services.order_allocate(order=place_order(buyer=BUYER, sku=sku), actor=SYSTEM)
        login(client, BUYER)
        assert "预计明日发出" in pages(client)[1]
        Warehouse.objects.filter(pk=warehouse.pk).update(lead_time_days=2)
        assert "预计后天发出" in pages(client)[1]
    with time_machine.travel(at + timedelta(minutes=20), tick=False):  # past midnight in Shanghai
        assert "预计明日发出" in pages(client)[1]


def test_each_browser_session_gets_its_own_valid_csrf_token_and_can_log_out(page_cache, renders):
    place_order(buyer=BUYER)
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    for browser in (first, second):
        browser.get("/h5/")
        token = browser.cookies["csrftoken"].value
        assert browser.post("/h5/", {"phone": BUYER, "csrfmiddlewaretoken": token}).status_code == 302
        assert browser.post("/h5/verify/", {"code": last_code(BUYER), "csrfmiddlewaretoken": token}).status_code == 302
        page_cache.clear()  # the code rate limit (one a minute per phone) lives in the same cache

    one = first.get("/h5/orders/").content.decode()
    two = second.get("/h5/orders/").content.decode()
    assert renders["list"] == 1  # the second session got the cached content

    def form_token(html):
        return re.search(r'action="/h5/logout/"[^>]*>\s*<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)"',
                         html).group(1)

    assert first.cookies["csrftoken"].value != second.cookies["csrftoken"].value
    assert first.post("/h5/logout/", {"csrfmiddlewaretoken": form_token(one)}).status_code == 302
    assert second.post("/h5/logout/", {"csrfmiddlewaretoken": form_token(two)}).status_code == 302
    assert first.get("/h5/orders/").status_code == 302 and second.get("/h5/orders/").status_code == 302


def test_another_phone_never_gets_a_cached_page(client, renders):
    gift = place_order(buyer=BUYER, receiver=FRIEND, amount="520.00", title="生日礼物")
    login(client, BUYER)
    listing = client.get("/h5/orders/").content.decode()
    token = tokens(listing)[0]
    assert "520.00" in client.get(f"/h5/orders/{token}/").content.decode()

    friend = Client()
    login(friend, FRIEND)
    assert friend.get(f"/h5/orders/{token}/").status_code == 404  # my token, their session
    own = friend.get("/h5/orders/").content.decode()
    page = visible_text(friend.get(f"/h5/orders/{tokens(own)[0]}/").content.decode())
    assert "520.00" not in page and "生日礼物" not in page and gift.number in page
    stranger = Client()
    login(stranger, "13600006666")
    assert stranger.get(f"/h5/orders/{token}/").status_code == 404


def test_the_cache_holds_no_phone_number_and_no_csrf_token(client, page_cache):
    place_order(buyer=BUYER)
    login(client, BUYER)
    pages(client)

    keys = [k for k in page_cache._cache if pagecache.KEY_PREFIX in k or pagecache.TOKEN_KEY_PREFIX in k]
    assert len(keys) == 3  # list, order, the token's order id
    assert not any("13800138000" in k or "8000" in k for k in keys)
    fragments = [pickle.loads(page_cache._cache[k]) for k in keys if pagecache.KEY_PREFIX in k]
    assert len(fragments) == 2
    for html in fragments:
        assert "csrf" not in html and "<form" not in html and "13800138000" not in html


def test_a_failing_cache_renders_the_pages(client, renders, monkeypatch):
    place_order(buyer=BUYER)
    login(client, BUYER)

    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("redis down")

        set = get

    monkeypatch.setattr(pagecache, "page_cache", Down)
    listing, detail = pages(client)

    assert "折叠收纳盆" in listing and "88.00" in detail


def test_an_unreachable_redis_renders_the_pages(client, settings):
    place_order(buyer=BUYER)
    login(client, BUYER)
    settings.CACHES = {**settings.CACHES, "portal_pages": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                                           "LOCATION": "redis://127.0.0.1:1/0"}}

    listing, detail = pages(client)

    assert "折叠收纳盆" in listing and "88.00" in detail


def test_the_language_is_part_of_the_key(client, renders):
    place_order(buyer=BUYER)
    login(client, BUYER)
    assert "我的订单" in client.get("/h5/orders/").content.decode()

    client.post("/i18n/setlang/", {"language": "en", "next": "/h5/orders/"})

    assert "My orders" in client.get("/h5/orders/").content.decode()


def test_with_the_database_cache_too(client, settings):
    """Without Redis the fragments go to a database cache table of their own (not the one
    of the throttle counters, which the fragments' churn would cull): the pages work the same."""
    if settings.REDIS_URL:
        pytest.skip("REDIS_URL set: the fragments are in Redis")
    assert settings.CACHES["portal_pages"]["BACKEND"].endswith("DatabaseCache")
    assert settings.CACHES["portal_pages"]["LOCATION"] != settings.CACHES["default"]["LOCATION"]
    assert pagecache.page_cache() is not pagecache.caches["default"]
    order = packed()
    login(client, BUYER)
    assert "待揽收" in pages(client)[1]
    order_services.order_ship(order=order, actor=SYSTEM, carrier="SF", tracking_number="SF5550003")
    assert "SF5550003" in pages(client)[1]
    assert pagecache.page_cache().get(pagecache.KEY_PREFIX + "x") is None  # its table exists


def test_every_relation_a_page_reads_is_in_the_fingerprint():
    from portal import selectors

    relations = {name for name in selectors.ORDER_FIELDS if "__" in name}
    assert relations <= set(pagecache.COVERED_RELATIONS)
