import copy
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import Credentials, PlatformAdapter
from orders.platforms.pdd import PddAdapter, sign
from tests.orders.platforms.shared import load, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
NOW = datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)


def adapter():
    return PddAdapter(Credentials(app_key="cid", app_secret="secret", access_token="tok"), now=lambda: NOW)


def doc_order():
    return load("pdd/order_list_get.response.doc_example.json")["order_list_get_response"]["order_list"][0]


def realistic():
    """The document example with realistic values in the documented formats."""
    o = copy.deepcopy(doc_order())
    o.update({
        "order_sn": "240102-123456789012345", "order_status": 1, "refund_status": 1, "confirm_status": 1,
        "created_time": "2024-01-02 15:04:05", "pay_time": "2024-01-02 15:05:00", "updated_at": "2024-01-02 15:06:00",
        "last_ship_time": "2024-01-04 15:05:00", "confirm_time": "2024-01-02 15:05:00",
        "province": "广东省", "city": "深圳市", "town": "南山区",
        "receiver_name": "~AgAAAAFx3Vd2wMsRuQBv~1~", "receiver_phone": "$AgAAAAFx3VcRuQBvBS0=$1$",
        "receiver_address": "~AgAAAAFx3VcOPQ2a+L0=~1~", "receiver_name_mask": "张*", "receiver_phone_mask": "138****0000",
        "receiver_address_mask": "科技园**路*号", "goods_amount": 99.9, "discount_amount": 10.0, "postage": 0.0,
        "pay_amount": 89.9, "is_pre_sale": 0, "trade_type": 0, "remark": "送小样", "buyer_memo": "尽快发货",
        "item_list": [{"goods_count": 2, "goods_id": "3001", "goods_img": "", "goods_name": "折叠盆 大号",
                       "goods_price": 49.95, "goods_spec": "蓝色", "outer_goods_id": "FP", "outer_id": "FP-L-BLUE",
                       "sku_id": "1100220033"}],
        "gift_list": [{"goods_count": 1, "goods_id": 3002, "goods_img": "", "goods_name": "赠品 抹布",
                       "goods_price": 5.0, "goods_spec": "", "order_sn": "", "outer_goods_id": "", "outer_id": "RAG",
                       "sku_id": 1100220099}],
        "order_tag_list": [], "remark_tag_name": "",
    })
    return o


def test_is_a_platform_adapter():
    assert isinstance(adapter(), PlatformAdapter) and PddAdapter.code == "pdd"


def test_document_example_normalizes_exactly():
    page = adapter().parse_list_response(load("pdd/order_list_get.response.doc_example.json"),
                                         cursor="2024-01-02T00:00:00Z|2024-01-02T00:30:00Z|1")
    assert page.has_more is False and page.next_cursor == "2024-01-02T00:30:00Z|2024-01-02T01:00:00Z|1"
    order = adapter().normalize(page.orders[0])
    assert order.platform_order_id == "1" and order.platform_status == "1"
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("1.00"), Decimal("1.00"), Decimal("1.00"), Decimal("1.00"))
    assert order.lines == [NormalizedLine(title="1", quantity=1, unit_price=Decimal("1.00"), platform_sku_id="1",
                                          sku_code="1", platform_line_id="1")]  # placeholder gift (count 0) dropped
    assert order.paid is True and order.shipped is False and order.refund_requested is False
    assert order.is_presale is True and "deposit" in order.tags and "remark_tag:红色" in order.tags
    assert order.receiver_name == "str" and order.address == "str" and order.receiver_phone == ""
    assert order.encrypted["receiver_phone"] == "1" and order.encrypted["contact_mobile"] == "str"
    assert order.platform_buyer_id == "str"
    assert order.placed_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)  # "1" read as epoch seconds


def test_realistic_order():
    order = adapter().normalize(realistic())
    assert order.platform_order_id == "240102-123456789012345"
    assert order.placed_at == datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)
    assert order.paid_at == datetime(2024, 1, 2, 7, 5, tzinfo=UTC)
    assert order.promised_ship_at == datetime(2024, 1, 4, 7, 5, tzinfo=UTC)
    assert (order.province, order.city, order.district, order.address) == ("广东省", "深圳市", "南山区", "科技园**路*号")
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("99.90"), Decimal("10.00"), Decimal("0.00"), Decimal("89.90"))
    assert order.lines == [
        NormalizedLine(title="折叠盆 大号", quantity=2, unit_price=Decimal("49.95"), platform_sku_id="1100220033",
                       sku_code="FP-L-BLUE", platform_line_id="1100220033"),
        NormalizedLine(title="赠品 抹布", quantity=1, unit_price=Decimal("5.00"), platform_sku_id="1100220099",
                       sku_code="RAG", discount_amount=Decimal("5.00"), is_gift=True, platform_line_id="gift:1100220099"),
    ]
    assert order.receiver_name == "张*" and order.receiver_phone == ""
    assert order.encrypted["receiver_phone"] == "$AgAAAAFx3VcRuQBvBS0=$1$"
    assert order.seller_note == "送小样" and order.buyer_note == "尽快发货"


