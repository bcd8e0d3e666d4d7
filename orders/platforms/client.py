"""The HTTP client that sends an adapter's `PlatformRequest`s (httpx, under timeouts).

Adapters are pure: they build signed requests as plain data and parse answers. This client is
the only place that talks to a platform:

- ``base_url`` is the adapter's production gateway unless the shop overrides it
  (``Shop.api_base_url``: a sandbox, or a fake server on 127.0.0.1 in tests);
- every call has a connect and a read timeout;
- HTTP 429 and 5xx, timeouts, connection errors and a ``PlatformError`` the adapter marks
  ``retryable`` are tried again with exponential back-off — 1, 2, 4, 8 s (2^n) between at
  most 5 tries, never sooner than the platform's ``Retry-After`` — and then fail with
  `PlatformCallFailed`, which the sync records on the shop's sync state;
- each try rebuilds (re-signs) the request, so a platform that checks the timestamp accepts it;
- the sleep is injectable (``sleep=``), so tests do not wait.

A platform that runs in-process (the sandbox generator) is reached through a *local
transport*: an ``httpx`` transport that answers without a network (``local_transport``), so
the sandbox goes through exactly this path too.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception

from orders.platforms.base import OrderPage, PlatformError
from orders.platforms.interface import PlatformRequest

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
MAX_ATTEMPTS = 5
# A Retry-After longer than this is not slept through inside one run (a worker would sit idle
# past the task timeout): the call fails at once and the sync schedules its next run after it.
MAX_RETRY_AFTER = 30.0
USER_AGENT = "OrderHub/1 (+httpx)"


class RetryableHTTP(PlatformError):
    """HTTP 429/5xx or a network failure: worth another try."""

    def __init__(self, platform: str, code: str, message: str, *, retry_after: float | None = None,
                 status: int | None = None):
        super().__init__(platform, code, message, retryable=True, retry_after=retry_after)
        self.status = status


class PlatformCallFailed(Exception):
    """A call gave up: after ``attempts`` tries, or at once for a non-retryable error."""

    def __init__(self, platform: str, message: str, *, attempts: int, retry_after: float | None = None,
                 cause: BaseException | None = None):
        super().__init__(message)
        self.platform, self.message, self.attempts = platform, message, attempts
        self.retry_after, self.cause = retry_after, cause


@dataclass
class PlatformResponse:
    status: int
    headers: httpx.Headers
    body: Any = None  # parsed JSON, or None
    text: str = ""
    elapsed: float = 0.0
    extra: dict = field(default_factory=dict)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def handler_transport(handle: Callable[[PlatformRequest], dict]) -> httpx.MockTransport:
    """An httpx transport that answers every request with ``handle(PlatformRequest)`` (a
    JSON body, HTTP 200) — an in-process platform, reached through the same client path."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        body: Any = None
        if request.content:
            raw = request.content.decode("utf-8")
            if "json" in request.headers.get("content-type", ""):
                body = json.loads(raw)
            else:
                body = dict(httpx.QueryParams(raw))
        preq = PlatformRequest(request.method, request.url.path, params, body, dict(request.headers), "")
        return httpx.Response(200, json=handle(preq))

    return httpx.MockTransport(answer)


def local_transport(adapter) -> httpx.BaseTransport | None:
    """The in-process transport of an adapter that answers locally, else None.

    An adapter offers one by either
    - ``local_transport()`` → an ``httpx.BaseTransport``, or
    - ``handle(request: PlatformRequest) -> dict`` → the JSON body its API would answer.
    (The sandbox platform is wired by the sync, `orders.sync.sandbox_transport`, because it
    is built from the shop.)
    """
    make = getattr(adapter, "local_transport", None)
    if callable(make):
        return make()
    handle = getattr(adapter, "handle", None)
    if callable(handle):
        return handler_transport(handle)
    return None


