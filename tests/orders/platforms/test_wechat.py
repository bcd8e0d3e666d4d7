import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import Credentials, PlatformAdapter
from orders.platforms.wechat import WechatAdapter, signature
from tests.orders.platforms.shared import OWN, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
NOW = datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)


def adapter():
    return WechatAdapter(Credentials(app_key="miniapp-1", app_secret="s3cret"), now=lambda: NOW)


def sample():
    return json.loads((OWN / "wechat_order.json").read_text(encoding="utf-8"))


def test_is_a_platform_adapter_with_the_platform_key():
    from orders.models import Platform

    assert isinstance(adapter(), PlatformAdapter) and WechatAdapter.code == Platform.MINIAPP


def test_documented_example_normalizes_exactly():
    order = adapter().normalize(sample())
    assert order.platform_order_id == "WX20240102150405001" and order.platform_status == "PAID"
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("104.90"), Decimal("10.00"), Decimal("8.00"), Decimal("102.90"))
    assert order.lines == [
        NormalizedLine(title="折叠盆 大号 蓝色", quantity=2, unit_price=Decimal("49.95"), platform_sku_id="FP-L-BLUE",
                       sku_code="FP-L-BLUE", discount_amount=Decimal("10.00"), platform_line_id="1"),
        NormalizedLine(title="收纳袋", quantity=1, unit_price=Decimal("5.00"), platform_sku_id="BAG-S", sku_code="BAG-S",
                       discount_amount=Decimal("0.00"), platform_line_id="2"),
        NormalizedLine(title="赠品 抹布", quantity=1, unit_price=Decimal("0.00"), platform_sku_id="RAG", sku_code="RAG",
                       discount_amount=Decimal("0.00"), is_gift=True, platform_line_id="3"),
    ]
    assert (order.province, order.city, order.district, order.address) == ("北京市", "北京市", "朝阳区", "测试路1号示例小区2栋301")
    assert order.receiver_phone == "13800000001" and order.buyer_phone == "13800000000"
    assert order.placed_at == datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)
    assert order.platform_updated_at == datetime(2024, 1, 2, 7, 6, 0, 250000, tzinfo=UTC)
    assert order.promised_ship_at == datetime(2024, 1, 4, 10, 0, tzinfo=UTC)
    assert order.platform_buyer_id == "o6_bmasdasdsad6_2sgVt7hMZOPfL"  # unionid preferred over openid
    assert (order.member_level, order.is_vip, order.coupon_codes) == ("金卡", True, ["NEWUSER10"])
    assert (order.invoice_title, order.invoice_tax_number) == ("示例科技有限公司", "91110105MA00000000")
    assert order.paid is True and order.refund_requested is False and order.source_detail == "scene:1001"


def test_variants_give_the_same_order():
    a = adapter()
    expected = without_raw(a.normalize(sample()))
    assert without_raw(a.normalize(stringify_numbers(sample()))) == expected
    assert without_raw(a.normalize(shuffled(sample()))) == expected
    other = sample()
    other["amounts"] = {"paid": 102.9, "shipping": 8, "discount": 10, "goods": 104.9, "currency": "CNY"}
    other["created_at"] = "2024-01-02T07:04:05Z"
    other["paid_at"] = 1704179100
    other["updated_at"] = "2024-01-02 15:06:00.25"  # naive = Beijing
    other["items"][0]["quantity"] = "2"
    other["items"][2]["gift"] = "true"
    assert without_raw(a.normalize(other)) == expected


def test_unknown_schema_is_refused():
    raw = sample()
    raw["schema"] = "orderhub.miniapp/9"
    with pytest.raises(ValueError):
        adapter().normalize(raw)


@pytest.mark.parametrize("status, refund, expected", [
    ("WAIT_PAY", "", None), ("PAID", "NONE", "pay"), ("PART_SHIPPED", "", "partially_ship"), ("SHIPPED", "", "ship"),
    ("DELIVERED", "", "deliver"), ("FINISHED", "", "complete"), ("CLOSED", "", "cancel"), ("REFUNDED", "", "cancel"),
    ("PAID", "REQUESTED", "refund_requested"), ("FINISHED", "REFUNDED", "refunded"),
])
def test_status_transition(status, refund, expected):
    assert adapter().status_transition(status, refund_status=refund) == expected


def test_refund_flag_from_a_line():
    raw = sample()
    raw["items"][1]["refund_status"] = "REQUESTED"
    order = adapter().normalize(raw)
    assert order.refund_requested is True and order.lines[1].refund_status == "REQUESTED"


def test_requests_are_signed():
    a = adapter()
    assert a.initial_cursor(datetime(2024, 1, 1, 8, tzinfo=UTC)) == "since:2024-01-01T08:00:00Z"
    req = a.build_list_request("since:2024-01-01T08:00:00Z", 50)
    assert (req.method, req.path, req.params) == ("GET", "/api/orderhub/v1/orders",
                                                  {"cursor": "since:2024-01-01T08:00:00Z", "limit": "50"})
    assert req.headers["X-OrderHub-Timestamp"] == "1704179045"
    assert req.headers["X-OrderHub-Signature"] == signature("s3cret", "GET", "/api/orderhub/v1/orders", req.params,
                                                             1704179045)
    push = a.build_stock_push("FP-L-BLUE", 9)
    assert (push.method, push.path, push.body) == ("PUT", "/api/orderhub/v1/stock/FP-L-BLUE", {"quantity": 9})
    assert push.headers["X-OrderHub-Signature"] == signature("s3cret", "PUT", "/api/orderhub/v1/stock/FP-L-BLUE", {},
                                                              1704179045, '{"quantity":9}')


def test_list_response_and_error():
    page = adapter().parse_list_response({"orders": [sample()], "next_cursor": "c2", "has_more": True}, cursor="c1")
    assert page.has_more is True and page.next_cursor == "c2" and len(page.orders) == 1
    with pytest.raises(PlatformError) as exc:
        adapter().parse_list_response({"error": {"code": "rate_limited", "message": "slow down", "retryable": True,
                                                 "retry_after": 3}})
    assert (exc.value.code, exc.value.retryable, exc.value.retry_after) == ("rate_limited", True, 3.0)
