import copy
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.amazon import RATE_LIMITS, AmazonAdapter, error_from_response, normalize_order, rate_limit
from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import Credentials, PlatformAdapter
from tests.orders.platforms.shared import load, shuffled, stringify_numbers, without_raw

UTC = timezone.utc
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def adapter(**extra):
    return AmazonAdapter(Credentials(access_token="Atza|test", shop_id="A2SELLER", extra=extra), now=lambda: NOW)


def order():
    return load("amazon/getOrder.200.json")["payload"]


def items():
    return load("amazon/getOrderItems.200.json")["payload"]["OrderItems"]


def combined():
    return {"order": load("amazon/getOrder.200.json"), "items": load("amazon/getOrderItems.200.json"),
            "address": load("amazon/getOrderAddress.200.json")}


def test_is_a_platform_adapter():
    assert isinstance(adapter(), PlatformAdapter) and AmazonAdapter.code == "amazon"
    assert adapter(region="eu").base_url == "https://sellingpartnerapi-eu.amazon.com"


def test_order_with_its_items_normalizes_exactly():
    o = adapter().normalize(combined())
    assert o.platform_order_id == "902-1845936-5435065" and o.platform_status == "Unshipped"
    assert o.paid is True and o.currency == "USD"
    assert (o.goods_amount, o.discount_amount, o.shipping_fee, o.paid_amount) == (
        Decimal("10.00"), Decimal("0.00"), Decimal("0.00"), Decimal("11.01"))
    assert o.lines == [NormalizedLine(
        title="B00551Q3CS [Card Book]", quantity=1, unit_price=Decimal("10.00"),
        platform_sku_id="NABetaASINB00551Q3CS", discount_amount=Decimal("0.00"),
        platform_line_id="05015851154158", refund_status="BuyerRequestedCancel")]
    # IsBuyerRequestedCancel is the string "true"; IsGift the string "false"
    assert o.refund_requested is True and "gift" not in o.tags and "buyer_requested_cancel" in o.tags
    assert o.buyer_note == "Buyer requested cancel: Found cheaper somewhere else."
    assert adapter().status_transition(o.platform_status, refund_status="BuyerRequestedCancel") == "refund_requested"
    assert (o.receiver_name, o.receiver_phone) == ("MFNIntegrationTestMerchant", "+1 555-010-0100 ext. 00000")
    assert (o.country, o.province, o.city, o.address, o.postcode) == (
        "US", "WA", "SEATTLE", "100 EXAMPLE AVE", "98121-2778")
    assert o.placed_at == datetime(1970, 1, 19, 3, 58, 30, tzinfo=UTC)
    assert o.platform_updated_at == datetime(1970, 1, 19, 3, 58, 32, tzinfo=UTC)
    assert o.promised_ship_at == datetime(1970, 1, 19, 4, 5, 13, tzinfo=UTC)
    assert o.paid_at is None  # Amazon publishes no payment time
    assert o.source_detail == "Amazon.com" and o.tags[0] == "marketplace:ATVPDKIKX0DER"
    assert (o.cancelled, o.shipped) == (False, False)


def test_function_taking_order_and_items_gives_the_same_order():
    by_function = normalize_order(order(), items(), load("amazon/getOrderAddress.200.json")["payload"]["ShippingAddress"])
    assert without_raw(by_function) == without_raw(adapter().normalize(combined()))


def test_business_order_with_milliseconds_and_afn():
    o = adapter().normalize(load("amazon/getOrder.200.iba.json"))
    assert o.platform_order_id == "921-3175655-0452641" and o.currency == "EUR"
    assert o.paid_amount == Decimal("100.00") and o.lines == []  # no items fetched yet
    assert o.placed_at == datetime(2019, 5, 7, 15, 42, 57, 58000, tzinfo=UTC)
    assert o.shipped is True and adapter().status_transition(o.platform_status) == "ship"
    assert {"business", "iba", "fulfilled_by_amazon"} <= set(o.tags)


