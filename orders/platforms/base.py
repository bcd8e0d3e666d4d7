"""The value objects every platform adapter produces and the order service consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass
class NormalizedLine:
    title: str
    quantity: int
    unit_price: Decimal = Decimal("0")
    platform_sku_id: str = ""
    sku_code: str = ""  # when the payload names our SKU directly (own shop, distributor file)
    discount_amount: Decimal = Decimal("0")
    is_gift: bool = False
    platform_line_id: str = ""  # the platform's own id of the line (Taobao oid, Shopify line_item id …)
    refund_status: str = ""  # the platform's refund code for this line, verbatim ("" = none)


@dataclass
class NormalizedOrder:
    platform_order_id: str
    lines: list[NormalizedLine] = field(default_factory=list)
    platform_status: str = ""
    paid: bool = False
    currency: str = "CNY"
    goods_amount: Decimal = Decimal("0")
    discount_amount: Decimal = Decimal("0")
    shipping_fee: Decimal = Decimal("0")
    paid_amount: Decimal = Decimal("0")
    buyer_name: str = ""
    buyer_phone: str = ""
    receiver_name: str = ""
    receiver_phone: str = ""
    country: str = "CN"
    province: str = ""
    city: str = ""
    district: str = ""
    address: str = ""
    postcode: str = ""
    is_presale: bool = False
    promised_ship_at: datetime | None = None
    source_detail: str = ""
    coupon_codes: list[str] = field(default_factory=list)
    member_level: str = ""
    is_vip: bool = False
    buyer_note: str = ""
    seller_note: str = ""
    invoice_title: str = ""
    invoice_tax_number: str = ""
    tags: list[str] = field(default_factory=list)
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    platform_updated_at: datetime | None = None
    raw: dict = field(default_factory=dict)
    # Buyer identity that is stable when the phone is masked or encrypted (Taobao OAID,
    # PDD/Douyin open ids, Shopify customer id, Amazon buyer e-mail alias …).
    platform_buyer_id: str = ""
    oaid: str = ""
    # Receiver data as the platform sent it when encrypted/masked (kept verbatim; decrypted
    # only through the adapter, when an action needs it).
    encrypted: dict = field(default_factory=dict)
    refund_requested: bool = False  # the buyer asked for a refund or return on the platform
    cancelled: bool = False  # the platform says the order is cancelled/closed
    shipped: bool = False  # the platform says the order has left (shipped by someone)


@dataclass
class OrderPage:
    """One page of changed orders from a platform: raw payloads, and where to go on."""

    orders: list[dict]
    next_cursor: str = ""  # "" = no further page
    has_more: bool = False


class PlatformError(Exception):
    """A platform answered with an error envelope (its own code and message kept)."""

    def __init__(self, platform: str, code: str, message: str, *, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(f"{platform}: {code} {message}")
        self.platform, self.code, self.message = platform, code, message
        self.retryable, self.retry_after = retryable, retry_after
