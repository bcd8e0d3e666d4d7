"""Amazon Selling Partner API, Orders v0.

Follows ``../shared/fixtures/amazon/*.json`` — the sandbox examples of ``ordersV0.json``
(amzn/selling-partner-api-models): ``getOrders`` with and without ``NextToken``, ``getOrder``,
``getOrderItems``, ``getOrderAddress`` and the 400 error envelope — and ``STATUS_CODES.md``
(OrderStatus). From the same model and SP-API's public documentation, not the fixtures: the
regional endpoints (``sellingpartnerapi-na/-eu/-fe.amazon.com``), the LWA token in
``x-amz-access-token``, ``LastUpdatedAfter`` / ``MaxResultsPerPage`` / ``NextToken`` on
getOrders (``MarketplaceIds`` is required on every call), ``OrderItems``' ``NextToken``, the
``x-amzn-RateLimit-Limit`` response header (requests per second of the usage plan in force),
429 ``QuotaExceeded``, and the Listings Items API ``patchListingsItem`` for the stock push.

An order and its items come from two calls; `normalize_order(order, items, address)` combines
them, and ``normalize(raw)`` takes one payload holding both (``{"order": …, "items": […],
"address": …}``, as a sync stores it after calling getOrderItems/getOrderAddress), the
getOrder response, or a bare order (no lines: stored and held until the items arrive).

Quirks handled: money ``Amount`` as strings; ``IsGift`` and ``BuyerRequestedCancel
.IsBuyerRequestedCancel`` as the strings ``"false"``/``"true"``; ``CreatedBefore`` /
``LastUpdatedBefore`` as epoch seconds in scientific notation (``"1.569521782042E9"``);
``PurchaseDate`` with and without milliseconds. ``ItemPrice`` is the price of the whole
quantity (unit price = ItemPrice / QuantityOrdered). ``IsGift`` means the buyer sends it as a
present (gift wrap/message), not a free gift line: it becomes the order tag ``gift``.
A buyer's cancel request sets ``refund_requested`` and the line's ``refund_status``
``BuyerRequestedCancel``. Amazon publishes no payment time: ``paid_at`` stays empty;
``promised_ship_at`` is ``LatestShipDate``. The stable buyer id is ``BuyerInfo.BuyerEmail``
(Amazon's per-seller alias) when present. AFN orders (fulfilled by Amazon) are tagged
``fulfilled_by_amazon`` — our warehouses do not ship them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from orders.platforms._intl_parsing import TokenCursor, header, iso_utc
from orders.platforms.base import NormalizedLine, NormalizedOrder, OrderPage, PlatformError
from orders.platforms.interface import AdapterBase, PlatformRequest, PlatformTransition as T
from orders.platforms.parsing import ParseError, first, parse_time, required_id, to_bool, to_decimal, to_int, to_money, to_str
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

ENDPOINTS = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
# Default usage plans (requests per second, burst) from ordersV0.json as listed in
# ../shared/fixtures/SOURCES.md; ``x-amzn-RateLimit-Limit`` gives the plan in force, which can
# be higher. For the HTTP client that will pace calls (a token bucket per operation).
RATE_LIMITS: dict[str, tuple[float, int]] = {
    "getOrders": (0.0167, 20), "getOrder": (0.5, 30), "getOrderBuyerInfo": (0.5, 30),
    "getOrderAddress": (0.5, 30), "getOrderItems": (0.5, 30), "getOrderItemsBuyerInfo": (0.5, 30),
    "getOrderRegulatedInfo": (0.5, 30), "updateVerificationStatus": (0.5, 30),
    "updateShipmentStatus": (5.0, 15), "confirmShipment": (2.0, 10),
}
PAID = {"Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed"}
STATUS = {
    "Unshipped": T.PAY, "PartiallyShipped": T.PARTIALLY_SHIP, "Shipped": T.SHIP,
    "InvoiceUnconfirmed": T.SHIP, "Canceled": T.CANCEL,
}  # Pending, PendingAvailability (not paid) and Unfulfillable (nothing we can do): None
BUYER_CANCEL = "BuyerRequestedCancel"
RETRYABLE_CODES = {"QuotaExceeded", "InternalFailure", "ServiceUnavailable", "RequestThrottled"}
MAX_PAGE = 100
# LastUpdatedAfter must lie at least two minutes in the past; the next run reaches back this
# far before the newest update seen.
OVERLAP = timedelta(minutes=2)


def rate_limit(headers: Mapping[str, str] | None) -> float | None:
    """Requests per second from ``x-amzn-RateLimit-Limit`` (None when absent or unreadable)."""
    try:
        value = to_decimal(header(headers, "x-amzn-RateLimit-Limit"), None)
    except ParseError:
        return None
    return float(value) if value is not None and value > 0 else None


def error_from_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> PlatformError | None:
    """The PlatformError an SP-API answer stands for, or None for a success.

    ``{"errors": [{"code", "message", "details"}]}`` keeps the first error's code and all
    messages; 429/``QuotaExceeded`` and 5xx are retryable. ``retry_after`` is ``Retry-After``
    when sent, else one request interval of the plan in force (1 / x-amzn-RateLimit-Limit).
    """
    errors = body.get("errors") if isinstance(body, dict) else None
    if status < 400 and not errors:
        return None
    errors = [e for e in errors or [] if isinstance(e, dict)]
    code = to_str(errors[0].get("code")) if errors else str(status)
    message = "; ".join(to_str(e.get("message")) for e in errors if to_str(e.get("message"))) or f"HTTP {status}"
    retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
    retry_after = None
    if retryable:
        sent = header(headers, "Retry-After")
        rate = rate_limit(headers)
        try:
            retry_after = float(to_decimal(sent)) if sent else (round(1 / rate, 3) if rate else None)
        except ParseError:
            retry_after = round(1 / rate, 3) if rate else None
    return PlatformError("amazon", code, message, retryable=retryable, retry_after=retry_after)


def _money(value: Any) -> Decimal:
    return to_money((value or {}).get("Amount")) if isinstance(value, dict) else Decimal("0.00")


def _flag(value: Any) -> bool:
    try:
        return to_bool(value)
    except ParseError:
        return False


def unwrap(raw: dict) -> tuple[dict, list[dict], dict]:
    """(order, items, shipping address) from the shapes ``normalize`` accepts."""
    if "order" in raw or "Order" in raw:
        order = first(raw.get("order"), raw.get("Order")) or {}
        order = order.get("payload", order)
        items = first(raw.get("items"), raw.get("OrderItems"), raw.get("order_items")) or []
        address = first(raw.get("address"), raw.get("ShippingAddress")) or {}
    else:
        order = raw.get("payload", raw)
        items, address = [], {}
    if isinstance(items, dict):  # a getOrderItems response
        items = items.get("payload", items).get("OrderItems") or []
    if isinstance(address, dict):  # a getOrderAddress response or the address itself
        address = address.get("payload", address)
        address = address.get("ShippingAddress", address)
    return order, list(items), address or order.get("ShippingAddress") or {}


def normalize_order(order: dict, items: list[dict] | None = None, address: dict | None = None, *,
                    raw: dict | None = None) -> NormalizedOrder:
    """One Amazon order (getOrders/getOrder) and its items (getOrderItems) → NormalizedOrder."""
    status = to_str(order.get("OrderStatus"))
    address = address or order.get("ShippingAddress") or {}
    lines, goods, discount, shipping = [], Decimal("0.00"), Decimal("0.00"), Decimal("0.00")
    buyer_cancel, cancel_reasons, gift = False, [], False
    for item in items or []:
        quantity = to_int(item.get("QuantityOrdered"))
        price = _money(item.get("ItemPrice"))
        line_discount = _money(item.get("PromotionDiscount"))
        goods += price
        discount += line_discount + _money(item.get("ShippingDiscount"))
        shipping += _money(item.get("ShippingPrice"))
        cancel = item.get("BuyerRequestedCancel") or {}
        cancelled_by_buyer = _flag(cancel.get("IsBuyerRequestedCancel"))
        if cancelled_by_buyer:
            buyer_cancel = True
            if to_str(cancel.get("BuyerCancelReason")):
                cancel_reasons.append(to_str(cancel.get("BuyerCancelReason")))
        gift = gift or _flag(item.get("IsGift"))
        lines.append(NormalizedLine(
            title=to_str(item.get("Title")), quantity=quantity,
            unit_price=(price / quantity).quantize(Decimal("0.01")) if quantity else price,
            platform_sku_id=to_str(item.get("SellerSKU")), discount_amount=line_discount,
            platform_line_id=to_str(item.get("OrderItemId")),
            refund_status=BUYER_CANCEL if cancelled_by_buyer else "",
        ))
    total = order.get("OrderTotal") or {}
    channel = to_str(order.get("FulfillmentChannel"))
    tags = [f"marketplace:{to_str(order.get('MarketplaceId'))}"] if to_str(order.get("MarketplaceId")) else []
    for key, tag in (("IsBusinessOrder", "business"), ("IsPrime", "prime"), ("IsPremiumOrder", "premium"),
                     ("IsReplacementOrder", "replacement"), ("IsIBA", "iba"), ("IsISPU", "store_pickup")):
        if _flag(order.get(key)):
            tags.append(tag)
    if channel == "AFN":
        tags.append("fulfilled_by_amazon")
    if gift:
        tags.append("gift")
    if buyer_cancel:
        tags.append("buyer_requested_cancel")
    transition = _transition(status, BUYER_CANCEL if buyer_cancel else "")
    buyer = order.get("BuyerInfo") or {}
    street = " ".join(to_str(address.get(k)) for k in ("AddressLine1", "AddressLine2", "AddressLine3")
                      if to_str(address.get(k)))
    return NormalizedOrder(
        platform_order_id=required_id(order.get("AmazonOrderId"), "AmazonOrderId"), lines=lines, platform_status=status,
        paid=status in PAID, currency=to_str(total.get("CurrencyCode")) or "USD",
        goods_amount=goods, discount_amount=discount, shipping_fee=shipping, paid_amount=_money(total),
        buyer_name=to_str(buyer.get("BuyerName")),
        receiver_name=to_str(address.get("Name")), receiver_phone=to_str(address.get("Phone")),
        country=to_str(address.get("CountryCode")), province=to_str(address.get("StateOrRegion")),
        city=to_str(address.get("City")), district=to_str(first(address.get("District"), address.get("County"))),
        address=street, postcode=to_str(address.get("PostalCode")),
        is_presale=status == "PendingAvailability" or to_str(order.get("OrderType")) == "Preorder",
        promised_ship_at=parse_time(order.get("LatestShipDate")),
        source_detail=to_str(order.get("SalesChannel")),
        buyer_note="; ".join(f"Buyer requested cancel: {r}" for r in cancel_reasons),
        tags=tags, placed_at=parse_time(order.get("PurchaseDate")), paid_at=None,
        platform_updated_at=parse_time(order.get("LastUpdateDate")),
        raw=raw if raw is not None else {"order": order, "items": items or [], "address": address or {}},
        platform_buyer_id=to_str(buyer.get("BuyerEmail")),
        refund_requested=buyer_cancel, cancelled=transition == T.CANCEL.value,
        shipped=status in ("Shipped", "InvoiceUnconfirmed"),
    )


def _transition(status: str, refund_status: str) -> str | None:
    mapped = STATUS.get(status)
    if refund_status == BUYER_CANCEL and mapped is T.PAY:  # paid, not left yet: the buyer wants out
        return T.REFUND_REQUESTED.value
    return mapped.value if mapped else None


class AmazonAdapter(AdapterBase):
    """``credentials.access_token`` is the LWA access token; ``extra["marketplace_ids"]``
    (comma-separated, default ATVPDKIKX0DER, amazon.com), ``extra["region"]`` (na/eu/fe) and
    ``credentials.shop_id`` (the seller id, for the stock push)."""

    code = "amazon"
    base_url = ENDPOINTS["na"]

    def __init__(self, credentials=None, **kwargs) -> None:
        super().__init__(credentials, **kwargs)
        region = self.credentials.extra.get("region", "na")
        self.base_url = self.credentials.extra.get("endpoint") or ENDPOINTS.get(region, ENDPOINTS["na"])
        self.marketplace_ids = self.credentials.extra.get("marketplace_ids", "ATVPDKIKX0DER")

    def _headers(self) -> dict[str, str]:
        return {"x-amz-access-token": self.credentials.access_token, "Accept": "application/json"}

    def initial_cursor(self, since: datetime) -> str:
        return str(TokenCursor(since))

    def _cursor(self, cursor: str) -> TokenCursor:
        return TokenCursor.parse(cursor) if cursor else TokenCursor(self.now() - timedelta(days=1))

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        c = self._cursor(cursor)
        params = {"MarketplaceIds": self.marketplace_ids}
        if c.token:
            params["NextToken"] = c.token
        else:
            latest = self.now() - OVERLAP  # Amazon refuses LastUpdatedAfter within the last 2 minutes
            params["LastUpdatedAfter"] = iso_utc(min(c.since, latest))
            params["MaxResultsPerPage"] = str(min(max(page_size, 1), MAX_PAGE))
        return PlatformRequest("GET", "/orders/v0/orders", params, None, self._headers(), "")

    def build_items_request(self, order_id: str, next_token: str = "") -> PlatformRequest:
        params = {"NextToken": next_token} if next_token else {}
        return PlatformRequest("GET", f"/orders/v0/orders/{quote(order_id, safe='')}/orderItems", params, None,
                               self._headers(), "")

    def build_address_request(self, order_id: str) -> PlatformRequest:
        return PlatformRequest("GET", f"/orders/v0/orders/{quote(order_id, safe='')}/address", {}, None,
                               self._headers(), "")

    def parse_list_response(self, body: dict, *, cursor: str = "", status: int = 200,
                            headers: Mapping[str, str] | None = None) -> OrderPage:
        """getOrders → OrderPage (raw payloads are the bare orders; fetch their items before
        normalizing). The next run starts at the ``LastUpdatedBefore`` / ``CreatedBefore``
        Amazon answered with, or the newest ``LastUpdateDate`` seen if later (minus 2 minutes)."""
        error = error_from_response(status, body, headers)
        if error:
            raise error
        payload = body.get("payload", body)
        orders = list(payload.get("Orders") or [])
        bound = parse_time(first(payload.get("LastUpdatedBefore"), payload.get("CreatedBefore")))
        # The bound Amazon answered up to (first page) is carried in the cursor to the last page.
        c = self._cursor(cursor).seen(bound, *(parse_time(o.get("LastUpdateDate")) for o in orders))
        token = to_str(payload.get("NextToken"))
        if token:
            return OrderPage(orders=orders, next_cursor=str(c.next_page(token)), has_more=True)
        return OrderPage(orders=orders, next_cursor=str(c.next_run(overlap=OVERLAP)), has_more=False)

    def parse_items_response(self, body: dict, *, status: int = 200,
                             headers: Mapping[str, str] | None = None) -> tuple[list[dict], str]:
        """getOrderItems → (items, NextToken or "")."""
        error = error_from_response(status, body, headers)
        if error:
            raise error
        payload = body.get("payload", body)
        return list(payload.get("OrderItems") or []), to_str(payload.get("NextToken"))

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        """``patchListingsItem``: replace ``fulfillment_availability`` of the seller SKU (MFN
        stock; FBA stock is Amazon's own)."""
        seller = self.credentials.shop_id
        if not seller:
            raise ValueError("Amazon stock push needs the seller id (credentials.shop_id)")
        body = {"productType": "PRODUCT", "patches": [{
            "op": "replace", "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": max(int(quantity), 0)}],
        }]}
        return PlatformRequest(
            "PATCH", f"/listings/2021-08-01/items/{quote(seller, safe='')}/{quote(sku_id, safe='')}",
            {"marketplaceIds": self.marketplace_ids}, body, {**self._headers(), "Content-Type": "application/json"},
            "json")

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        """``confirmShipment``: ``POST /orders/v0/orders/{orderId}/shipmentConfirmation`` with
        ``marketplaceId`` and ``packageDetail`` {packageReferenceId (positive number, unique per
        order: the parcel no.), carrierCode, carrierName (required when carrierCode is
        "Others"), trackingNumber, shipDate (ISO 8601), orderItems [{orderItemId, quantity}]};
        answered 204 without a body, errors ``{"errors": [{code, message}]}``. Every parcel is
        its own package. A carrier code written ``Others:<name>`` in `CARRIER_CODES` (or a shop's
        ``carrier_codes``) is sent as carrierCode "Others" with that carrierName.

        Source: amzn/selling-partner-api-models ``models/orders-api-model/ordersV0.json``
        (``ConfirmShipmentRequest``, ``PackageDetail``, ``ConfirmShipmentOrderItem``; the same
        model as ``../shared/fixtures/amazon/``), as generated into the public SP-API client
        libraries' ``PackageDetail`` models. Amazon's list of carrierCode values was not found:
        the codes other than "Others" are not verified."""
        items = [{"orderItemId": line.platform_line_id, "quantity": line.quantity}
                 for line in job.lines if line.platform_line_id]
        if not items:
            raise self.error("no_order_items", "the parcel has no Amazon OrderItemId to confirm")
        code = carrier_code(self.code, job.carrier, self.credentials.extra)
        package = {"packageReferenceId": str(job.package_no), "carrierCode": code,
                   "trackingNumber": job.tracking_number, "shipDate": iso_utc(job.shipped_at), "orderItems": items}
        if code.split(":", 1)[0].strip() in ("Others", "Other"):
            name = code.split(":", 1)[1].strip() if ":" in code else ""
            package.update(carrierCode="Others", carrierName=name or job.carrier)
        body = {"marketplaceId": self.marketplace_ids.split(",")[0].strip(), "packageDetail": package}
        return PlatformRequest("POST", f"/orders/v0/orders/{quote(job.platform_order_id, safe='')}/shipmentConfirmation",
                               {}, body, {**self._headers(), "Content-Type": "application/json"}, "json")

    def parse_tracking_push(self, job: TrackingJob, *, status: int, body, headers=None) -> TrackingAnswer:
        error = error_from_response(status, body, headers)
        if error:
            raise error
        return TrackingAnswer(done=True)

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        return _transition(to_str(platform_status), to_str(refund_status))

    def normalize(self, raw: dict) -> NormalizedOrder:
        order, items, address = unwrap(raw)
        return normalize_order(order, items, address, raw=raw)


__all__ = ["AmazonAdapter", "RATE_LIMITS", "error_from_response", "normalize_order", "rate_limit"]