@pytest.mark.parametrize("variant", ["strings", "numbers_and_bools", "shuffled", "offset"])
def test_variants_give_the_same_order(variant):
    base = adapter().normalize(combined())
    raw = copy.deepcopy(combined())
    if variant == "strings":
        raw = stringify_numbers(raw)
    elif variant == "numbers_and_bools":
        item = raw["items"]["payload"]["OrderItems"][0]
        item["ItemPrice"]["Amount"], item["ItemTax"]["Amount"] = 10, 1.01
        item["IsGift"], item["BuyerRequestedCancel"]["IsBuyerRequestedCancel"] = False, True
        raw["order"]["payload"]["OrderTotal"]["Amount"] = 11.01
    elif variant == "shuffled":
        raw = shuffled(raw)
    elif variant == "offset":
        raw["order"]["payload"]["PurchaseDate"] = "1970-01-18T19:58:30.000-08:00"
        raw["order"]["payload"]["LastUpdateDate"] = "1970-01-19T11:58:32+08:00"
    assert without_raw(adapter().normalize(raw)) == without_raw(base)


def test_quantity_two_gives_the_unit_price_and_gift_flag_becomes_a_tag():
    item = copy.deepcopy(items()[0])
    item.update(QuantityOrdered="2", ItemPrice={"CurrencyCode": "USD", "Amount": "19.98"}, IsGift="true",
                PromotionDiscount={"CurrencyCode": "USD", "Amount": "2.00"},
                ShippingPrice={"CurrencyCode": "USD", "Amount": "3.99"})
    item.pop("BuyerRequestedCancel")
    o = normalize_order(order(), [item])
    assert (o.lines[0].quantity, o.lines[0].unit_price, o.lines[0].discount_amount) == (2, Decimal("9.99"), Decimal("2.00"))
    assert (o.goods_amount, o.discount_amount, o.shipping_fee) == (Decimal("19.98"), Decimal("2.00"), Decimal("3.99"))
    assert o.lines[0].is_gift is False and "gift" in o.tags  # a present for someone, not a free line
    assert o.refund_requested is False and adapter().status_transition("Unshipped") == "pay"


@pytest.mark.parametrize("status, expected, paid", [
    ("PendingAvailability", None, False), ("Pending", None, False), ("Unshipped", "pay", True),
    ("PartiallyShipped", "partially_ship", True), ("Shipped", "ship", True), ("InvoiceUnconfirmed", "ship", True),
    ("Canceled", "cancel", False), ("Unfulfillable", None, False),
])
def test_status_mapping(status, expected, paid):
    raw = order()
    raw["OrderStatus"] = status
    o = normalize_order(raw, [])
    assert adapter().status_transition(status) == expected
    assert o.paid is paid and o.cancelled is (status == "Canceled")
    assert o.is_presale is (status == "PendingAvailability")


def test_cancel_request_on_a_cancelled_order_is_a_cancel():
    assert adapter().status_transition("Canceled", refund_status="BuyerRequestedCancel") == "cancel"
    assert adapter().status_transition("Shipped", refund_status="BuyerRequestedCancel") == "ship"


# --- paging ---------------------------------------------------------------------------------------

def test_first_request_asks_for_updates_since_the_cursor():
    a = adapter()
    req = a.build_list_request(a.initial_cursor(datetime(2024, 3, 1, 8, tzinfo=UTC)), 500)
    assert (req.method, req.path) == ("GET", "/orders/v0/orders")
    assert req.params == {"MarketplaceIds": "ATVPDKIKX0DER", "LastUpdatedAfter": "2024-03-01T08:00:00Z",
                          "MaxResultsPerPage": "100"}
    assert req.headers["x-amz-access-token"] == "Atza|test"


def test_last_updated_after_stays_two_minutes_in_the_past():
    a = adapter()
    req = a.build_list_request(a.initial_cursor(NOW), 10)
    assert req.params["LastUpdatedAfter"] == "2024-03-01T11:58:00Z"


def test_next_token_pages_on():
    a = adapter()
    cursor = a.initial_cursor(datetime(2017, 1, 20, tzinfo=UTC))
    page = a.parse_list_response(load("amazon/getOrders.200.next_token_page1.json"), cursor=cursor)
    assert page.has_more is True and [o["AmazonOrderId"] for o in page.orders] == ["902-3159896-1390916"]
    req = a.build_list_request(page.next_cursor, 100)
    assert req.params == {"MarketplaceIds": "ATVPDKIKX0DER", "NextToken": "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"}