def test_decrypted_phone_is_used():
    o = realistic()
    o["receiver_phone"] = "13800000000"
    assert adapter().normalize(o).receiver_phone == "13800000000"


def test_variants_give_the_same_order():
    a = adapter()
    expected = without_raw(a.normalize(realistic()))
    assert without_raw(a.normalize(stringify_numbers(realistic()))) == expected
    assert without_raw(a.normalize(shuffled(realistic()))) == expected
    other = realistic()
    other.update(created_time="2024-01-02T07:04:05Z", pay_time="1704179100", updated_at="2024-01-02T02:06:00-05:00",
                 last_ship_time=1704351900000)
    assert without_raw(a.normalize(other)) == expected


@pytest.mark.parametrize("status, refund, expected", [
    ("1", "1", "pay"), ("2", "1", "ship"), ("3", "1", "deliver"), ("1", "2", "refund_requested"),
    ("2", "3", "refund_requested"), ("1", "4", "cancel"), ("3", "4", "refunded"), ("9", "", None),
])
def test_status_transition(status, refund, expected):
    assert adapter().status_transition(status, refund_status=refund) == expected


def test_refund_and_cancel_flags():
    o = realistic()
    o["refund_status"] = 3
    assert adapter().normalize(o).refund_requested is True
    o = realistic()
    o["confirm_status"] = 2
    assert adapter().normalize(o).cancelled is True


def test_error_envelope_from_the_document():
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response(load("pdd/error_response.doc_example.json"))
    assert exc.value.code == "10001" and exc.value.message == "公共参数错误:type" and exc.value.retryable is False


@pytest.mark.parametrize("code, retryable", [(70031, True), (52101, True), (50000, True), (20004, False)])
def test_rate_limit_codes_are_retryable(code, retryable):
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response({"error_response": {"error_code": code, "error_msg": "x", "sub_code": None}})
    assert exc.value.retryable is retryable


def test_signature_follows_the_top_construction():
    # PDD signs like TOP (MD5(secret + sorted k+v + secret), upper hex): the TOP published vector holds.
    params = {"method": "taobao.user.seller.get", "timestamp": "2013-05-06 13:52:03", "format": "xml",
              "app_key": "test", "v": "2.0", "fields": "nick", "sign_method": "md5", "session": "test"}
    assert sign(params, "test") == "72CB4D809B375A54502C09360D879C64"


def test_list_request():
    req = adapter().build_list_request("2024-01-02T00:00:00Z|2024-01-02T00:30:00Z|2", 50)
    assert req.method == "POST" and req.path == "/api/router"
    p = req.params
    assert p["type"] == "pdd.order.number.list.increment.get" and p["client_id"] == "cid"
    assert p["start_updated_at"] == "1704153600" and p["end_updated_at"] == "1704155400"
    assert p["page"] == "2" and p["page_size"] == "50" and p["timestamp"] == str(int(NOW.timestamp()))
    assert p["sign"] == sign({k: v for k, v in p.items() if k != "sign"}, "secret")


def test_stock_push():
    p = adapter().build_stock_push("1100220033", 12, item_id="3001").params
    assert (p["type"], p["goods_id"], p["sku_id"], p["quantity"], p["update_type"]) == (
        "pdd.goods.quantity.update", "3001", "1100220033", "12", "1")


def test_backfill_uses_order_list_get_by_confirm_time():
    a = PddAdapter(Credentials(app_key="cid", app_secret="secret", extra={"list_api": "list"}), now=lambda: NOW)
    p = a.build_list_request("2024-01-02T00:00:00Z|2024-01-02T00:30:00Z|1", 100).params
    assert p["type"] == "pdd.order.list.get"
    assert (p["start_confirm_at"], p["end_confirm_at"], p["order_status"], p["refund_status"]) == (
        "1704153600", "1704155400", "5", "5")
