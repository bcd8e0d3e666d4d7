import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import Credentials, PlatformAdapter, WindowCursor
from orders.platforms.taobao import TaobaoAdapter, sign
from tests.orders.platforms.shared import load, load_text, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
FIXED_NOW = datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)  # 2024-01-02 15:04:05 Beijing


def adapter():
    return TaobaoAdapter(Credentials(app_key="test", app_secret="test", access_token="test"), now=lambda: FIXED_NOW)


def test_is_a_platform_adapter():
    assert isinstance(adapter(), PlatformAdapter) and TaobaoAdapter.code == "taobao"


def test_jdp_push_row_normalizes_exactly():
    order = adapter().normalize(load("taobao/trade_fullinfo_get.jdp_push_row.json"))
    assert order.platform_order_id == "452790065331038"
    assert order.platform_status == "TRADE_CLOSED_BY_TAOBAO"
    assert (order.paid, order.cancelled, order.shipped, order.refund_requested) == (False, True, False, False)
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("88.00"), Decimal("74.20"), Decimal("0.00"), Decimal("13.80"))
    assert order.lines == [NormalizedLine(
        title="2013春秋装 男士 长袖T恤男新款 圆领长纯色 简单打底衫 休闲体恤", quantity=1, unit_price=Decimal("88.00"),
        platform_sku_id="33395009470", sku_code="TX324A0212", discount_amount=Decimal("74.20"), is_gift=False,
        platform_line_id="452790065331038", refund_status="")]
    assert (order.province, order.city, order.district, order.postcode) == ("陕西省", "西安市", "雁塔区", "710065")
    assert order.placed_at == datetime(2013, 11, 10, 6, 22, 38, tzinfo=UTC)  # 14:22:38 Beijing
    assert order.platform_updated_at == datetime(2014, 1, 30, 16, 18, 1, tzinfo=UTC)
    assert order.paid_at is None
    assert order.seller_note == "已催 李四 11.11" and order.buyer_name == "zhangsan001"
    assert order.platform_buyer_id == "zhangsan001"
    # masked receiver data is kept verbatim and never used as a phone
    assert order.receiver_phone == "" and order.buyer_phone == ""
    assert order.encrypted["receiver_mobile"] == "1380000****"
    assert order.encrypted["receiver_phone"] == "029-8000****"
    assert order.encrypted["receiver_name"] == "张**"
    assert order.coupon_codes == ["PKSNmultidz1350894312-111562788_1124882997"]
    assert adapter().status_transition(order.platform_status) == "cancel"


def test_jdp_table_row_with_the_body_as_a_json_string():
    body = load_text("taobao/trade_fullinfo_get.jdp_push_row.json")
    row = {"tid": 452790065331038, "status": "TRADE_CLOSED_BY_TAOBAO", "jdp_response": body,
           "jdp_modified": "2014-01-31 00:18:02"}
    a = adapter()
    assert without_raw(a.normalize(row)) == without_raw(a.normalize(json.loads(body)))


def test_trades_sold_get_doc_example_through_the_list_parser():
    a = adapter()
    cursor = "2024-01-01T00:00:00Z|2024-01-02T00:00:00Z|1"
    page = a.parse_list_response(load("taobao/trades_sold_get.doc_example.json"), cursor=cursor)
    assert page.has_more is True and page.next_cursor == "2024-01-01T00:00:00Z|2024-01-02T00:00:00Z|2"
    order = a.normalize(page.orders[0])
    assert order.platform_order_id == "2231958349" and order.platform_status == "TRADE_NO_CREATE_PAY"
    assert order.lines == []  # the document leaves orders.order[] empty
    assert order.paid is False and order.is_presale is True
    assert "type:fixed" in order.tags  # "fixed(一口价)" label stripped
    assert (order.province, order.city, order.district, order.address) == ("浙江省", "杭州市", "西湖区", "三墎镇测试路1号")
    assert order.receiver_phone == "13800000000" and order.encrypted == {}
    assert order.placed_at == datetime(1999, 12, 31, 16, 0, tzinfo=UTC)
    assert a.status_transition(order.platform_status) is None


def test_variants_give_the_same_order():
    a = adapter()
    raw = load("taobao/trade_fullinfo_get.jdp_push_row.json")
    expected = without_raw(a.normalize(raw))
    assert without_raw(a.normalize(stringify_numbers(raw))) == expected
    assert without_raw(a.normalize(shuffled(raw))) == expected
    trade = json.loads(json.dumps(raw))["trade_fullinfo_get_response"]["trade"]
    trade["created"] = "2013-11-10T06:22:38Z"
    trade["modified"] = "2014-01-30T11:18:01-05:00"
    for o in trade["orders"]["order"]:
        o["price"], o["discount_fee"] = 88, 74.2
    trade["payment"], trade["total_fee"] = 13.8, 88
    assert without_raw(a.normalize(trade)) == expected


