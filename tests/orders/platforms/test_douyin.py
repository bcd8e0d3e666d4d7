import hashlib
import hmac
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.douyin import DouyinAdapter, param_json, sign
from orders.platforms.interface import Credentials, PlatformAdapter
from tests.orders.platforms.shared import OWN, fixture_path, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
NOW = datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)


def adapter(**extra):
    return DouyinAdapter(Credentials(app_key="7000000000000000001", app_secret="secret-not-real", access_token="tok",
                                     extra=extra), now=lambda: NOW)


def body():
    return json.loads((OWN / "douyin_order.json").read_text(encoding="utf-8"))


def order_raw():
    return body()["data"]["shop_order_list"][0]


def test_own_sample_follows_the_published_field_table():
    table = fixture_path("douyin/order_searchList.fields.md").read_text(encoding="utf-8")
    for field in order_raw():
        assert f"| {field} |" in table, field
    for field in order_raw()["sku_order_list"][0]:
        assert f"| {field} |" in table, field


def test_is_a_platform_adapter():
    assert isinstance(adapter(), PlatformAdapter) and DouyinAdapter.code == "douyin"


def test_search_list_normalizes_exactly():
    page = adapter().parse_list_response(body(), cursor="2024-01-02T00:00:00Z|2024-01-03T00:00:00Z|0")
    assert page.has_more is True and page.next_cursor == "2024-01-02T00:00:00Z|2024-01-03T00:00:00Z|1"
    order = adapter().normalize(page.orders[0])
    assert order.platform_order_id == "6920000000000000001" and order.platform_status == "2"
    # fen → yuan; the free gift is outside the goods amount: 100.90 − 9.00 + 8.00 = 99.90
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("100.90"), Decimal("9.00"), Decimal("8.00"), Decimal("99.90"))
    assert order.lines == [
        NormalizedLine(title="折叠盆 大号", quantity=2, unit_price=Decimal("49.95"), platform_sku_id="1750000000000001",
                       sku_code="FP-L-BLUE", discount_amount=Decimal("8.00"), platform_line_id="6920000000000000101"),
        NormalizedLine(title="收纳袋", quantity=1, unit_price=Decimal("1.00"), platform_sku_id="1750000000000002",
                       sku_code="BAG-S", discount_amount=Decimal("1.00"), platform_line_id="6920000000000000102",
                       refund_status="6"),
        NormalizedLine(title="赠品 抹布", quantity=1, unit_price=Decimal("5.00"), platform_sku_id="1750000000000003",
                       sku_code="RAG", discount_amount=Decimal("5.00"), is_gift=True,
                       platform_line_id="6920000000000000103"),
    ]
    assert order.placed_at == datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)
    assert order.paid_at == datetime(2024, 1, 2, 7, 5, tzinfo=UTC)
    assert order.platform_updated_at == datetime(2024, 1, 2, 7, 6, tzinfo=UTC)
    assert order.promised_ship_at == datetime(2024, 1, 4, 7, 5, tzinfo=UTC)
    assert (order.province, order.city, order.district, order.address) == ("广东省", "深圳市", "南山区", "粤海街道科技园**路*号")
    assert order.receiver_name == "张*" and order.receiver_phone == ""
    assert order.encrypted == {"encrypt_post_tel": "$AgAAAAFx3VcRuQBvBS0fz5IDkD/d5C5N5HbChHk=$1$",
                               "encrypt_post_receiver": "#AgAAAAFx3Vd2wMsRuQBv#1#",
                               "post_addr.encrypt_detail": "#AgAAAAFx3VcOPQ2a+L0wDTEz#1#"}
    assert order.platform_buyer_id == "1@#AgAAAAFx3VdBuyerOpenId0001#"
    assert order.paid is True and order.refund_requested is True and order.cancelled is False
    assert order.seller_note == "送小样" and order.buyer_note == "尽快发货" and order.tags == ["seller_star:3"]


def test_variants_give_the_same_order():
    a = adapter()
    expected = without_raw(a.normalize(order_raw()))
    assert without_raw(a.normalize(stringify_numbers(order_raw()))) == expected
    assert without_raw(a.normalize(shuffled(order_raw()))) == expected
    other = order_raw()
    other.update(create_time="2024-01-02T15:04:05+08:00", pay_time=1704179100000, update_time="2024-01-02T07:06:00Z")
    assert without_raw(a.normalize(other)) == expected


@pytest.mark.parametrize("status, after_sale, expected", [
    ("1", "", None), ("105", "", "pay"), ("2", "", "pay"), ("101", "", "partially_ship"), ("3", "", "ship"),
    ("4", "", "cancel"), ("5", "", "complete"), ("2", "6", "refund_requested"), ("5", "12", "refunded"),
    ("3", "28", "ship"), ("4", "6", "cancel"),
])
def test_status_transition(status, after_sale, expected):
    assert adapter().status_transition(status, refund_status=after_sale) == expected


def test_signature_hmac_sha256_and_md5():
    params = {"size": 10, "page": 0, "order_asc": True}
    text = param_json(params)
    assert text == '{"order_asc":true,"page":0,"size":10}'
    pattern = "sapp_key1methodorder.searchListparam_json" + text + "timestamp1704179045v2s"
    assert sign("1", "s", "order.searchList", 1704179045, text) == hmac.new(
        b"s", pattern.encode(), hashlib.sha256).hexdigest()
    assert sign("1", "s", "order.searchList", 1704179045, text, "md5") == hashlib.md5(pattern.encode()).hexdigest()


def test_list_request():
    req = adapter().build_list_request("2024-01-02T00:00:00Z|2024-01-03T00:00:00Z|2", 500)
    assert (req.method, req.path, req.body_format) == ("POST", "/order/searchList", "json")
    assert req.body == {"update_time_start": 1704153600, "update_time_end": 1704240000, "order_by": "update_time",
                        "order_asc": True, "page": 2, "size": 100}
    p = req.params
    assert p["method"] == "order.searchList" and p["v"] == "2" and p["timestamp"] == "1704179045"
    assert p["sign_method"] == "hmac-sha256" and p["access_token"] == "tok"
    assert p["sign"] == sign("7000000000000000001", "secret-not-real", "order.searchList", 1704179045,
                             param_json(req.body))


def test_stock_push():
    req = adapter().build_stock_push("1750000000000001", 4, item_id="3600000000000000001")
    assert req.path == "/sku/syncStock"
    assert req.body == {"sku_id": 1750000000000001, "product_id": 3600000000000000001, "stock_num": 4,
                        "incremental": False}


def test_error_envelope():
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response({"code": 40004, "msg": "权限不足", "sub_code": "isv.permission-denied",
                                       "sub_msg": "", "log_id": "x", "data": {}})
    assert exc.value.code == "40004" and exc.value.retryable is False
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response({"code": 20000, "msg": "服务不可用", "sub_code": "isp.service-busy"})
    assert exc.value.retryable is True