def test_last_page_starts_the_next_run_at_the_answered_bound():
    a = adapter()
    page = a.parse_list_response(load("amazon/getOrders.200.json"), cursor=a.initial_cursor(datetime(1970, 1, 2, tzinfo=UTC)))
    assert page.has_more is False and len(page.orders) == 2
    # CreatedBefore "1.569521782042E9" = 2019-09-26T18:16:22.042Z, minus the 2 minutes overlap
    assert page.next_cursor == "2019-09-26T18:14:22Z||"


def test_last_page_without_bound_uses_the_newest_update_seen():
    a = adapter()
    body = load("amazon/getOrders.200.json")
    del body["payload"]["CreatedBefore"]
    page = a.parse_list_response(body, cursor=a.initial_cursor(datetime(1970, 1, 2, tzinfo=UTC)))
    assert page.next_cursor == "1970-01-19T03:56:32Z||"


def test_items_response_and_its_request():
    a = adapter()
    assert a.build_items_request("902-1845936-5435065").path == "/orders/v0/orders/902-1845936-5435065/orderItems"
    got, token = a.parse_items_response(load("amazon/getOrderItems.200.json"))
    assert [i["OrderItemId"] for i in got] == ["05015851154158"] and token == ""


# --- errors and rate limits ---------------------------------------------------------------------

def test_error_envelope_raises_platform_error():
    with pytest.raises(PlatformError) as info:
        adapter().parse_list_response(load("amazon/getOrders.400.json"), status=400)
    err = info.value
    assert (err.platform, err.code, err.message, err.retryable, err.retry_after) == (
        "amazon", "InvalidInput", "Invalid Input", False, None)


def test_error_envelope_is_an_error_even_with_status_200():
    with pytest.raises(PlatformError):
        adapter().parse_list_response(load("amazon/getOrders.400.json"))


def test_429_is_retryable_after_one_interval_of_the_plan_in_force():
    body = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota for the requested resource."}]}
    err = error_from_response(429, body, {"X-Amzn-RateLimit-Limit": "0.0167"})
    assert (err.code, err.retryable, err.retry_after) == ("QuotaExceeded", True, 59.88)
    assert error_from_response(429, body, {"Retry-After": "3"}).retry_after == 3.0
    assert error_from_response(503, {}, {}).retryable is True and error_from_response(503, {}, {}).code == "503"
    assert error_from_response(200, {"payload": {}}, {}) is None


def test_rate_limit_header_and_documented_plans():
    assert rate_limit({"x-amzn-RateLimit-Limit": "0.5"}) == 0.5
    assert rate_limit({"x-amzn-RateLimit-Limit": "junk"}) is None and rate_limit({}) is None
    assert RATE_LIMITS["getOrders"] == (0.0167, 20) and RATE_LIMITS["getOrderItems"] == (0.5, 30)


def test_stock_push_patches_the_listing():
    req = adapter().build_stock_push("NABetaASINB00551Q3CS", 5)
    assert (req.method, req.path, req.body_format) == (
        "PATCH", "/listings/2021-08-01/items/A2SELLER/NABetaASINB00551Q3CS", "json")
    assert req.params == {"marketplaceIds": "ATVPDKIKX0DER"}
    assert req.body["patches"][0]["value"] == [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}]


def test_keeps_the_adapter_contract():
    from tests.orders.platforms.test_shopify import check_contract

    check_contract(adapter(), combined())
    check_contract(adapter(), load("amazon/getOrder.200.iba.json"))


def test_bound_of_the_first_page_carries_to_the_last():
    a = adapter()
    first_page = load("amazon/getOrders.200.json")
    first_page["payload"]["NextToken"] = "tok2"
    page = a.parse_list_response(first_page, cursor=a.initial_cursor(datetime(1970, 1, 2, tzinfo=UTC)))
    assert page.has_more is True
    last = a.parse_list_response({"payload": {"Orders": []}}, cursor=page.next_cursor)
    assert last.has_more is False and last.next_cursor == "2019-09-26T18:14:22Z||"
