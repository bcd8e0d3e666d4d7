"""Shopify (REST Admin API, orders).

Follows ``../shared/fixtures/shopify/order.single.json`` (``GET /admin/orders/{id}.json``, money
as strings), ``shopify/orders.list.json`` (``GET /admin/orders.json``, the newer ``*_set``
money objects with ``shop_money`` / ``presentment_money``), ``shopify/refund.single.json`` (a
refund of two line items) and ``shopify/hmac_vector.json`` (webhook signature, the published
vector of Shopify/shopify-app-js). From Shopify's public documentation, not the fixtures:
cursor pagination through the ``Link`` response header (``<…page_info=…>; rel="next"``; on a
``page_info`` request only ``limit`` and ``fields`` may be sent), the ``X-Shopify-Access-Token``
header, the webhook topics ``orders/create``, ``orders/updated``, ``orders/cancelled`` (their
body is the order object itself), the ``X-Shopify-Webhook-Id`` delivery id, the values of
``financial_status`` (pending, authorized, partially_paid, paid, partially_refunded, refunded,
voided) and ``fulfillment_status`` (null, partial, fulfilled, restocked) beyond those in the
fixtures, and ``inventory_levels/set.json`` for the stock push.

Normalized amounts are the shop's money (``shop_money``; the plain string fields are shop
money too); the buyer's presentment currency is kept as a tag when it differs.
``platform_status`` is ``"<financial_status>/<fulfillment_status>"`` (``unfulfilled`` for
null) with ``/cancelled`` appended when ``cancelled_at`` is set. ``authorized`` counts as paid:
the payment is secured and Shopify captures it on fulfilment. The line's platform SKU id is
the variant id (what the inventory and mapping key on); the merchant's ``sku`` is the SKU code.
Shopify has no refund *request*: a refund already made (``partially_refunded`` / ``refunded``
or ``refunds[]`` in the order) sets ``refund_requested`` and the refunded lines'
``refund_status``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from orders.platforms._intl_parsing import TokenCursor, header, iso_utc
from orders.platforms.base import NormalizedLine, NormalizedOrder, OrderPage
from orders.platforms.interface import AdapterBase, Credentials, PlatformRequest, PlatformTransition as T, utc_now
from orders.platforms.parsing import first, parse_time, required_id, to_bool, to_int, to_money, to_str
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

API_VERSION = "2024-07"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
ORDER_TOPICS = ("orders/create", "orders/updated", "orders/cancelled")
PAID = {"authorized", "paid", "partially_refunded", "refunded"}
REFUNDED = {"partially_refunded", "refunded"}
MAX_PAGE = 250
# How far the next run reaches back before the newest update seen (orders updated while a run
# was paging are read again, never skipped).
OVERLAP = timedelta(minutes=2)

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


# --- webhooks --------------------------------------------------------------------------------

def webhook_signature(raw_body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(secret, raw body bytes)) — the value Shopify sends in
    ``X-Shopify-Hmac-Sha256``."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_webhook(raw_body: bytes, signature: str | None, secret: str) -> bool:
    """True when ``signature`` (the header value) is the HMAC of exactly these body bytes.

    Over the raw bytes, never re-serialised JSON (the same JSON with other spacing has another
    digest); compared in constant time. A missing header or an empty secret is never valid.
    """
    if not signature or not secret or not isinstance(raw_body, (bytes, bytearray)):
        return False
    expected = webhook_signature(bytes(raw_body), secret)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("ascii", "replace"))


@dataclass(frozen=True)
class WebhookEvent:
    topic: str
    event_id: str  # X-Shopify-Webhook-Id (the same on a redelivery)
    shop_domain: str
    payload: dict


def parse_webhook(raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    """The order webhook's topic, delivery id and order payload. Raises ValueError for a topic
    this adapter does not take or a body that is not a JSON object (verify the signature first)."""
    topic = header(headers, TOPIC_HEADER).strip()
    if topic not in ORDER_TOPICS:
        raise ValueError(f"unsupported Shopify topic: {topic or '(none)'}")
    try:
        payload = json.loads(bytes(raw_body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or "id" not in payload:
        raise ValueError("body is not a Shopify order")
    return WebhookEvent(topic, header(headers, WEBHOOK_ID_HEADER).strip(),
                        header(headers, "X-Shopify-Shop-Domain").strip(), payload)


# --- refunds ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShopifyRefund:
    refund_id: str
    order_id: str
    amount: Decimal  # the successful refund transactions, shop money
    currency: str
    lines: dict[str, int] = field(default_factory=dict)  # line_item_id → quantity refunded
    restock: bool = False
    note: str = ""
    created_at: datetime | None = None


def parse_refund(raw: dict) -> ShopifyRefund:
    """A refund object (``{"refund": …}`` or the bare object)."""
    r = raw.get("refund", raw)
    lines: dict[str, int] = {}
    for item in r.get("refund_line_items") or []:
        line_id = to_str(first(item.get("line_item_id"), (item.get("line_item") or {}).get("id")))
        lines[line_id] = lines.get(line_id, 0) + to_int(item.get("quantity"))
    amount, currency = Decimal("0.00"), ""
    for tx in r.get("transactions") or []:
        if to_str(tx.get("kind")) == "refund" and to_str(tx.get("status")) == "success":
            amount += to_money(tx.get("amount"))
            currency = currency or to_str(tx.get("currency"))
    return ShopifyRefund(
        refund_id=to_str(r.get("id")), order_id=to_str(r.get("order_id")), amount=amount, currency=currency,
        lines=lines, restock=to_bool(r.get("restock")),
        note=to_str(r.get("note")), created_at=parse_time(r.get("created_at")),
    )


# --- pagination --------------------------------------------------------------------------------

def next_page_info(link_header: str) -> str:
    """The ``page_info`` of the ``rel="next"`` link in a ``Link`` header ("" on the last page)."""
    for match in _NEXT_LINK.finditer(link_header or ""):
        values = parse_qs(urlsplit(match.group(1)).query).get("page_info")
        if values:
            return values[0]
    return ""


def _money(o: dict, name: str) -> Decimal | None:
    """``<name>_set.shop_money.amount`` or the plain ``<name>`` string; None when neither."""
    shop = ((o.get(f"{name}_set") or {}).get("shop_money") or {})
    value = first(shop.get("amount"), o.get(name))
    return None if value is None else to_money(value)


def _currency(o: dict) -> str:
    shop = ((o.get("total_price_set") or {}).get("shop_money") or {})
    return to_str(first(shop.get("currency_code"), o.get("currency"))) or "USD"


def unwrap_order(raw: dict) -> dict:
    """The order object from ``{"order": …}`` (single-order response) or the bare object."""
    inner = raw.get("order")
    return inner if isinstance(inner, dict) else raw


class ShopifyAdapter(AdapterBase):
    """One shop: ``credentials.shop_id`` is its ``*.myshopify.com`` domain (or handle),
    ``access_token`` the Admin API token; ``extra["api_version"]`` and ``extra["location_id"]``
    (the location whose stock we set) are optional."""

    code = "shopify"
    base_url = "https://{shop}.myshopify.com"  # replaced per shop in __init__

    def __init__(self, credentials: Credentials | None = None, *,
                 now: Callable[[], datetime] = utc_now) -> None:
        super().__init__(credentials, now=now)
        shop = self.credentials.shop_id.strip().removeprefix("https://").rstrip("/")
        if shop and "." not in shop:
            shop = f"{shop}.myshopify.com"
        self.base_url = f"https://{shop}" if shop else type(self).base_url
        self.api_version = self.credentials.extra.get("api_version", API_VERSION)

    # requests

    def _headers(self, *, json_body: bool = False) -> dict[str, str]:
        headers = {"X-Shopify-Access-Token": self.credentials.access_token, "Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def initial_cursor(self, since: datetime) -> str:
        return str(TokenCursor(since))

    def _cursor(self, cursor: str) -> TokenCursor:
        return TokenCursor.parse(cursor) if cursor else TokenCursor(self.now() - timedelta(days=1))

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        c = self._cursor(cursor)
        limit = str(min(max(page_size, 1), MAX_PAGE))
        if c.token:  # Shopify refuses any filter beside limit/fields on a page_info request
            params = {"limit": limit, "page_info": c.token}
        else:
            params = {"status": "any", "updated_at_min": iso_utc(c.since), "limit": limit}
        return PlatformRequest("GET", f"/admin/api/{self.api_version}/orders.json", params, None, self._headers(), "")

    def parse_list_response(self, body: dict, *, cursor: str = "", headers: Mapping[str, str] | None = None,
                            status: int = 200) -> OrderPage:
        """``{"orders": […]}`` plus the ``Link`` header (pass the response headers; without them
        the page counts as the last one). Errors: ``{"errors": …}`` or a 4xx/5xx status."""
        errors = body.get("errors") if isinstance(body, dict) else None
        if status >= 400 or errors:
            try:
                retry_after = float(header(headers, "Retry-After"))
            except ValueError:  # absent or not in seconds; Shopify's REST bucket leaks 2 calls/s
                retry_after = 1.0 if status == 429 else None
            raise self.error(status if status >= 400 else "errors", _error_text(errors),
                             retryable=status == 429 or status >= 500, retry_after=retry_after)
        orders = list(body.get("orders") or [])
        c = self._cursor(cursor).seen(*(parse_time(o.get("updated_at")) for o in orders))
        token = next_page_info(header(headers, "Link"))
        if token:
            return OrderPage(orders=orders, next_cursor=str(c.next_page(token)), has_more=True)
        return OrderPage(orders=orders, next_cursor=str(c.next_run(overlap=OVERLAP)), has_more=False)

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        """``inventory_levels/set.json``: Shopify sets stock on the variant's *inventory item*
        at a location, so ``item_id`` must be the inventory_item_id (``sku_id``, the variant id,
        is not enough) and the shop needs ``extra["location_id"]``."""
        location = self.credentials.extra.get("location_id", "")
        if not item_id or not location:
            raise ValueError("Shopify stock push needs the inventory_item_id (item_id) and a location_id")
        body = {"location_id": int(location), "inventory_item_id": int(item_id), "available": max(int(quantity), 0)}
        return PlatformRequest("POST", f"/admin/api/{self.api_version}/inventory_levels/set.json", {}, body,
                               self._headers(json_body=True), "json")

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        """Two steps: ``GET orders/<id>/fulfillment_orders.json``, then ``POST fulfillments.json``
        with ``{"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id",
        "fulfillment_order_line_items": [{"id", "quantity"}]}], "tracking_info": {"number",
        "company"}, "notify_customer"}}`` — the open fulfillment orders' lines of this parcel, all
        at one location (``extra["location_id"]`` when set, else the first location holding the
        parcel's lines). Every parcel is its own fulfillment ("Each fulfillment supports a single
        tracking number … create separate fulfillments"). Answer ``{"fulfillment": {"id", …}}``;
        errors ``{"errors": …}`` with 4xx, 429 with Retry-After.

        Source: Shopify REST Admin "Fulfillment" and "FulfillmentOrder" resources,
        https://shopify.dev/api/admin-rest/2025-01/resources/fulfillment ("Creates a fulfillment for
        one or many fulfillment orders … assigned to the same location"); the GraphQL
        ``FulfillmentTrackingInfo`` page lists the tracking company names
        (https://shopify.dev/docs/api/admin-graphql/2025-10/objects/FulfillmentTrackingInfo)."""
        company = carrier_code(self.code, job.carrier, self.credentials.extra)
        items = job.state.get("line_items_by_fulfillment_order")
        if not items:
            return PlatformRequest("GET", f"/admin/api/{self.api_version}/orders/{job.platform_order_id}"
                                   "/fulfillment_orders.json", {}, None, self._headers(), "")
        body = {"fulfillment": {"line_items_by_fulfillment_order": items,
                                "tracking_info": {"number": job.tracking_number, "company": company},
                                "notify_customer": to_bool(self.credentials.extra.get("notify_customer"), False)}}
        return PlatformRequest("POST", f"/admin/api/{self.api_version}/fulfillments.json", {}, body,
                               self._headers(json_body=True), "json")

    def parse_tracking_push(self, job: TrackingJob, *, status: int, body, headers=None) -> TrackingAnswer:
        errors = body.get("errors") if isinstance(body, dict) else None
        if status >= 400 or errors:
            try:
                retry_after = float(header(headers, "Retry-After"))
            except (TypeError, ValueError):
                retry_after = None
            raise self.error(status if status >= 400 else "errors", _error_text(errors),
                             retryable=status == 429 or status >= 500, retry_after=retry_after)
        body = body or {}
        if "fulfillment" in body:
            return TrackingAnswer(done=True, reference=to_str((body.get("fulfillment") or {}).get("id")))
        location = to_str(self.credentials.extra.get("location_id"))
        wanted = {line.platform_line_id: line.quantity for line in job.lines if line.platform_line_id}
        known = bool(wanted)  # without line ids (an order made here), the parcel fulfils what is open
        picked: list[tuple[str, dict]] = []
        for fo in body.get("fulfillment_orders") or []:
            if to_str(fo.get("status")) not in ("open", "in_progress"):
                continue
            if location and to_str(fo.get("assigned_location_id")) not in ("", location):
                continue
            lines = []
            for li in fo.get("line_items") or []:
                left = to_int(li.get("fulfillable_quantity"), 0)
                key = to_str(li.get("line_item_id"))
                quantity = min(left, wanted.pop(key)) if key in wanted else (0 if known else left)
                if quantity > 0:
                    lines.append({"id": to_int(li.get("id")), "quantity": quantity})
            if lines:
                at = to_str(fo.get("assigned_location_id"))
                if picked and at != picked[0][0]:
                    continue  # one fulfillment, one location: the rest is another location's parcel
                picked.append((at, {"fulfillment_order_id": to_int(fo.get("id")),
                                    "fulfillment_order_line_items": lines}))
        groups = [g for _, g in picked]
        if not groups:
            raise self.error("nothing_to_fulfil", "no open fulfillment order holds this parcel's lines")
        return TrackingAnswer(done=False, state={"line_items_by_fulfillment_order": groups})

    # statuses

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        parts = to_str(platform_status).split("/")
        financial = parts[0]
        fulfillment = parts[1] if len(parts) > 1 else "unfulfilled"
        cancelled = "cancelled" in parts[2:]
        if cancelled or financial == "voided":
            return T.CANCEL.value
        if financial == "refunded" and fulfillment in ("unfulfilled", "restocked"):
            return T.CANCEL.value  # all money back before anything left: nothing to ship
        if financial == "refunded":
            return T.REFUNDED.value  # all money back after it left (a return)
        if fulfillment == "fulfilled":
            return T.SHIP.value
        if fulfillment == "partial":
            return T.PARTIALLY_SHIP.value
        if financial in REFUNDED or refund_status in ("refunded", "partially_refunded"):
            return T.REFUNDED.value
        if financial in PAID:
            return T.PAY.value
        return None  # pending, partially_paid: not yet payable

    # normalization

    def normalize(self, raw: dict) -> NormalizedOrder:
        o = unwrap_order(raw)
        financial = to_str(o.get("financial_status")) or "pending"
        fulfillment = to_str(o.get("fulfillment_status")) or "unfulfilled"
        cancelled = bool(to_str(o.get("cancelled_at")))
        status = f"{financial}/{fulfillment}" + ("/cancelled" if cancelled else "")

        refunded: dict[str, int] = {}
        for refund in o.get("refunds") or []:
            for line_id, qty in parse_refund(refund).lines.items():
                refunded[line_id] = refunded.get(line_id, 0) + qty

        lines = []
        for item in o.get("line_items") or []:
            line_id = to_str(item.get("id"))
            quantity = to_int(item.get("quantity"), 1)
            discount = _money(item, "total_discount") or Decimal("0.00")
            allocations = sum((to_money(first(((a.get("amount_set") or {}).get("shop_money") or {}).get("amount"),
                                              a.get("amount")))
                               for a in item.get("discount_allocations") or []), Decimal("0.00"))
            title = to_str(item.get("name")) or " - ".join(
                x for x in (to_str(item.get("title")), to_str(item.get("variant_title"))) if x)
            refund_status = ""
            if line_id in refunded:
                refund_status = "refunded" if refunded[line_id] >= quantity else "partially_refunded"
            lines.append(NormalizedLine(
                title=title, quantity=quantity, unit_price=_money(item, "price") or Decimal("0.00"),
                platform_sku_id=to_str(first(item.get("variant_id"), item.get("product_id"))),
                sku_code=to_str(item.get("sku")), discount_amount=max(discount, allocations),
                platform_line_id=line_id, refund_status=refund_status,
            ))

        shipping = _money(o, "total_shipping_price")
        if shipping is None:
            shipping = sum((_money(s, "price") or Decimal("0.00") for s in o.get("shipping_lines") or []),
                           Decimal("0.00"))
        address = o.get("shipping_address") or {}
        customer = o.get("customer") or {}
        buyer_name = " ".join(x for x in (to_str(customer.get("first_name")), to_str(customer.get("last_name"))) if x)
        notes = [to_str(o.get("note"))] + [f"{to_str(a.get('name'))}: {to_str(a.get('value'))}"
                                           for a in o.get("note_attributes") or []]
        tags = [t.strip() for t in to_str(o.get("tags")).split(",") if t.strip()]
        presentment = to_str(o.get("presentment_currency"))
        currency = _currency(o)
        if presentment and presentment != currency:
            tags.append(f"presentment_currency:{presentment}")
        if o.get("test") is True or to_str(o.get("test")) == "true":
            tags.append("test")
        paid = financial in PAID
        transition = self.status_transition(status)
        placed_at = parse_time(o.get("created_at"))
        return NormalizedOrder(
            platform_order_id=required_id(o.get("id"), "id"), lines=lines, platform_status=status, paid=paid,
            currency=currency,
            goods_amount=first(_money(o, "total_line_items_price"), _money(o, "subtotal_price")) or Decimal("0.00"),
            discount_amount=_money(o, "total_discounts") or Decimal("0.00"), shipping_fee=shipping,
            paid_amount=_money(o, "total_price") or Decimal("0.00"),
            buyer_name=buyer_name, buyer_phone=to_str(first(customer.get("phone"), o.get("phone"))),
            receiver_name=to_str(first(address.get("name"), " ".join(
                x for x in (to_str(address.get("first_name")), to_str(address.get("last_name"))) if x))),
            receiver_phone=to_str(address.get("phone")),
            country=to_str(address.get("country_code")) or ("" if not address else to_str(address.get("country"))),
            province=to_str(address.get("province")), city=to_str(address.get("city")), district="",
            address=" ".join(x for x in (to_str(address.get("address1")), to_str(address.get("address2"))) if x),
            postcode=to_str(address.get("zip")),
            source_detail=to_str(o.get("source_name")),
            coupon_codes=[to_str(d.get("code")) for d in o.get("discount_codes") or [] if to_str(d.get("code"))],
            buyer_note="\n".join(n for n in notes if n.strip(": ")),
            tags=tags, placed_at=placed_at,
            paid_at=(parse_time(o.get("processed_at")) or placed_at) if paid else None,
            platform_updated_at=parse_time(o.get("updated_at")), raw=raw,
            platform_buyer_id=to_str(customer.get("id")),
            refund_requested=financial in REFUNDED or bool(refunded),
            cancelled=transition == T.CANCEL.value, shipped=fulfillment == "fulfilled",
        )


def _error_text(errors: Any) -> str:
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items())
    if isinstance(errors, list):
        return "; ".join(map(str, errors))
    return to_str(errors)


__all__ = ["ShopifyAdapter", "ShopifyRefund", "WebhookEvent", "next_page_info", "parse_refund", "parse_webhook",
           "verify_webhook", "webhook_signature"]
