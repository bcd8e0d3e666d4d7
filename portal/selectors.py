"""Portal read side: which orders a phone may see, and what of them.

- **Buyer**: orders whose customer (the merged customer, every channel) has this phone.
  They see everything customer-safe: items, amounts, their own note, the masked receiver.
- **Receiver only**: orders of someone else addressed to this phone (a gift). They see
  the parcel: status and tracking timeline, never prices, notes or the buyer's other orders.

Orders are addressed by a token: an HMAC of (phone, order id), so it names neither the id
nor the number, cannot be guessed, and only works in the session of that phone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from orders.masking import mask_name, mask_phone
from orders.models import Customer, EventKind, Order, OrderEvent, OrderLine, OrderStatus

BUYER = "buyer"
RECEIVER = "receiver"

S = OrderStatus
# What the customer reads for an order status: no internal states (挂起 is "处理中").
PUBLIC_STATUS = {
    S.PENDING_PAYMENT: lambda: _("待付款"),
    S.PAID: lambda: _("待发货"),
    S.ON_HOLD: lambda: _("处理中"),
    S.ALLOCATED: lambda: _("备货中"),
    S.PACKED: lambda: _("待揽收"),
    S.PARTIALLY_SHIPPED: lambda: _("部分发货"),
    S.SHIPPED: lambda: _("运输中"),
    S.DELIVERED: lambda: _("已签收"),
    S.COMPLETED: lambda: _("已完成"),
    S.CANCELLED: lambda: _("已取消"),
    S.RETURNED: lambda: _("已退货退款"),
}
NOT_YET_SHIPPED = {S.PAID, S.ON_HOLD, S.ALLOCATED, S.PACKED}
SHIP_KINDS = (EventKind.SHIPPED.value, EventKind.PARTIALLY_SHIPPED.value)
CARRIERS = {
    "SF": "顺丰速运", "YTO": "圆通速递", "ZTO": "中通快递", "STO": "申通快递", "YD": "韵达快递", "YUNDA": "韵达快递",
    "EMS": "EMS", "JD": "京东物流", "JTSD": "极兔速递", "JT": "极兔速递", "DBL": "德邦快递", "HTKY": "百世快递",
}


def public_status(status: str) -> str:
    label = PUBLIC_STATUS.get(status)
    return label() if label else ""


def local(dt: datetime | None) -> datetime | None:
    return timezone.localtime(dt, ZoneInfo(settings.PORTAL_TIME_ZONE)) if dt else None


def order_token(*, phone: str, order_id: int) -> str:
    digest = salted_hmac("portal.order-token", f"{phone}|{order_id}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def _customer_id(phone: str) -> int | None:
    return Customer.objects.filter(phone=phone).values_list("pk", flat=True).first()


def visible_orders(*, phone: str) -> QuerySet[Order]:
    """Every order this phone may see (as buyer or as receiver), newest first."""
    customer_id = _customer_id(phone)
    # The receiver phone is matched on its normalized, indexed copy (any spelling the
    # platform sent: 13800138000, +86 138-0013-8000, 0086…).
    condition = Q(receiver_phone_normalized=phone)
    if customer_id is not None:
        condition |= Q(customer_id=customer_id)
    return Order.objects.filter(condition).order_by("-placed_at", "-id")


def _visible_ids_sql(phone: str, *, wanted: int | None = None) -> tuple[str, list]:
    """SQL for the (id, placed_at) of the orders `phone` may see: a UNION of the buyer branch
    (the customer with this phone) and the receiver branch, each walking its own index
    (portal/migrations/0004) newest first and, for a page, stopping after `wanted` rows.

    One query, no customer lookup first. The single-query "receiver = P OR customer = C"
    makes PostgreSQL collect and sort every match or walk the whole placed_at index. The
    UNION also de-duplicates an order bought for oneself (it is in both branches).
    """
    order, customer = Order._meta.db_table, Customer._meta.db_table
    limit = " LIMIT %s" if wanted is not None else ""
    sql = (
        f'SELECT * FROM (SELECT o.id, o.placed_at FROM {order} o WHERE o.receiver_phone_normalized = %s'
        f' ORDER BY o.placed_at DESC, o.id DESC{limit}) receiver'
        f' UNION SELECT * FROM (SELECT o.id, o.placed_at FROM {order} o JOIN {customer} c ON c.id = o.customer_id'
        f' WHERE c.phone = %s ORDER BY o.placed_at DESC, o.id DESC{limit}) buyer'
    )
    params = [phone, wanted, phone, wanted] if wanted is not None else [phone, phone]
    return sql, params


def visible_order_ids(*, phone: str, offset: int = 0, limit: int | None = None) -> list[int]:
    """The ids of `visible_orders` (same rows, same order): one page, or all of them."""
    sql, params = _visible_ids_sql(phone, wanted=None if limit is None else offset + limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    ordered = sorted(((placed_at, order_id) for order_id, placed_at in rows), reverse=True)
    ids = [order_id for _, order_id in ordered]
    return ids[offset:] if limit is None else ids[offset:offset + limit]


def order_page(*, phone: str, offset: int, limit: int) -> list[Order]:
    """One page of visible orders with what the list shows (the latest public event, lines):
    the page's ids (a subquery), the orders, their latest events, their lines: 3 queries."""
    sql, params = _visible_ids_sql(phone, wanted=offset + limit)
    page_ids = RawSQL(f"SELECT id FROM ({sql}) visible ORDER BY placed_at DESC, id DESC LIMIT %s OFFSET %s",
                      [*params, limit, offset])
    qs = Order.objects.filter(pk__in=page_ids).order_by("-placed_at", "-id")
    return list(with_public_events(qs, latest_only=True))


