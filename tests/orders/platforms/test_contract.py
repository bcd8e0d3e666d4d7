"""What every Chinese-platform adapter promises, checked the same way for each."""

from datetime import timezone
from decimal import Decimal

import pytest

from orders.models import Platform
from orders.platforms.base import NormalizedOrder, OrderPage
from orders.platforms.douyin import DouyinAdapter
from orders.platforms.interface import PlatformAdapter, PlatformRequest, PlatformTransition
from orders.platforms.jd import JdAdapter
from orders.platforms.parsing import ParseError
from orders.platforms.pdd import PddAdapter
from orders.platforms.taobao import TaobaoAdapter
from orders.platforms.wechat import WechatAdapter
from tests.orders.platforms import test_douyin, test_jd, test_pdd, test_taobao, test_wechat
from tests.orders.platforms.shared import load

CASES = [
    (TaobaoAdapter, lambda: load("taobao/trade_fullinfo_get.jdp_push_row.json")),
    (PddAdapter, test_pdd.realistic),
    (DouyinAdapter, test_douyin.order_raw),
    (JdAdapter, test_jd.order_raw),
    (WechatAdapter, test_wechat.sample),
]
IDS = [c[0].code for c in CASES]


@pytest.mark.parametrize("cls, raw", CASES, ids=IDS)
def test_adapter_keeps_the_interface(cls, raw):
    adapter = cls()
    assert isinstance(adapter, PlatformAdapter)
    assert cls.code in Platform.values
    order = adapter.normalize(raw())
    assert isinstance(order, NormalizedOrder) and order.platform_order_id
    for amount in (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount):
        assert isinstance(amount, Decimal) and amount.as_tuple().exponent == -2
    for line in order.lines:
        assert isinstance(line.unit_price, Decimal) and isinstance(line.quantity, int) and line.platform_line_id
    for moment in (order.placed_at, order.paid_at, order.platform_updated_at, order.promised_ship_at):
        assert moment is None or moment.tzinfo is timezone.utc
    assert order.raw == raw()  # the payload is kept as it came
    transition = adapter.status_transition(order.platform_status)
    assert transition is None or transition in {t.value for t in PlatformTransition}


@pytest.mark.parametrize("cls, raw", CASES, ids=IDS)
def test_requests_are_plain_data(cls, raw):
    adapter = cls()
    cursor = adapter.initial_cursor(test_taobao.FIXED_NOW)
    for request in (adapter.build_list_request(cursor, 20), adapter.build_stock_push("123", 5, item_id="9")):
        assert isinstance(request, PlatformRequest) and request.method in {"GET", "POST", "PUT"}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in request.params.items())
        assert request.path.startswith("/")


@pytest.mark.parametrize("cls, raw", CASES, ids=IDS)
def test_payload_without_an_order_id_fails_visibly(cls, raw):
    with pytest.raises(ParseError):
        cls().normalize({"status": "PAID"})


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=IDS)
def test_empty_list_page(cls):
    bodies = {"taobao": {"trades_sold_increment_get_response": {"has_next": False}},
              "pdd": {"order_sn_increment_get_response": {"has_next": False, "order_sn_list": []}},
              "douyin": {"code": 10000, "data": {"page": 0, "size": 100, "total": 0, "shop_order_list": []}},
              "jd": {"jingdong_pop_order_search_responce": {"searchorderinfo_result": {
                  "apiResult": {"success": True}, "orderTotal": 0, "orderInfoList": []}}},
              "miniapp": {"orders": [], "has_more": False, "next_cursor": ""}}
    adapter = cls()
    page = adapter.parse_list_response(bodies[cls.code], cursor=adapter.initial_cursor(test_taobao.FIXED_NOW))
    assert isinstance(page, OrderPage) and page.orders == [] and page.has_more is False
