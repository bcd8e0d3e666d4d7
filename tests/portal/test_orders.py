"""My orders and one order's page: what each phone sees, and what nobody sees."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.utils import timezone

from config.actors import Actor
from orders import services as order_services
from orders.models import Order, Platform
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, stock
from tests.portal.conftest import login, place_order

pytestmark = pytest.mark.django_db

BUYER = "13800138000"
SYSTEM = Actor.system("tests")


def tokens(html: str) -> list[str]:
    return re.findall(r'href="/h5/orders/([^/"?]+)/"', html)


def visible_text(html: str) -> str:
    """What a person reads: no tags or attributes (random CSRF tokens and order tokens in
    attributes could contain any short digit run)."""
    return re.sub(r"<[^>]+>", " ", html)


def order_page(client, order_index: int = 0):
    listing = client.get("/h5/orders/").content.decode()
    return client.get(f"/h5/orders/{tokens(listing)[order_index]}/")


def test_the_list_shows_the_buyers_orders_from_every_channel_newest_first(client):
    now = timezone.now()
    taobao = ShopFactory(code="p-taobao", platform=Platform.TAOBAO)
    jd = ShopFactory(code="p-jd", platform=Platform.JD)
    pdd = ShopFactory(code="p-pdd", platform=Platform.PDD)
    place_order(buyer=BUYER, shop=taobao, title="淘宝的盆", placed_at=now - timedelta(days=3))
    place_order(buyer="+86 138-0013-8000", shop=pdd, title="拼多多的盆", placed_at=now - timedelta(days=1))
    place_order(buyer="8613800138000", shop=jd, title="京东的盆", placed_at=now - timedelta(days=2))
    place_order(buyer="13900000000", shop=jd, title="别人的盆")
    login(client, BUYER)

    html = client.get("/h5/orders/").content.decode()

    assert [t in html for t in ("淘宝的盆", "京东的盆", "拼多多的盆")] == [True, True, True]
    assert html.index("拼多多的盆") < html.index("京东的盆") < html.index("淘宝的盆")
    assert "别人的盆" not in html
    assert len(tokens(html)) == 3
    assert "京东" in html and "拼多多" in html and "88.00" in html


def test_urls_carry_neither_the_order_id_nor_the_number(client):
    order = place_order(buyer=BUYER)
    login(client, BUYER)
    [token] = tokens(client.get("/h5/orders/").content.decode())

    assert token != str(order.pk) and not token.isdigit()
    assert order.number not in token and order.platform_order_id not in token
    assert len(token) >= 22
    assert client.get(f"/h5/orders/{token}/").status_code == 200


def test_another_phones_order_answers_404(client):
    mine = place_order(buyer=BUYER)  # noqa: F841
    place_order(buyer="13900000000")
    other = client.__class__()
    login(other, "13900000000", ip="10.1.0.2")
    [their_token] = tokens(other.get("/h5/orders/").content.decode())
    login(client, BUYER)

    assert client.get(f"/h5/orders/{their_token}/").status_code == 404
    assert client.get("/h5/orders/not-a-real-token/").status_code == 404
    assert other.get(f"/h5/orders/{their_token}/").status_code == 200


def test_pages_need_a_login(client):
    place_order(buyer=BUYER)
    response = client.get("/h5/orders/")

    assert response.status_code == 302 and response["Location"] == "/h5/"


def test_the_session_forgets_the_phone_after_30_minutes_idle(client):
    place_order(buyer=BUYER)
    start = timezone.now()
    login(client, BUYER)
    with time_machine.travel(start + timedelta(minutes=29)):
        assert client.get("/h5/orders/").status_code == 200  # activity: the idle clock restarts
    with time_machine.travel(start + timedelta(minutes=58)):
        assert client.get("/h5/orders/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=58 + 31)):
        response = client.get("/h5/orders/")
        assert response.status_code == 302 and response["Location"] == "/h5/"
        assert "portal_phone" not in client.session
        assert client.get("/h5/orders/").status_code == 302


def test_logout_ends_the_portal_session(client):
    place_order(buyer=BUYER)
    login(client, BUYER)
    client.post("/h5/logout/")

    assert client.get("/h5/orders/").status_code == 302


# --- the receiver of someone else's order ------------------------------------------------------
def test_a_receiver_sees_the_parcels_tracking_but_not_prices_notes_or_the_buyers_other_orders(client, warehouse):
    sku = SkuFactory(code="GIFT-1")
    stock(warehouse, sku, 5)
    gift = place_order(buyer=BUYER, receiver="13700001111", sku=sku, amount="520.00", title="生日礼物",
                       buyer_note="BUYERNOTE 生日快乐", seller_note="SELLERNOTE")
    place_order(buyer=BUYER, title="买家自己的另一单", amount="33.00")
    gift = order_services.order_allocate(order=gift, actor=SYSTEM)
    gift = order_services.order_pack(order=gift, actor=SYSTEM)
    order_services.order_ship(order=gift, actor=SYSTEM, carrier="YTO", tracking_number="YT9988776655")
    login(client, "13700001111")

    listing = client.get("/h5/orders/").content.decode()
    page = order_page(client).content.decode()
    assert len(tokens(listing)) == 1
    listing, page = visible_text(listing), visible_text(page)

    assert "买家自己的另一单" not in listing
    for text in (listing, page):
        assert "520.00" not in text and "44.00" not in text
        assert "BUYERNOTE" not in text and "SELLERNOTE" not in text
        assert "生日礼物" not in text  # what is inside stays a surprise
        assert "13800138000" not in text and "138****8000" not in text
    assert "YT9988776655" in page and "圆通" in page
    assert "运输中" in page
    assert 'id="items"' not in page


def test_the_buyer_sees_prices_their_note_and_the_masked_receiver(client, shipped_order):
    Order.objects.filter(pk=shipped_order.pk)  # the fixture's order: buyer 13800138000
    login(client, BUYER)
    page = visible_text(order_page(client).content.decode())

    assert "88.00" in page and "44.00" in page
    assert "张*" in page and "138****8000" in page
    assert "江苏省苏州市姑苏区" in page
    assert "人民路" not in page and "3 栋 502" not in page and "张三" not in page and "13800138000" not in page


# --- the timeline ---------------------------------------------------------------------------
def test_the_timeline_is_public_text_only_newest_first_in_shanghai_time(client, shipped_order):
    login(client, BUYER)
    page = order_page(client).content.decode()
    steps = re.findall(r"<li><time[^>]*>([^<]+)</time><span>([^<]+)</span></li>", page)
    texts = [text for _, text in steps]

    assert texts == ["已签收", "已发货(快递公司 SF,运单号 SF1234567890)", "已打包,等待快递揽收",
                     "仓库已接单,正在备货", "已付款,等待仓库处理", "订单已提交"]
    assert "SECRET" not in page
    assert "secretstaff" not in page
    assert "挂起" not in page and "解除" not in page  # internal events are not on the timeline
    assert "顺丰速运" in page and "SF1234567890" in page
    delivered = shipped_order.events.get(kind="delivered").occurred_at
    local = delivered.astimezone(dt_timezone(timedelta(hours=8)))
    assert steps[0][0] == local.strftime("%Y-%m-%d %H:%M")


def test_the_list_shows_the_latest_tracking_line(client, shipped_order):
    login(client, BUYER)
    html = client.get("/h5/orders/").content.decode()

    assert re.search(r'class="latest">[^<]*已签收', html)
    assert "SECRET" not in html


def test_an_on_hold_order_reads_as_processing_without_the_reason(client):
    order = place_order(buyer=BUYER, paid=True)
    order_services.order_hold(order=order, actor=SYSTEM, reason="risk", note="SECRET 风控怀疑刷单")
    login(client, BUYER)
    page = order_page(client).content.decode()

    assert "处理中" in page
    assert "SECRET" not in page and "风控" not in page and "挂起" not in page


def test_lead_time_stock_shows_when_it_will_ship_without_the_warehouse_name(client):
    warehouse = WarehouseFactory(code="ningbo-x", name="宁波保税仓X", lead_time_days=1, priority=1)
    sku = SkuFactory(code="LEAD-1")
    stock(warehouse, sku, 5)
    at = datetime(2026, 12, 3, 2, 0, tzinfo=dt_timezone.utc)  # 10:00 in Shanghai
    with time_machine.travel(at, tick=False):
        order = place_order(buyer=BUYER, sku=sku)
        order = order_services.order_allocate(order=order, actor=SYSTEM)
        assert order.status == "allocated"
        login(client, BUYER)
        page = order_page(client).content.decode()

    assert "商品有货,需调拨备货,预计明日发出" in page
    assert "宁波" not in page


def test_stock_on_hand_shows_the_promised_ship_day(client):
    at = datetime(2026, 12, 3, 2, 0, tzinfo=dt_timezone.utc)
    with time_machine.travel(at, tick=False):
        place_order(buyer=BUYER)  # paid: promised within the shop's 48 hours
        login(client, BUYER)
        page = order_page(client).content.decode()

    assert "商品有货,预计后天前发货" in page


def test_the_order_page_says_how_to_reach_customer_service_for_after_sales(client, settings):
    settings.PORTAL_SERVICE_PHONE = "400-123-4567"
    place_order(buyer=BUYER)
    login(client, BUYER)
    page = order_page(client).content.decode()

    assert "暂无售后申请" in page and "400-123-4567" in page


def test_english_is_available(client):
    place_order(buyer=BUYER)
    login(client, BUYER)
    client.post("/i18n/setlang/", {"language": "en", "next": "/h5/orders/"})

    html = client.get("/h5/orders/").content.decode()

    assert "My orders" in html


def test_the_list_pages_by_twenty(client):
    now = timezone.now()
    for i in range(21):
        place_order(buyer=BUYER, title=f"商品{i:02d}", placed_at=now - timedelta(hours=i))
    login(client, BUYER)

    first = client.get("/h5/orders/").content.decode()
    second = client.get("/h5/orders/?page=2").content.decode()

    assert len(tokens(first)) == 20 and "商品00" in first and "商品20" not in first
    assert 'href="?page=2"' in first
    assert tokens(second) and "商品20" in second and 'href="?page=1"' in second
    assert client.get("/h5/orders/?page=abc").status_code == 200


def test_a_receiver_phone_in_any_spelling_finds_the_parcel(client):
    place_order(buyer=BUYER, receiver="137 0000 1111")
    place_order(buyer=BUYER, receiver="13700001111")
    place_order(buyer=BUYER, receiver="13700002222")  # someone else
    login(client, "+86 137-0000-1111")

    assert len(tokens(client.get("/h5/orders/").content.decode())) == 2  # matched on the normalized phone


def test_the_portal_never_reads_an_events_staff_message(client, shipped_order, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    login(client, BUYER)
    with CaptureQueriesContext(connection) as queries:
        order_page(client)

    event_sql = [q["sql"] for q in queries.captured_queries if "orders_orderevent" in q["sql"]]
    assert event_sql and not any('"orders_orderevent"."message"' in sql for sql in event_sql)
    assert not any('"orders_order"."raw"' in q["sql"] for q in queries.captured_queries)