def _accepts(func: Callable, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class PlatformClient:
    """Sends one adapter's requests. Use as a context manager (or call ``close()``)."""

    def __init__(self, adapter, *, base_url: str = "", timeout: httpx.Timeout | float | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = MAX_ATTEMPTS,
                 max_retry_after: float = MAX_RETRY_AFTER, transport: httpx.BaseTransport | None = None,
                 on_retry: Callable[[int, float, BaseException], None] | None = None):
        self.adapter = adapter
        self.platform = getattr(adapter, "code", "") or type(adapter).__name__
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.on_retry = on_retry
        self.attempts = 0  # tries made by the last call (for reports and tests)
        if transport is None and not base_url:
            transport = local_transport(adapter)
        base = (base_url or getattr(adapter, "base_url", "") or "").rstrip("/")
        if transport is not None and not base.startswith(("http://", "https://")):
            base = "http://local.invalid"  # an in-process platform ("sandbox://local"): never on a network
        if not base:
            raise PlatformCallFailed(self.platform, f"{self.platform}: no API address (set the shop's 接口地址)",
                                     attempts=0)
        self.base_url = base
        self.http = httpx.Client(base_url=base, timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
                                 transport=transport, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT})

    # --- plumbing --------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "PlatformClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_once(self, request: PlatformRequest) -> PlatformResponse:
        """One try. 429/5xx and network failures raise `RetryableHTTP`; other answers return."""
        kwargs: dict[str, Any] = {"params": request.params or None, "headers": dict(request.headers or {})}
        if request.body is not None and request.body_format == "form":
            kwargs["data"] = request.body
        elif request.body is not None:
            kwargs["content"] = json.dumps(request.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            kwargs["headers"].setdefault("Content-Type", "application/json")
        started = time.monotonic()
        try:
            resp = self.http.request(request.method, request.path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RetryableHTTP(self.platform, "timeout", f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise RetryableHTTP(self.platform, "network", f"{type(exc).__name__}: {exc}") from exc
        elapsed = time.monotonic() - started
        body: Any = None
        text = resp.text
        if text:
            try:
                body = resp.json()
            except ValueError:
                body = None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableHTTP(self.platform, f"http_{resp.status_code}",
                                f"HTTP {resp.status_code} {text[:200]}".strip(),
                                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                                status=resp.status_code)
        return PlatformResponse(resp.status_code, resp.headers, body, text, elapsed)

    def _wait(self, state: RetryCallState) -> float:
        backoff = float(2 ** (state.attempt_number - 1))
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, float(retry_after)) if retry_after is not None else backoff

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and retry_after > self.max_retry_after

    def _before_sleep(self, state: RetryCallState) -> None:
        if self.on_retry is not None:
            self.on_retry(state.attempt_number, state.next_action.sleep if state.next_action else 0.0,
                          state.outcome.exception())

    def call(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` (build + send + parse) with the retry policy; the result of the
        first try that succeeds, else `PlatformCallFailed`."""
        self.attempts = 0

        def counted():
            self.attempts += 1
            return attempt()

        retrying = Retrying(
            sleep=self.sleep, stop=self._stop, wait=self._wait, reraise=True,
            retry=retry_if_exception(lambda e: isinstance(e, PlatformError) and e.retryable),
            before_sleep=self._before_sleep,
        )
        try:
            return retrying(counted)
        except PlatformError as exc:
            what = "gave up after" if exc.retryable else "refused at try"
            raise PlatformCallFailed(
                self.platform, f"{self.platform}: {exc.code} {exc.message} ({what} {self.attempts})".replace("  ", " "),
                attempts=self.attempts, retry_after=exc.retry_after, cause=exc) from exc

    def send(self, build: Callable[[], PlatformRequest]) -> PlatformResponse:
        """One request with the retry policy; ``build`` makes (and signs) it afresh per try.
        For calls other than the order list, e.g. a stock push:
        ``client.send(lambda: adapter.build_stock_push(sku_id, quantity))``."""
        return self.call(lambda: self.send_once(build()))

    # --- what the sync uses ----------------------------------------------------------------
    def fetch_page(self, cursor: str, page_size: int) -> OrderPage:
        """One page of changed orders from ``cursor`` (retried per the policy above)."""

        def attempt() -> OrderPage:
            request = self.adapter.build_list_request(cursor, page_size)
            response = self.send_once(request)
            return self.parse_page(response, cursor)

        return self.call(attempt)

    def complete_orders(self, orders: list[dict]) -> list[dict]:
        """Each order as the adapter normalizes it in full. Where the list gives bare orders and
        the adapter has an items call (Amazon: getOrders, then getOrderItems with its own
        NextToken pages), each order is fetched with its items as ``{"order": …, "items": […]}``;
        otherwise the list's payloads are already complete and come back as they are."""
        build = getattr(self.adapter, "build_items_request", None)
        parse = getattr(self.adapter, "parse_items_response", None)
        if not (callable(build) and callable(parse)):
            return orders
        complete = []
        for order in orders:
            order_id = self.adapter.normalize(order).platform_order_id
            items: list[dict] = []
            token = ""
            while True:
                def attempt(token=token):
                    response = self.send_once(build(order_id, token))
                    kwargs = {k: v for k, v in (("status", response.status), ("headers", response.headers))
                              if _accepts(parse, k)}
                    if not isinstance(response.body, dict):
                        raise PlatformError(self.platform, f"http_{response.status}", response.text[:200])
                    return parse(response.body, **kwargs)

                page_items, token = self.call(attempt)
                items.extend(page_items)
                if not token:
                    break
            complete.append({"order": order, "items": items})
        return complete

    def parse_page(self, response: PlatformResponse, cursor: str) -> OrderPage:
        parse = self.adapter.parse_list_response
        kwargs: dict[str, Any] = {"cursor": cursor}
        if _accepts(parse, "headers"):
            kwargs["headers"] = response.headers
        if _accepts(parse, "status"):
            kwargs["status"] = response.status
        if not isinstance(response.body, dict):
            if response.status >= 400:
                raise PlatformError(self.platform, f"http_{response.status}", response.text[:200])
            raise PlatformError(self.platform, "bad_body", f"HTTP {response.status}: not a JSON object: "
                                f"{response.text[:120]!r}")
        page = parse(response.body, **kwargs)  # raises PlatformError from the platform's envelope
        if response.status >= 400:
            raise PlatformError(self.platform, f"http_{response.status}", response.text[:200])
        return page
