import copy
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import Credentials, PlatformAdapter
from orders.platforms.shopify import (ShopifyAdapter, next_page_info, parse_refund, parse_webhook, verify_webhook,
                                      webhook_signature)
from tests.orders.platforms.shared import fixture_path, load, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def adapter(**extra):
    creds = Credentials(access_token="shpat_test", shop_id="demo-shop", extra=extra)
    return ShopifyAdapter(creds, now=lambda: NOW)


def single():
    return load("shopify/order.single.json")


def listed():
    return load("shopify/orders.list.json")["orders"][0]


def test_is_a_platform_adapter_for_one_shop():
    a = adapter()
    assert isinstance(a, PlatformAdapter) and ShopifyAdapter.code == "shopify"
    assert a.base_url == "https://demo-shop.myshopify.com"


def test_single_order_response_normalizes_exactly():
    order = adapter().normalize(single())
    assert order.platform_order_id == "450789469"
    assert order.platform_status == "authorized/unfulfilled"
    assert order.paid is True and order.currency == "USD"
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("398.00"), Decimal("0.00"), Decimal("0.00"), Decimal("409.94"))
    assert order.lines == [
        NormalizedLine(title="IPod Nano - 8gb - green", quantity=1, unit_price=Decimal("199.00"),
                       platform_sku_id="39072856", sku_code="IPOD2008GREEN", platform_line_id="466157049"),
        NormalizedLine(title="IPod Nano - 8gb - red", quantity=1, unit_price=Decimal("199.00"),
                       platform_sku_id="49148385", sku_code="IPOD2008RED", platform_line_id="518995019"),
        NormalizedLine(title="IPod Nano - 8gb - black", quantity=1, unit_price=Decimal("199.00"),
                       platform_sku_id="457924702", sku_code="IPOD2008BLACK", platform_line_id="703073504"),
    ]
    assert order.coupon_codes == ["TENOFF"]
    assert order.buyer_note == "custom engraving: Happy Birthday\ncolour: green"
    assert (order.buyer_name, order.platform_buyer_id) == ("John Doe", "207119551")
    assert (order.receiver_name, order.receiver_phone) == ("John Doe", "555-010-0199")
    assert (order.country, order.province, order.city, order.district, order.address, order.postcode) == (
        "US", "Kentucky", "Louisville", "", "Example Street 1", "40202")
    # 2008-01-10T11:00:00-05:00
    assert order.placed_at == order.paid_at == order.platform_updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert (order.cancelled, order.shipped, order.refund_requested) == (False, False, False)
    assert order.raw == single()


def test_list_order_with_money_sets_normalizes_exactly():
    order = adapter().normalize(listed())
    assert order.platform_order_id == "450789469"
    assert order.platform_status == "partially_refunded/unfulfilled"
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("597.00"), Decimal("10.00"), Decimal("0.00"), Decimal("598.94"))
    assert order.lines == []  # the list sample carries no line_items: stored and held upstream
    assert order.buyer_phone == "+16135550100" and order.platform_buyer_id == "207119551"
    assert order.refund_requested is True and order.paid is True
    assert adapter().status_transition(order.platform_status) == "refunded"


def test_shop_money_wins_over_presentment_money():
    raw = listed()
    for key in ("total_price", "total_line_items_price", "total_discounts"):
        raw.pop(key, None)
    raw["presentment_currency"] = "CAD"
    raw["total_price_set"]["presentment_money"] = {"amount": "812.00", "currency_code": "CAD"}
    order = adapter().normalize(raw)
    assert order.paid_amount == Decimal("598.94") and order.currency == "USD"
    assert order.goods_amount == Decimal("597.00") and order.discount_amount == Decimal("10.00")
    assert "presentment_currency:CAD" in order.tags


@pytest.mark.parametrize("variant", ["strings", "shuffled", "offset", "wrapped"])
def test_variants_give_the_same_order(variant):
    base = adapter().normalize(single()["order"])
    raw = copy.deepcopy(single()["order"])
    if variant == "strings":
        raw = stringify_numbers(raw)  # ids, quantities, rates as strings
    elif variant == "shuffled":
        raw = shuffled(raw)
    elif variant == "offset":
        raw["created_at"] = raw["updated_at"] = "2008-01-11T00:00:00+08:00"
    elif variant == "wrapped":
        raw = {"order": raw}
    assert without_raw(adapter().normalize(raw)) == without_raw(base)


