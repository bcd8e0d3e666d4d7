"""The one small interface every platform adapter implements.

An adapter is pure: it never touches the database or the network. It turns a cursor into a
request (plain data: method, path, query params, body, headers — already signed per the
platform), turns the platform's list answer into an `OrderPage` (or raises `PlatformError`
from the platform's error envelope), turns one raw order payload into a `NormalizedOrder`, maps
the platform's status codes onto our transitions, and builds the request that pushes available
stock for one SKU. An HTTP client (httpx) sends the requests later: it joins
``adapter.base_url + request.path`` and sends ``params`` as the query string, ``body`` as the
form (``body_format == "form"``) or JSON (``"json"``) body, and ``headers``.

Cursors are opaque strings, each adapter defines its own; ``initial_cursor(since)`` makes the
first one. Most Chinese platforms page through a modification-time window, so their cursors
are `WindowCursor`s (``start|end|page``, ISO UTC): a sync stores ``page.next_cursor`` after the
page is committed; ``page.has_more`` says whether to fetch another page now. When the last
page of a window is read, ``has_more`` is False and ``next_cursor`` is where the next run starts
(the next window); ``""`` only when the adapter has nothing to resume from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ClassVar, NamedTuple, Protocol, runtime_checkable

from orders.platforms.base import NormalizedOrder, OrderPage, PlatformError

__all__ = [
    "Credentials", "PlatformAdapter", "PlatformRequest", "PlatformTransition", "WindowCursor",
    "PlatformError", "utc_now",
]


class PlatformTransition(str, enum.Enum):
    """What a platform status means for our order (names match `orders.transitions.ACTIONS`
    where one exists). ``None`` from ``status_transition`` means "nothing to do" (unpaid,
    unknown or a filter-only code)."""

    PAY = "pay"  # paid, waiting for shipment
    PARTIALLY_SHIP = "partially_ship"  # the platform says some lines have left
    SHIP = "ship"  # everything has left (shipped by someone)
    DELIVER = "deliver"  # signed for
    COMPLETE = "complete"  # the trade is finished on the platform
    CANCEL = "cancel"  # cancelled / closed (before or after payment, e.g. closed after a full refund)
    REFUND_REQUESTED = "refund_requested"  # an after-sale/refund is open on the platform
    REFUNDED = "refunded"  # the platform refunded (the order itself may stay open)


class PlatformRequest(NamedTuple):
    """One HTTP request as plain data. ``path`` is relative to the adapter's ``base_url``."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    body_format: str = ""  # "" (no body) | "form" | "json"


@dataclass(frozen=True)
class Credentials:
    """What a shop gives us to call its platform (stored encrypted on the shop, not here)."""

    app_key: str = ""
    app_secret: str = ""
    access_token: str = ""  # TOP "session", PDD/JD/Douyin access_token
    shop_id: str = ""  # platform shop / seller id where a call needs it
    extra: dict[str, str] = field(default_factory=dict)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WindowCursor:
    """A modification-time window and a page number, as an opaque string ``start|end|page``."""

    start: datetime
    end: datetime
    page: int = 1

    def __str__(self) -> str:
        return f"{_iso(self.start)}|{_iso(self.end)}|{self.page}"

    @classmethod
    def parse(cls, cursor: str) -> "WindowCursor":
        from orders.platforms.parsing import parse_time

        try:
            start, end, page = cursor.split("|")
            return cls(parse_time(start), parse_time(end), int(page))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a window cursor: {cursor!r}") from exc

    @classmethod
    def first(cls, since: datetime, *, window: timedelta, now: datetime, first_page: int = 1,
              overlap: timedelta = timedelta(0)) -> "WindowCursor":
        start = since - overlap
        return cls(start, min(now, start + window), first_page)

    def next_page(self) -> "WindowCursor":
        return WindowCursor(self.start, self.end, self.page + 1)

    def next_window(self, *, window: timedelta, now: datetime, first_page: int = 1) -> "WindowCursor":
        start = self.end
        return WindowCursor(start, max(start, min(now, start + window)), first_page)


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@runtime_checkable
class PlatformAdapter(Protocol):
    """The interface. Adapters take ``Credentials`` and an optional clock (``now``) so signed
    requests are reproducible in tests."""

    code: ClassVar[str]  # the platform key (orders.models.Platform value)
    base_url: ClassVar[str]  # production gateway; the HTTP client joins request paths onto it

    def __init__(self, credentials: Credentials | None = None, *,
                 now: Callable[[], datetime] = utc_now) -> None: ...

    def normalize(self, raw: dict) -> NormalizedOrder:
        """One raw order payload (the shape the list/detail/push gives) → NormalizedOrder.
        Same order for numbers as strings or numbers, unknown keys, key order, time offsets."""

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        """The platform's status (and refund status) → a `PlatformTransition` value or None."""

    def initial_cursor(self, since: datetime) -> str:
        """The first cursor of a sync that starts at ``since`` (aware datetime)."""

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        """The signed request for the page ``cursor`` names."""

    def parse_list_response(self, body: dict, *, cursor: str = "") -> OrderPage:
        """The platform's list answer → OrderPage; raises PlatformError from its error
        envelope (``retryable``/``retry_after`` set where the platform signals rate limits)."""

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        """The signed request that sets the available quantity of one platform SKU. ``item_id``
        is the platform's item/product id where the platform needs it beside the SKU id
        (Taobao num_iid, PDD goods_id, Douyin product_id); adapters that do not need it ignore it."""


