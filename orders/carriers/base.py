"""The one interface every tracking provider implements, and the value objects it returns.

Adapters are pure: they build requests, verify signatures and turn a provider's query
response or push body into `TrackingUpdate`s. Storing scans and moving shipments and
orders is `orders.shipping`'s job; the HTTP call is `orders.tracking_tasks`'.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from functools import cached_property
from typing import Protocol
from zoneinfo import ZoneInfo

from orders.models import TrackingState as T

CHINA = ZoneInfo("Asia/Shanghai")  # both Chinese providers write local time without an offset

# How much a state says about a parcel's progress: a later scan never moves it back.
RANK = {T.PICKED_UP: 1, T.IN_TRANSIT: 2, T.OUT_FOR_DELIVERY: 3, T.EXCEPTION: 4, T.DELIVERED: 5, T.RETURNED: 5}


class CarrierError(Exception):
    """A provider answered with an error, or a body we cannot read."""


class BadSignature(CarrierError):
    """A push whose signature does not match: answered 401, never stored."""


@dataclass(frozen=True)
class Scan:
    """One carrier scan: its own time (UTC), the carrier's text, a normalized state."""

    occurred_at: datetime
    description: str
    state: str
    location: str = ""
    carrier_state: str = ""
    raw: dict = field(default_factory=dict, compare=False)

    @cached_property  # frozen: computed once per scan (a batch asks for it several times)
    def key(self) -> str:
        """Dedupe key: the same scan pushed twice, or queried again, has the same key."""
        text = f"{self.occurred_at.isoformat()}|{' '.join(self.description.split())}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class TrackingUpdate:
    """What a provider says about one parcel: its current state and its scans (any order)."""

    carrier: str  # our carrier code (SF, YTO…); "" when the provider's code is unknown to us
    tracking_number: str
    state: str | None  # the parcel's state as the provider sums it up; None = no news
    scans: tuple[Scan, ...] = ()
    provider_carrier: str = ""  # the provider's own code (ShipperCode / com)
    raw: dict = field(default_factory=dict, compare=False)
    note: str = ""  # the provider's own words about the parcel (e.g. why it stopped tracking it)


@dataclass(frozen=True)
class HttpRequest:
    """A request to send (form-encoded POST), built by an adapter, sent by the poller."""

    url: str
    data: dict[str, str]


class Adapter(Protocol):
    name: str

    def query_request(self, *, account, carrier: str, tracking_number: str, phone: str = "") -> HttpRequest: ...

    def parse_query(self, body: bytes | str) -> list[TrackingUpdate]: ...

    def verify_push(self, form: dict[str, str], *, accounts) -> object: ...

    def parse_push(self, form: dict[str, str]) -> list[TrackingUpdate]: ...

    def push_ack(self, form: dict[str, str], *, ok: bool, reason: str = "") -> dict: ...


# --- shared helpers ---------------------------------------------------------------------------
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_local_time(text: str, zone: ZoneInfo = CHINA) -> datetime:
    """'2014/06/25 08:05:37' (China time, no offset) → an aware UTC datetime."""
    text = (text or "").strip()
    for fmt in _TIME_FORMATS:
        try:
            naive = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=zone).astimezone(dt_timezone.utc)
    raise CarrierError(f"无法识别的轨迹时间: {text!r}")


# Keywords for a scan that carries no state code of its own (KDNiao's plain query and push
# give one State for the parcel, none per trace). Checked in this order: "拒签" contains
# "签", "派件已签收" contains "派件".
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (T.EXCEPTION, ("拒签", "拒收", "问题件", "异常", "滞留", "破损", "丢失", "无法派送", "延误")),
    (T.RETURNED, ("退回", "退件", "退签", "已退还")),
    (T.DELIVERED, ("签收", "妥投", "已取件", "已取出")),
    (T.OUT_FOR_DELIVERY, ("派件", "派送", "投递", "待取件", "代收", "快递柜", "驿站")),
    (T.PICKED_UP, ("揽收", "揽件", "已收件", "收寄", "已收取")),
)


def state_from_text(text: str) -> str:
    for state, words in _KEYWORDS:
        if any(w in text for w in words):
            return state
    return T.IN_TRANSIT


def newest_state(scans: list[Scan] | tuple[Scan, ...]) -> str | None:
    if not scans:
        return None
    return max(scans, key=lambda s: s.occurred_at).state


_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_phones(text: str) -> str:
    """Courier and station phone numbers in carrier text: '13800000000' → '138****0000'."""
    return _MOBILE.sub(r"\1****\2", text or "")


# --- e-waybills (电子面单, issue 15): an optional part of an adapter ---------------------------
class WaybillRefused(CarrierError):
    """The carrier's e-waybill API said no (its reason is the message)."""


@dataclass(frozen=True)
class Party:
    """A sender or receiver as an e-waybill request needs it (clear text, in memory only)."""

    name: str
    phone: str
    province: str
    city: str
    district: str
    address: str
    postcode: str = ""


@dataclass(frozen=True)
class WaybillItem:
    name: str
    quantity: int


@dataclass(frozen=True)
class WaybillOrder:
    """One parcel to request an e-waybill for. ``order_code`` is our parcel code (the carrier's
    OrderCode: asking again with it returns the same number instead of a second one)."""

    order_code: str
    carrier: str  # our carrier code (YTO, SF…)
    sender: Party
    receiver: Party
    items: tuple[WaybillItem, ...]
    weight_kg: float = 0.0
    quantity: int = 1
    remark: str = ""


@dataclass(frozen=True)
class WaybillResult:
    """The carrier's answer: the tracking number, and the sort/route codes the label prints."""

    tracking_number: str
    carrier: str
    sort_code: str = ""  # 大头笔 (MarkDestination)
    package_center: str = ""  # 集包地 (PackageName)
    sorting_code: str = ""  # 分拣码 (SortingCode)
    raw: dict = field(default_factory=dict, compare=False)


class WaybillAdapter(Protocol):
    """KDNiao (``eorder_request`` / ``parse_eorder``) and the sandbox (``issue_waybill``, local)."""

    def eorder_request(self, *, account, order: WaybillOrder) -> HttpRequest: ...

    def parse_eorder(self, body: bytes | str) -> WaybillResult: ...