def test_money_as_numbers_gives_the_same_amounts():
    raw = single()["order"]
    raw["total_price"], raw["subtotal_price"], raw["total_line_items_price"] = 409.94, 398, 398.0
    raw["line_items"][0]["price"] = 199
    order = adapter().normalize(raw)
    assert order.paid_amount == Decimal("409.94") and order.goods_amount == Decimal("398.00")
    assert order.lines[0].unit_price == Decimal("199.00")


@pytest.mark.parametrize("financial, fulfillment, cancelled, expected", [
    ("pending", None, False, None),
    ("partially_paid", None, False, None),
    ("authorized", None, False, "pay"),
    ("paid", None, False, "pay"),
    ("paid", "partial", False, "partially_ship"),
    ("paid", "fulfilled", False, "ship"),
    ("partially_refunded", None, False, "refunded"),
    ("partially_refunded", "fulfilled", False, "ship"),
    ("refunded", None, False, "cancel"),
    ("refunded", "fulfilled", False, "refunded"),
    ("voided", None, False, "cancel"),
    ("paid", None, True, "cancel"),
])
def test_status_mapping(financial, fulfillment, cancelled, expected):
    raw = single()["order"]
    raw.update(financial_status=financial, fulfillment_status=fulfillment,
               cancelled_at="2008-01-10T12:00:00-05:00" if cancelled else None)
    order = adapter().normalize(raw)
    assert adapter().status_transition(order.platform_status) == expected
    assert order.cancelled is (expected == "cancel")
    assert order.shipped is (fulfillment == "fulfilled")
    assert order.paid is (financial in {"authorized", "paid", "partially_refunded", "refunded"})


def test_refund_sample_reads_lines_and_amount():
    refund = parse_refund(load("shopify/refund.single.json"))
    assert (refund.refund_id, refund.order_id) == ("509562969", "450789469")
    assert refund.lines == {"703073504": 1, "466157049": 1}
    assert refund.amount == Decimal("209.00") and refund.currency == "USD" and refund.restock is True
    assert refund.created_at == datetime(2016, 6, 20, 17, 35, 6, tzinfo=UTC)


def test_refunds_inside_the_order_mark_their_lines():
    raw = single()["order"]
    raw["financial_status"] = "partially_refunded"
    raw["refunds"] = [load("shopify/refund.single.json")["refund"]]
    order = adapter().normalize(raw)
    assert [line.refund_status for line in order.lines] == ["refunded", "", "refunded"]
    assert order.refund_requested is True


# --- paging -------------------------------------------------------------------------------------

def test_first_request_filters_by_update_time():
    req = adapter().build_list_request(adapter().initial_cursor(datetime(2024, 3, 1, 8, tzinfo=UTC)), 500)
    assert (req.method, req.path) == ("GET", "/admin/api/2024-07/orders.json")
    assert req.params == {"status": "any", "updated_at_min": "2024-03-01T08:00:00Z", "limit": "250"}
    assert req.headers["X-Shopify-Access-Token"] == "shpat_test"


def test_link_header_pages_on_and_last_page_moves_the_window():
    a = adapter()
    cursor = a.initial_cursor(datetime(2008, 1, 1, tzinfo=UTC))
    link = ('<https://demo-shop.myshopify.com/admin/api/2024-07/orders.json?limit=50&page_info=abc123>; rel="next", '
            '<https://demo-shop.myshopify.com/admin/api/2024-07/orders.json?limit=50&page_info=zzz>; rel="previous"')
    page = a.parse_list_response(load("shopify/orders.list.json"), cursor=cursor, headers={"link": link})
    assert page.has_more is True and len(page.orders) == 1
    nxt = a.build_list_request(page.next_cursor, 50)
    assert nxt.params == {"limit": "50", "page_info": "abc123"}  # no other filter with page_info

    last = a.parse_list_response({"orders": []}, cursor=page.next_cursor, headers={})
    assert last.has_more is False
    # newest update seen 2008-01-10T16:00Z, minus the 2 minutes overlap
    assert last.next_cursor == "2008-01-10T15:58:00Z||"
    assert a.build_list_request(last.next_cursor, 50).params["updated_at_min"] == "2008-01-10T15:58:00Z"