@pytest.mark.parametrize("status, refund, expected", [
    ("WAIT_BUYER_PAY", "", None), ("WAIT_SELLER_SEND_GOODS", "", "pay"), ("SELLER_CONSIGNED_PART", "", "partially_ship"),
    ("WAIT_BUYER_CONFIRM_GOODS", "", "ship"), ("TRADE_BUYER_SIGNED", "", "deliver"), ("TRADE_FINISHED", "", "complete"),
    ("TRADE_CLOSED", "SUCCESS", "cancel"), ("TRADE_CLOSED_BY_TAOBAO", "", "cancel"),
    ("WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_AGREE", "refund_requested"),
    ("WAIT_BUYER_CONFIRM_GOODS", "WAIT_BUYER_RETURN_GOODS", "refund_requested"),
    ("TRADE_FINISHED", "SUCCESS", "refunded"), ("WAIT_SELLER_SEND_GOODS", "NO_REFUND", "pay"),
    ("WAIT_SELLER_SEND_GOODS", "SELLER_REFUSE_BUYER", "pay"), ("SOMETHING_NEW", "", None),
])
def test_status_transition(status, refund, expected):
    assert adapter().status_transition(status, refund_status=refund) == expected


def test_line_refund_sets_the_flag():
    raw = load("taobao/trade_fullinfo_get.jdp_push_row.json")
    trade = raw["trade_fullinfo_get_response"]["trade"]
    trade["status"] = trade["orders"]["order"][0]["status"] = "WAIT_SELLER_SEND_GOODS"
    trade["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
    order = adapter().normalize(raw)
    assert order.refund_requested is True and order.paid is True and order.cancelled is False
    assert order.lines[0].refund_status == "WAIT_SELLER_AGREE"


def test_top_signature_published_vector():
    # TOP guide example: secret "test", these parameters → 72CB4D809B375A54502C09360D879C64
    params = {"method": "taobao.user.seller.get", "timestamp": "2013-05-06 13:52:03", "format": "xml",
              "app_key": "test", "v": "2.0", "fields": "nick", "sign_method": "md5", "session": "test"}
    assert sign(params, "test") == "72CB4D809B375A54502C09360D879C64"
    assert sign({**params, "sign": "ignored", "empty": ""}, "test") == "72CB4D809B375A54502C09360D879C64"


def test_list_request_is_signed_plain_data():
    a = adapter()
    cursor = str(WindowCursor(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), 3))
    method, path, params, body, headers, _ = a.build_list_request(cursor, 500)
    assert (method, path, body) == ("POST", "/router/rest", None)
    assert params["method"] == "taobao.trades.sold.increment.get"
    assert params["start_modified"] == "2024-01-01 08:00:00" and params["end_modified"] == "2024-01-02 08:00:00"
    assert params["page_no"] == "3" and params["page_size"] == "100" and params["use_has_next"] == "true"
    assert params["timestamp"] == "2024-01-02 15:04:05"
    assert params["sign"] == sign({k: v for k, v in params.items() if k != "sign"}, "test")


def test_initial_cursor_and_last_page_moves_to_the_next_window():
    a = adapter()
    first_cursor = a.initial_cursor(datetime(2024, 1, 1, 12, 0, tzinfo=UTC))
    assert first_cursor == "2024-01-01T11:58:00Z|2024-01-02T07:04:05Z|1"  # 2 min overlap, clamped to now
    body = {"trades_sold_increment_get_response": {"has_next": False, "trades": {"trade": []}}}
    page = a.parse_list_response(body, cursor=first_cursor)
    assert page.has_more is False and page.orders == []
    assert page.next_cursor == "2024-01-02T07:04:05Z|2024-01-02T07:04:05Z|1"


def test_stock_push_request():
    req = adapter().build_stock_push("33395009470", 7, item_id="35223917483")
    assert req.params["method"] == "taobao.item.quantity.update"
    assert (req.params["num_iid"], req.params["sku_id"], req.params["quantity"], req.params["type"]) == (
        "35223917483", "33395009470", "7", "1")
    assert adapter().build_stock_push("35223917483", -2).params["quantity"] == "0"


def test_error_envelope_and_rate_limit():
    a = adapter()
    with pytest.raises(PlatformError) as exc:
        a.parse_list_response({"error_response": {"code": 7, "msg": "App Call Limited",
                                                  "sub_code": "accesscontrol.limited-by-app-access-count",
                                                  "sub_msg": "This ban will last for 71 more seconds"}})
    assert exc.value.code == "7" and exc.value.retryable is True and exc.value.retry_after == 71.0
    with pytest.raises(PlatformError) as exc:
        a.parse_list_response({"error_response": {"code": 27, "msg": "Invalid session", "sub_code": "invalid-sessionkey"}})
    assert exc.value.code == "27" and exc.value.retryable is False and exc.value.platform == "taobao"


def test_backfill_uses_trades_sold_get_by_creation_time():
    a = TaobaoAdapter(Credentials(app_key="k", app_secret="s", extra={"list_api": "sold"}), now=lambda: FIXED_NOW)
    p = a.build_list_request("2024-01-01T00:00:00Z|2024-01-02T00:00:00Z|1", 40).params
    assert p["method"] == "taobao.trades.sold.get"
    assert (p["start_created"], p["end_created"], p["page_size"]) == ("2024-01-01 08:00:00", "2024-01-02 08:00:00", "40")
    assert "start_modified" not in p


def test_hmac_sign_methods_follow_the_documented_construction():
    import hashlib
    import hmac

    params = {"b": "2", "a": "1", "sign": "x", "empty": ""}
    assert sign(params, "s", "hmac") == hmac.new(b"s", b"a1b2", hashlib.md5).hexdigest().upper()
    assert sign(params, "s", "hmac-sha256") == hmac.new(b"s", b"a1b2", hashlib.sha256).hexdigest().upper()
    with pytest.raises(ValueError):
        sign(params, "s", "sha1")
