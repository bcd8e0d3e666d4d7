import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import Credentials, PlatformAdapter
from orders.platforms.jd import JdAdapter, sign
from tests.orders.platforms.shared import OWN, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
NOW = datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)


def adapter():
    return JdAdapter(Credentials(app_key="jdkey", app_secret="jdsecret", access_token="tok"), now=lambda: NOW)


def body():
    return json.loads((OWN / "jd_order_search.json").read_text(encoding="utf-8"))


def order_raw():
    return body()["jingdong_pop_order_search_responce"]["searchorderinfo_result"]["orderInfoList"][0]


def test_is_a_platform_adapter():
    assert isinstance(adapter(), PlatformAdapter) and JdAdapter.code == "jd"


def test_order_search_normalizes_exactly():
    page = adapter().parse_list_response(body(), cursor="2024-01-01T00:00:00Z|2024-01-02T00:00:00Z|1")
    # last page of the window: the next run starts where this window ended, up to now
    assert page.has_more is False and page.next_cursor == "2024-01-02T00:00:00Z|2024-01-02T07:04:05Z|1"
    order = adapter().normalize(page.orders[0])
    assert order.platform_order_id == "280000000001" and order.platform_status == "WAIT_SELLER_STOCK_OUT"
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("104.90"), Decimal("10.00"), Decimal("8.00"), Decimal("102.90"))
    assert order.lines == [
        NormalizedLine(title="折叠盆 大号 蓝色", quantity=2, unit_price=Decimal("49.95"), platform_sku_id="100012345678",
                       sku_code="FP-L-BLUE", platform_line_id="100012345678"),
        NormalizedLine(title="收纳袋", quantity=1, unit_price=Decimal("5.00"), platform_sku_id="100012345679",
                       sku_code="BAG-S", platform_line_id="100012345679"),
        NormalizedLine(title="赠品 抹布", quantity=1, unit_price=Decimal("0.00"), platform_sku_id="100012345680",
                       sku_code="RAG", is_gift=True, platform_line_id="100012345680"),
    ]
    assert (order.province, order.city, order.district, order.address) == ("上海市", "上海市", "浦东新区", "测试路1号示例小区")
    assert order.receiver_phone == "" and order.encrypted["consigneeInfo.mobile"] == "138****0000"
    assert order.placed_at == datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)
    assert order.platform_buyer_id == "jd_openid_buyer_0001"
    assert order.paid is True and order.shipped is False and order.cancelled is False


def test_variants_give_the_same_order():
    a = adapter()
    expected = without_raw(a.normalize(order_raw()))
    assert without_raw(a.normalize(shuffled(order_raw()))) == expected
    other = order_raw()
    other["orderTotalPrice"], other["orderPayment"], other["freightPrice"], other["sellerDiscount"] = 104.9, 102.9, 8, 10
    other["orderStartTime"] = "2024-01-02T07:04:05Z"
    other["itemInfoList"][0]["itemTotal"] = 2
    other["itemInfoList"][0]["skuId"] = 100012345678
    assert without_raw(a.normalize(other)) == expected
    assert without_raw(a.normalize(stringify_numbers(other))) == expected


@pytest.mark.parametrize("state, expected", [
    ("WAIT_SELLER_STOCK_OUT", "pay"), ("WAIT_GOODS_RECEIVE_CONFIRM", "ship"), ("FINISHED_L", "complete"),
    ("TRADE_CANCELED", "cancel"), ("LOCKED", "refund_requested"), ("POP_ORDER_PAUSE", None), ("NEW_THING", None),
])
def test_status_transition(state, expected):
    assert adapter().status_transition(state) == expected


def test_signature_is_the_top_construction():
    params = {"method": "taobao.user.seller.get", "timestamp": "2013-05-06 13:52:03", "format": "xml",
              "app_key": "test", "v": "2.0", "fields": "nick", "sign_method": "md5", "session": "test"}
    assert sign(params, "test") == "72CB4D809B375A54502C09360D879C64"


def test_list_request():
    req = adapter().build_list_request("2024-01-02T00:00:00Z|2024-01-03T00:00:00Z|2", 30)
    p = req.params
    assert (req.method, req.path, p["method"]) == ("POST", "/routerjson", "jingdong.pop.order.search")
    business = json.loads(p["360buy_param_json"])
    assert business["start_date"] == "2024-01-02 08:00:00" and business["end_date"] == "2024-01-03 08:00:00"
    assert business["page"] == "2" and business["page_size"] == "30"
    assert p["sign"] == sign({k: v for k, v in p.items() if k != "sign"}, "jdsecret")


def test_paging_by_total():
    a = adapter()
    a.build_list_request("2024-01-02T00:00:00Z|2024-01-03T00:00:00Z|1", 1)
    raw = body()
    raw["jingdong_pop_order_search_responce"]["searchorderinfo_result"]["orderTotal"] = 2
    page = a.parse_list_response(raw, cursor="2024-01-02T00:00:00Z|2024-01-03T00:00:00Z|1")
    assert page.has_more is True and page.next_cursor.endswith("|2")


def test_errors():
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response({"error_response": {"code": "19", "zh_desc": "token已过期", "en_desc": "token expired"}})
    assert exc.value.code == "19" and exc.value.retryable is False
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response({"error_response": {"code": "67", "zh_desc": "调用过于频繁", "en_desc": "call limit"}})
    assert exc.value.retryable is True
    raw = body()
    raw["jingdong_pop_order_search_responce"]["searchorderinfo_result"]["apiResult"] = {
        "success": False, "englishErrCode": "param error", "chineseErrCode": "参数错误", "numberCode": 10100}
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response(raw)
    assert exc.value.code == "10100"