def test_empty_run_keeps_its_start():
    a = adapter()
    cursor = a.initial_cursor(datetime(2024, 3, 1, tzinfo=UTC))
    assert a.parse_list_response({"orders": []}, cursor=cursor).next_cursor == "2024-03-01T00:00:00Z||"


def test_next_page_info_reads_only_the_next_link():
    assert next_page_info('<https://x/orders.json?page_info=p1&limit=5>; rel="previous"') == ""
    assert next_page_info("") == ""


def test_error_answers_raise_platform_error():
    with pytest.raises(PlatformError) as info:
        adapter().parse_list_response({"errors": "[API] Invalid API key or access token"}, status=401)
    assert (info.value.code, info.value.retryable) == ("401", False)
    with pytest.raises(PlatformError) as info:
        adapter().parse_list_response({"errors": "Exceeded 2 calls per second"}, status=429,
                                      headers={"Retry-After": "2.0"})
    assert (info.value.retryable, info.value.retry_after) == (True, 2.0)


def test_stock_push_sets_the_inventory_level():
    req = adapter(location_id="655441491").build_stock_push("39072856", 7, item_id="808950810")
    assert (req.method, req.path, req.body_format) == ("POST", "/admin/api/2024-07/inventory_levels/set.json", "json")
    assert req.body == {"location_id": 655441491, "inventory_item_id": 808950810, "available": 7}
    with pytest.raises(ValueError):
        adapter().build_stock_push("39072856", 7)


# --- webhooks -----------------------------------------------------------------------------------

def vector():
    return load("shopify/hmac_vector.json")


def test_published_vector_verifies_over_raw_bytes():
    v = vector()
    body = bytes.fromhex(v["body_hex"])
    assert len(body) == v["body_length"] and body == v["body_utf8"].encode()
    assert webhook_signature(body, v["secret"]) == v["headers"]["X-Shopify-Hmac-Sha256"]
    assert verify_webhook(body, v["headers"]["X-Shopify-Hmac-Sha256"], v["secret"]) is True


def test_reserialised_body_does_not_verify():
    v = vector()
    other = v["negative_case"]["body_utf8"].encode()
    assert webhook_signature(other, v["secret"]) == v["negative_case"]["hmac_of_this_body"]
    assert verify_webhook(other, v["headers"]["X-Shopify-Hmac-Sha256"], v["secret"]) is False
    assert verify_webhook(json.dumps(json.loads(v["body_utf8"])).replace(" ", "").encode(),
                          v["headers"]["X-Shopify-Hmac-Sha256"], v["secret"]) is False


@pytest.mark.parametrize("signature, secret", [(None, "test_secret_key"), ("", "test_secret_key"),
                                                ("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", "wrong"),
                                                ("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", ""),
                                                ("not base64 ✗", "test_secret_key")])
def test_missing_or_wrong_signature_is_refused(signature, secret):
    assert verify_webhook(b'{"foo": "bar"}', signature, secret) is False


def test_order_webhook_gives_topic_id_and_order():
    raw = json.dumps(single()["order"]).encode()
    headers = {"x-shopify-topic": "orders/cancelled", "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
               "X-Shopify-Shop-Domain": "demo-shop.myshopify.com"}
    event = parse_webhook(raw, headers)
    assert (event.topic, event.event_id, event.shop_domain) == (
        "orders/cancelled", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "demo-shop.myshopify.com")
    assert adapter().normalize(event.payload).platform_order_id == "450789469"


@pytest.mark.parametrize("body, topic", [(b'{"foo": "bar"}', "products/create"), (b"not json", "orders/create"),
                                         (b"[1, 2]", "orders/updated"), (b'{"foo": "bar"}', "orders/create")])
def test_other_topics_and_bad_bodies_are_refused(body, topic):
    with pytest.raises(ValueError):
        parse_webhook(body, {"X-Shopify-Topic": topic})