class AdapterBase:
    """Shared plumbing for adapters (optional: the Protocol is what callers rely on)."""

    code: ClassVar[str] = ""
    base_url: ClassVar[str] = ""
    # Time-window paging: the longest window the platform accepts, its first page number.
    window: ClassVar[timedelta] = timedelta(days=1)
    first_page: ClassVar[int] = 1
    # How far back each new window reaches, so orders modified at the edge are not missed.
    overlap: ClassVar[timedelta] = timedelta(0)

    def __init__(self, credentials: Credentials | None = None, *,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.credentials = credentials or Credentials()
        self.now = now

    def initial_cursor(self, since: datetime) -> str:
        return str(WindowCursor.first(since, window=self.window, now=self.now(),
                                      first_page=self.first_page, overlap=self.overlap))

    def window_cursor(self, cursor: str) -> WindowCursor:
        if not cursor:
            now = self.now()
            return WindowCursor.first(now - self.window, window=self.window, now=now,
                                      first_page=self.first_page)
        return WindowCursor.parse(cursor)

    def page_after(self, cursor: str, *, has_more: bool, orders: list[dict]) -> OrderPage:
        """The OrderPage of a window-paged list: next page, or the next window when done."""
        current = self.window_cursor(cursor)
        if has_more:
            return OrderPage(orders=orders, next_cursor=str(current.next_page()), has_more=True)
        nxt = current.next_window(window=self.window, now=self.now(), first_page=self.first_page)
        return OrderPage(orders=orders, next_cursor=str(nxt), has_more=False)

    def error(self, code: Any, message: Any, *, retryable: bool = False,
              retry_after: float | None = None) -> PlatformError:
        return PlatformError(self.code, "" if code is None else str(code), "" if message is None else str(message),
                             retryable=retryable, retry_after=retry_after)


# --- receiver decryption (issue 14; used only to print an e-waybill, `orders.waybills`) --------
@dataclass(frozen=True)
class DecryptedReceiver:
    """A receiver in clear, as the platform's decrypt API answers it. Lives only in memory while
    a label is rendered: never stored, never logged."""

    name: str = ""
    phone: str = ""
    address: str = ""  # the detail address (province/city/district stay the order's own)


class ReceiverDecryptor(Protocol):
    """Optional part of an adapter: Taobao, PDD, Douyin and the sandbox implement it.

    ``build_decrypt_request(order_id=…, encrypted=…, oaid=…, carrier=…)`` builds the signed
    request from the platform order id and the ciphertexts the adapter kept in
    ``NormalizedOrder.encrypted``; ``carrier`` (our code) is the e-waybill's carrier, which
    Taobao's decrypt scene depends on (the others ignore it);
    ``parse_decrypt_response(body)`` reads the answer (``PlatformError`` from its error
    envelope or when nothing came back decrypted)."""

    def build_decrypt_request(self, *, order_id: str, encrypted: dict, oaid: str = "",
                              carrier: str = "") -> PlatformRequest: ...

    def parse_decrypt_response(self, body: dict) -> DecryptedReceiver: ...