def role_of(order: Order, phone: str) -> str:
    customer = order.customer
    return BUYER if customer is not None and customer.phone == phone else RECEIVER


# Only what the pages show. The events' `message` (staff text) is never even loaded, nor the
# order's raw platform payload.
ORDER_FIELDS = ("id", "number", "shop__platform", "customer__phone", "status", "currency", "goods_amount",
                "discount_amount", "shipping_fee", "paid_amount", "receiver_name", "receiver_phone", "province",
                "city", "district", "buyer_note", "placed_at", "promised_ship_at")
EVENT_FIELDS = ("id", "order_id", "kind", "is_public", "data", "occurred_at")
LINE_FIELDS = ("id", "order_id", "title", "quantity", "unit_price", "is_gift")


def with_public_events(qs: QuerySet[Order], *, latest_only: bool = False) -> QuerySet[Order]:
    """Orders with their public events (oldest first), or only the latest one (for the list:
    a sliced prefetch, one window query for the whole page)."""
    events = OrderEvent.objects.public().only(*EVENT_FIELDS)
    events = events.order_by("-occurred_at", "-id")[:1] if latest_only else events.order_by("occurred_at", "id")
    return qs.select_related("shop", "customer").only(*ORDER_FIELDS).prefetch_related(
        Prefetch("events", queryset=events, to_attr="public_events"),
        Prefetch("lines", queryset=OrderLine.objects.only(*LINE_FIELDS).order_by("id"), to_attr="line_list"),
    )


def order_id_for_token(*, phone: str, token: str) -> int:
    """The id of the order behind `token` if this phone may see it, else 404 (someone else's
    order, a token from another session, a made-up token: all the same)."""
    token = (token or "").strip()
    if not token or len(token) > 64:
        raise Http404
    for order_id in visible_order_ids(phone=phone):
        if constant_time_compare(order_token(phone=phone, order_id=order_id), token):
            return order_id
    raise Http404


def order_detail(order_id: int) -> Order:
    """One order with what its page shows (3 queries); the caller checked who may see it."""
    return with_public_events(Order.objects.filter(pk=order_id)).get()


def order_for_token(*, phone: str, token: str) -> Order:
    """The order behind `token` if this phone may see it, else 404."""
    return order_detail(order_id_for_token(phone=phone, token=token))


# --- what the pages show -------------------------------------------------------------------
@dataclass
class TimelineEntry:
    at: datetime
    text: str
    kind: str


@dataclass
class Parcel:
    carrier: str
    tracking_number: str


