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