def test_fixture_directory_is_beside_the_repo():
    assert fixture_path("shopify/order.single.json").parent.parent.name == "fixtures"


# --- the contract every adapter keeps (also used by the Amazon, distributor and sandbox tests) -----

def check_contract(adapter, raw):
    from orders.models import Platform
    from orders.platforms.base import NormalizedOrder
    from orders.platforms.interface import PlatformTransition
    from orders.platforms.parsing import ParseError

    assert isinstance(adapter, PlatformAdapter) and adapter.code in Platform.values
    order = adapter.normalize(copy.deepcopy(raw))
    assert isinstance(order, NormalizedOrder) and order.platform_order_id
    for amount in (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount):
        assert isinstance(amount, Decimal) and amount.as_tuple().exponent == -2
    for line in order.lines:
        assert isinstance(line.unit_price, Decimal) and line.unit_price.as_tuple().exponent == -2
        assert isinstance(line.quantity, int) and line.platform_line_id
    for moment in (order.placed_at, order.paid_at, order.platform_updated_at, order.promised_ship_at):
        assert moment is None or moment.tzinfo is timezone.utc
    assert order.raw == raw
    transition = adapter.status_transition(order.platform_status)
    assert transition is None or transition in {t.value for t in PlatformTransition}
    with pytest.raises(ParseError if adapter.code != "distributor" else ValueError):
        adapter.normalize({"status": "paid"})


def test_keeps_the_adapter_contract():
    check_contract(adapter(), single())
    check_contract(adapter(), listed())


def test_line_items_in_the_money_set_shape():
    """Newer API versions send line money as price_set / total_discount_set and
    discount_allocations; the shop's money is taken, not the buyer's presentment money."""
    raw = listed()
    raw["line_items"] = [{
        "id": 466157049, "variant_id": 39072856, "product_id": 632910392, "sku": "IPOD2008GREEN",
        "title": "IPod Nano - 8gb", "variant_title": "green", "quantity": 3,
        "price": "199.00",
        "price_set": {"shop_money": {"amount": "199.00", "currency_code": "USD"},
                      "presentment_money": {"amount": "270.00", "currency_code": "CAD"}},
        "total_discount": "0.00",
        "total_discount_set": {"shop_money": {"amount": "0.00", "currency_code": "USD"},
                               "presentment_money": {"amount": "0.00", "currency_code": "CAD"}},
        "discount_allocations": [{"amount": "10.00", "discount_application_index": 0,
                                  "amount_set": {"shop_money": {"amount": "10.00", "currency_code": "USD"},
                                                 "presentment_money": {"amount": "13.50", "currency_code": "CAD"}}}],
    }]
    (line,) = adapter().normalize(raw).lines
    assert line == NormalizedLine(title="IPod Nano - 8gb - green", quantity=3,
                                  unit_price=Decimal("199.00"), platform_sku_id="39072856", sku_code="IPOD2008GREEN",
                                  discount_amount=Decimal("10.00"), platform_line_id="466157049")


def test_webhook_body_verified_then_normalized():
    secret = "shop-secret"
    body = json.dumps(single()["order"], ensure_ascii=False).encode("utf-8")
    headers = {"X-Shopify-Hmac-Sha256": webhook_signature(body, secret), "X-Shopify-Topic": "orders/updated",
               "X-Shopify-Webhook-Id": "1"}
    assert verify_webhook(body, headers["X-Shopify-Hmac-Sha256"], secret)
    assert not verify_webhook(body + b" ", headers["X-Shopify-Hmac-Sha256"], secret)  # one byte more
    order = adapter().normalize(parse_webhook(body, headers).payload)
    assert without_raw(order) == without_raw(adapter().normalize(single()))


def test_429_without_retry_after_waits_for_the_bucket_to_leak():
    with pytest.raises(PlatformError) as info:
        adapter().parse_list_response({"errors": "Exceeded 2 calls per second for api client."}, status=429,
                                      headers={"Retry-After": "soon"})
    assert (info.value.retryable, info.value.retry_after) == (True, 1.0)
    with pytest.raises(PlatformError) as info:
        adapter().parse_list_response({}, status=502)
    assert (info.value.retryable, info.value.retry_after) == (True, None)