@dataclass
class OrderCard:
    token: str
    role: str
    number: str
    channel: str
    status: str
    placed_at: datetime
    latest: TimelineEntry | None
    items: list[tuple[str, int, object, bool]] = field(default_factory=list)  # (title, qty, unit price, is gift)
    currency: str = ""
    paid_amount: object = None
    goods_amount: object = None
    discount_amount: object = None
    shipping_fee: object = None
    buyer_note: str = ""
    receiver_name: str = ""
    receiver_phone: str = ""
    receiver_region: str = ""
    timeline: list[TimelineEntry] = field(default_factory=list)
    parcels: list[Parcel] = field(default_factory=list)
    expected: str = ""

    @property
    def is_buyer(self) -> bool:
        return self.role == BUYER


def timeline(order: Order) -> list[TimelineEntry]:
    """Public events only, newest first, as the customer reads them (`public_text`)."""
    events = getattr(order, "public_events", None)
    if events is None:
        events = list(OrderEvent.objects.public().filter(order=order).order_by("occurred_at", "id"))
    entries = [TimelineEntry(at=local(e.occurred_at), text=e.public_text, kind=e.kind) for e in events if e.public_text]
    return entries[::-1]


def parcels(order: Order) -> list[Parcel]:
    """Carrier and tracking number of each public ship event (shipments land with logistics)."""
    seen, result = set(), []
    for event in getattr(order, "public_events", []):
        number = event.data.get("tracking_number") if event.kind in SHIP_KINDS else None
        if isinstance(number, str) and number.strip() and number not in seen:
            seen.add(number)
            code = str(event.data.get("carrier") or "")
            result.append(Parcel(carrier=CARRIERS.get(code.upper(), code), tracking_number=number))
    return result


def _day_words(day: date, today: date) -> str:
    if day == today:
        return _("今日")
    if day == today + timedelta(days=1):
        return _("明日")
    if day == today + timedelta(days=2):
        return _("后天")
    return _("%(month)d月%(day)d日") % {"month": day.month, "day": day.day}


def expected_text(order: Order) -> str:
    """The expected ship date where known, in customer-safe words (no warehouse names).

    Lead-time stock (a warehouse with lead_time_days > 0 chosen at allocation) reads
    "商品有货,需调拨备货,预计…发出"; otherwise the promised ship time reads "预计…前发货".
    """
    if order.status not in NOT_YET_SHIPPED:
        return ""
    today = local(timezone.now()).date()
    if order.status == S.ALLOCATED:
        from inventory.models import Warehouse

        allocated = [e for e in getattr(order, "public_events", []) if e.kind == EventKind.ALLOCATED]
        codes = allocated[-1].data.get("warehouses") if allocated else None
        if isinstance(codes, list) and codes:
            lead = max(Warehouse.objects.filter(code__in=codes).values_list("lead_time_days", flat=True), default=0)
            if lead:
                ready = local(allocated[-1].occurred_at).date() + timedelta(days=lead)
                return _("商品有货,需调拨备货,预计%(day)s发出") % {"day": _day_words(max(ready, today), today)}
    promised = local(order.promised_ship_at)
    if promised and order.status != S.ON_HOLD:
        return _("商品有货,预计%(day)s前发货") % {"day": _day_words(max(promised.date(), today), today)}
    return ""


def card(order: Order, *, phone: str, detail: bool = False) -> OrderCard:
    role = role_of(order, phone)
    entries = timeline(order)
    result = OrderCard(
        token=order_token(phone=phone, order_id=order.pk), role=role, number=order.number,
        channel=str(order.shop.get_platform_display()), status=public_status(order.status),
        placed_at=local(order.placed_at), latest=entries[0] if entries else None,
    )
    if detail:
        result.timeline = entries
        result.parcels = parcels(order)
        result.expected = expected_text(order)
    if role == BUYER:
        result.items = [(line.title, line.quantity, line.unit_price, line.is_gift) for line in order.line_list]
        result.currency = order.currency
        result.paid_amount = order.paid_amount
        if detail:
            result.goods_amount, result.discount_amount = order.goods_amount, order.discount_amount
            result.shipping_fee = order.shipping_fee
            result.buyer_note = order.buyer_note
            result.receiver_name = mask_name(order.receiver_name)
            result.receiver_phone = mask_phone(order.receiver_phone)
            result.receiver_region = "".join(p for p in (order.province, order.city, order.district) if p)
    return result
