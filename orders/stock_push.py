"""Stock back to channels: tell each shop how many of each mapped SKU it may sell.

The figure for one listing (shop × platform SKU id, an `inventory.SkuMapping`) is

    available  = Σ (on_hand − reserved) over the warehouses that may serve the shop's
                 country: active, allocatable (not a return centre), same country — the
                 warehouses allocation routes over (`inventory.selectors.channel_available`);
    buffer     = max(Sku.emergency_buffer, ⌈available × Sku.emergency_buffer_percent / 100⌉);
    quantity   = 0 when available < Sku.safety_stock (stop offering; a `StockAlert` opens for
                 the SKU in that country) or the SKU is inactive, else max(available − buffer, 0).

Coalesced, never one call per reservation: stock services are not touched at all. Every
stock path already stamps `StockLevel.updated_at`; the job (`push_changed`, every minute)
reads the pools changed since its last scan (minus an overlap, so a transaction that
committed late is still seen), plus the SKUs marked dirty by config edits (safety stock,
buffer, a new mapping — cheap `post_save` marks written after commit, never raising), plus
the listings whose last push failed, and pushes each listing at most once with the latest
figure. A figure equal to the last *successful* push is skipped. A failed push stays
pending and is retried on the next run. Every hour (and after a warehouse change) the job
checks every mapped SKU, so nothing a mark could miss stays wrong for long.

Who may serve a shop: a shop has no country field, so `shop_country` reads one if it ever
exists, else derives it from the shop's currency (CNY → CN, USD → US …; unknown → CN).
Strict routing rules are not applied: the channel sees what the country's serving
warehouses hold together, which is what allocation can draw from for that shop's orders.

HTTP: the sync's `orders.platforms.client.PlatformClient` (httpx under timeouts, 2^n back-off,
Retry-After), with at most two tries per run — the next run is a minute away. The adapter
builds (and re-signs per try) the request (`build_stock_push`); `send_request` decides
success: a 2xx answer without the platform's error envelope. Only shops we can reach are
pushed (`pushable`): an HTTP(S) address and credentials, or the shop's own `api_base_url`, or
an in-process platform. Three failures in a row for one shop end that shop's turn in this run;
its other listings stay pending for the next run.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any, Callable, Iterable

import httpx
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_noop

from config import notify
from config.actors import Actor
from config.errors import NotPermitted
from inventory.models import Sku, SkuMapping, StockLevel
from inventory.selectors import channel_available
from orders.models import Shop, StockAlert, StockPush, StockPushCursor, StockPushDirty, StockPushState
from orders.platforms.base import PlatformError
from orders.platforms.client import PlatformCallFailed, PlatformClient, RetryableHTTP, local_transport
from orders.platforms.interface import Credentials, PlatformRequest

logger = logging.getLogger("orderhub.stock_push")

SANDBOX = "sandbox"
PUSH_PERMISSION = "orders.change_shop"  # 运营 and 主管 (shop config) may push now
OVERLAP = timedelta(minutes=10)  # re-read pools changed this long before the last scan
FULL_PASS_EVERY = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # one job run at a time, across processes and machines
TIME_BUDGET_SECONDS = 90.0  # stay well inside the django-q2 task timeout (120 s)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)

# A shop has no country: its currency says where it sells (the demo's USD shops sell to the US).
CURRENCY_COUNTRY = {"CNY": "CN", "RMB": "CN", "USD": "US", "HKD": "HK", "MOP": "MO", "TWD": "TW", "JPY": "JP",
                    "KRW": "KR", "SGD": "SG", "GBP": "GB", "AUD": "AU", "CAD": "CA"}

# Platform → adapter module, used until `orders.platforms.registry.adapter_for` exists.
_ADAPTER_MODULES = {
    "taobao": "orders.platforms.taobao", "jd": "orders.platforms.jd", "pdd": "orders.platforms.pdd",
    "douyin": "orders.platforms.douyin", "miniapp": "orders.platforms.wechat",
    "shopify": "orders.platforms.shopify", "amazon": "orders.platforms.amazon",
}


# --- the figure --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    available: int
    buffer: int
    safety_stock: int
    quantity: int
    below_safety: bool


def figure_for(sku: Sku, available: int) -> Figure:
    available = max(int(available), 0)
    share = math.ceil(available * sku.emergency_buffer_percent / 100) if sku.emergency_buffer_percent else 0
    buffer = max(sku.emergency_buffer, share)
    below = available < sku.safety_stock
    quantity = 0 if below or not sku.is_active else max(available - buffer, 0)
    return Figure(available=available, buffer=buffer, safety_stock=sku.safety_stock, quantity=quantity,
                  below_safety=below)


def shop_country(shop: Shop) -> str:
    explicit = getattr(shop, "country", "")
    if explicit:
        return str(explicit).upper()
    return CURRENCY_COUNTRY.get((shop.currency or "").upper(), "CN")


# --- adapters and HTTP ---------------------------------------------------------------------------
def adapter_for(shop: Shop) -> Any | None:
    """The shop's adapter, or None when its platform has none that pushes stock."""
    try:
        registry = import_module("orders.platforms.registry")
    except ImportError:
        registry = None
    adapter = None
    if registry is not None and hasattr(registry, "adapter_for"):
        try:
            adapter = registry.adapter_for(shop)
        except Exception as exc:  # an unknown platform (distributor file drop) has no adapter
            logger.info("no adapter for shop %s (%s): %s", shop.code, shop.platform, exc)
            return None
    else:
        path = _ADAPTER_MODULES.get(shop.platform)
        try:
            module = import_module(path) if path else None
        except ImportError:
            module = None
        cls = next((v for v in vars(module).values()
                    if isinstance(v, type) and getattr(v, "code", None) == shop.platform
                    and hasattr(v, "build_stock_push")), None) if module else None
        if cls is None:
            return None
        adapter = cls(Credentials(app_key=shop.app_key, app_secret=shop.app_secret, access_token=shop.access_token))
    return adapter if adapter is not None and callable(getattr(adapter, "build_stock_push", None)) else None


def base_url_for(shop: Shop, adapter: Any) -> str:
    """Where this shop's pushes go: ``Shop.api_base_url`` (a sandbox gateway, a fake server on
    127.0.0.1 in tests), else our mini-program's own server (``Credentials.extra["base_url"]``),
    else the adapter's production gateway."""
    credentials = getattr(adapter, "credentials", None)
    own = (getattr(credentials, "extra", None) or {}).get("base_url", "")
    return (getattr(shop, "api_base_url", "") or own or getattr(adapter, "base_url", "") or "").rstrip("/")


def pushable(shop: Shop, adapter: Any) -> bool:
    """Only shops we can really reach: an HTTP(S) address, or an in-process platform (the
    sandbox's local transport); and credentials unless the shop names its own address — a
    demo shop without credentials never sends anything to a production gateway."""
    try:
        adapter.build_stock_push("probe", 0, item_id="probe")
    except NotImplementedError:  # a platform without a stock API (distributor file drops)
        return False
    except Exception:  # noqa: BLE001 - a listing-level problem (missing ids): shown per push
        pass
    if TRANSPORT is not None or shop.platform == SANDBOX or local_transport(adapter) is not None:
        return True
    base = base_url_for(shop, adapter)
    if not base.startswith(("http://", "https://")):
        return False
    return bool(getattr(shop, "api_base_url", "") or shop.app_key or shop.access_token)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    http_status: int | None = None
    error: str = ""


TRANSPORT: httpx.BaseTransport | None = None  # tests may capture requests with httpx.MockTransport
PUSH_ATTEMPTS = 2  # one quick retry inside a run; the next run (a minute later) retries again
MAX_RETRY_AFTER = 5.0  # a longer Retry-After: give up now, the next run retries
SLEEP: Callable[[float], None] = time.sleep


def make_client(shop: Shop, adapter: Any) -> PlatformClient:
    """The sync's platform client (httpx, timeouts, 2^n back-off, Retry-After), kept short.
    A sandbox shop is answered in-process by its `SandboxPlatform` (no network), as in sync."""
    transport = TRANSPORT
    if transport is None and shop.platform == SANDBOX and not getattr(shop, "api_base_url", ""):
        from orders.sync import sandbox_transport

        transport = sandbox_transport(shop, adapter, now=timezone.now)
    base = base_url_for(shop, adapter)
    if transport is not None and not base.startswith(("http://", "https://")):
        base = "http://local.invalid"  # answered by the transport, never resolved
    return PlatformClient(adapter, base_url=base, timeout=TIMEOUT, sleep=SLEEP,
                          max_attempts=PUSH_ATTEMPTS, max_retry_after=MAX_RETRY_AFTER, transport=transport)


def send_request(client: PlatformClient, adapter: Any, build: Callable[[], PlatformRequest]) -> Outcome:
    """Send one stock push (re-signed on each try). Success = a 2xx answer without the
    platform's error envelope (the adapter's ``raise_for_error`` where it has one)."""
    seen: dict[str, int | None] = {"status": None}

    def attempt() -> int:
        try:
            response = client.send_once(build())
        except RetryableHTTP as exc:
            seen["status"] = exc.status
            raise
        seen["status"] = response.status
        if not 200 <= response.status < 300:
            raise PlatformError(client.platform, f"http_{response.status}", response.text[:500])
        body = response.body
        if isinstance(body, dict):
            check = getattr(adapter, "raise_for_error", None)
            if callable(check):
                check(body)  # raises PlatformError (retryable where the platform says so)
            elif isinstance(body.get("error"), dict) or body.get("errors"):
                raise PlatformError(client.platform, "error", str(body.get("error") or body.get("errors"))[:500])
        return response.status

    try:
        return Outcome(True, client.call(attempt))
    except PlatformCallFailed as exc:
        return Outcome(False, seen["status"], exc.message[:1000])


SEND: Callable[..., Outcome] = send_request  # the swap point (a test double)
BREAKER = 3  # consecutive failed listings of one shop in one run: leave the rest for the next run


# --- one pass over some listings -----------------------------------------------------------------
@dataclass
class PushReport:
    listings: int = 0  # mapped listings looked at
    pushed: int = 0  # successful pushes
    failed: int = 0
    unchanged: int = 0  # figure equal to the last successful push: no call
    no_adapter: int = 0  # listings of shops without an adapter, an address or credentials
    deferred: int = 0  # left pending: their shop's platform kept failing this run
    waiting: int = 0  # pending listings whose back-off has not passed yet
    alerts_opened: int = 0
    alerts_resolved: int = 0
    full_pass: bool = False
    truncated: bool = False  # time budget spent; the rest waits for the next run
    skipped: bool = False  # another run holds the lease

    def as_dict(self) -> dict:
        return asdict(self)


MAX_RETRY_WAIT = timedelta(hours=1)


def retry_due(state: StockPushState, now: datetime) -> bool:
    """A failed listing is retried on the next run; after further failures it waits 2, 4, 8 …
    minutes (at most an hour), so a listing that cannot work (a missing item id) does not write
    a failed row every minute. Saving its mapping resets the wait."""
    if state.failures <= 1:
        return True
    wait = min(timedelta(minutes=2 ** min(state.failures - 1, 10)), MAX_RETRY_WAIT)
    return state.updated_at <= now - wait


def _reason(fig: Figure, state: StockPushState | None, *, manual: bool) -> str:
    if fig.below_safety and (state is None or state.offered):
        return StockPush.Reason.BELOW_SAFETY
    if not fig.below_safety and state is not None and not state.offered:
        return StockPush.Reason.RECOVERED
    if manual:
        return StockPush.Reason.MANUAL
    if state is not None and state.pending:
        return StockPush.Reason.RETRY
    return StockPush.Reason.CHANGED


def _alerts(figures: dict[tuple[str, int], Figure], skus: dict[int, Sku], now: datetime, report: PushReport) -> None:
    """Open an alert when a SKU falls below its safety stock in a country, resolve it on recovery."""
    sku_ids = {sku_id for _country, sku_id in figures}
    open_alerts = {(a.country, a.sku_id): a for a in
                   StockAlert.objects.filter(sku_id__in=sku_ids, resolved_at__isnull=True)}
    for key, fig in figures.items():
        alert = open_alerts.get(key)
        if fig.below_safety and alert is None:
            country, sku_id = key
            opened = StockAlert.objects.create(sku_id=sku_id, country=country, available=fig.available,
                                               threshold=fig.safety_stock, opened_at=now)
            notify.alert("stock_low", key=f"stock_low:{opened.pk}",
                         text=f"{skus[sku_id].code} 在 {country} 可用 {fig.available} < 安全库存 {fig.safety_stock},已停止向渠道供货",
                         link=reverse("admin:orders_stockalert_change", args=[opened.pk]))
            report.alerts_opened += 1
            logger.warning("SKU %s below safety stock in %s: %s < %s — channels told 0",
                           skus[sku_id].code, country, fig.available, fig.safety_stock)
        elif not fig.below_safety and alert is not None:
            StockAlert.objects.filter(pk=alert.pk).update(resolved_at=now, recovered_available=fig.available)
            report.alerts_resolved += 1
            logger.info("SKU %s recovered in %s: %s available", skus[alert.sku_id].code, alert.country, fig.available)


def _record(m: SkuMapping, fig: Figure, state: StockPushState | None, outcome: Outcome, *, reason: str,
            actor: Actor, duration_ms: int, now: datetime) -> None:
    with transaction.atomic():
        StockPush.objects.create(
            shop_id=m.shop_id, sku_id=m.sku_id, platform_sku_id=m.platform_sku_id, platform_item_id=m.platform_item_id,
            quantity=fig.quantity, available=fig.available, buffer=fig.buffer, safety_stock=fig.safety_stock,
            reason=reason, ok=outcome.ok, http_status=outcome.http_status, error=outcome.error,
            duration_ms=duration_ms, actor_label=actor.label[:150])
        if outcome.ok:
            values = {"sku_id": m.sku_id, "last_quantity": fig.quantity, "last_pushed_at": now,
                      "offered": not fig.below_safety, "pending": False, "failures": 0, "last_error": ""}
        else:
            values = {"sku_id": m.sku_id, "pending": True, "failures": (state.failures if state else 0) + 1,
                      "last_error": outcome.error}
        StockPushState.objects.update_or_create(shop_id=m.shop_id, platform_sku_id=m.platform_sku_id, defaults=values)


def _push(*, actor: Actor, now: datetime, sku_ids: Iterable[int] | None = None, shop_ids: Iterable[int] | None = None,
          listings: Iterable[tuple[int, str]] | None = None, force: bool = False, manual: bool = False,
          budget: float | None = None) -> PushReport:
    report = PushReport()
    mappings = SkuMapping.objects.filter(shop__is_active=True).select_related("shop", "sku")
    if sku_ids is not None:
        mappings = mappings.filter(sku_id__in=list(sku_ids))
    if shop_ids is not None:
        mappings = mappings.filter(shop_id__in=list(shop_ids))
    wanted = None
    if listings is not None:
        wanted = {(int(shop_id), str(sku_id)) for shop_id, sku_id in listings}
        mappings = mappings.filter(shop_id__in={s for s, _ in wanted}, platform_sku_id__in={p for _, p in wanted})
    mappings = list(mappings.order_by("shop_id", "platform_sku_id"))
    if wanted is not None:
        mappings = [m for m in mappings if (m.shop_id, m.platform_sku_id) in wanted]
    if not mappings:
        return report

    adapters: dict[int, Any] = {}
    for m in mappings:
        if m.shop_id not in adapters:
            adapter = adapter_for(m.shop)
            adapters[m.shop_id] = adapter if adapter is not None and pushable(m.shop, adapter) else None
    report.no_adapter = sum(1 for m in mappings if adapters[m.shop_id] is None)
    mappings = [m for m in mappings if adapters[m.shop_id] is not None]
    if not mappings:
        return report

    full = sku_ids is None and wanted is None
    available = channel_available(sku_ids=None if full else {m.sku_id for m in mappings})
    skus = {m.sku_id: m.sku for m in mappings}
    figures: dict[tuple[str, int], Figure] = {}
    for m in mappings:
        key = (shop_country(m.shop), m.sku_id)
        if key not in figures:
            figures[key] = figure_for(m.sku, available.get(key, 0))
    _alerts(figures, skus, now, report)

    state_qs = StockPushState.objects.filter(shop_id__in={m.shop_id for m in mappings})
    if not full:
        state_qs = state_qs.filter(platform_sku_id__in={m.platform_sku_id for m in mappings})
    states = {(s.shop_id, s.platform_sku_id): s for s in state_qs}
    clients: dict[int, PlatformClient] = {}
    failing: dict[int, int] = {}  # shop id → consecutive failures this run
    started = time.monotonic()
    try:
        for m in mappings:
            report.listings += 1
            fig = figures[(shop_country(m.shop), m.sku_id)]
            state = states.get((m.shop_id, m.platform_sku_id))
            if (not force and state is not None and not state.pending and state.last_quantity == fig.quantity
                    and state.sku_id == m.sku_id):
                report.unchanged += 1
                if state.offered == fig.below_safety:  # e.g. 0 because of the buffer, then below safety
                    StockPushState.objects.filter(pk=state.pk).update(offered=not fig.below_safety)
                continue
            if not force and state is not None and state.pending and not retry_due(state, now):
                report.waiting += 1  # failing again and again: back off (push now ignores this)
                continue
            if budget is not None and time.monotonic() - started > budget:
                report.truncated = True
                break
            if failing.get(m.shop_id, 0) >= BREAKER:  # the shop's platform is down: do not hammer it
                _defer(m, reason=gettext_noop("平台连续失败,本轮跳过,下轮重试"))
                report.deferred += 1
                continue
            adapter = adapters[m.shop_id]
            t0 = time.monotonic()
            try:
                if m.shop_id not in clients:
                    clients[m.shop_id] = make_client(m.shop, adapter)
                outcome = SEND(clients[m.shop_id], adapter, lambda a=adapter, m=m, q=fig.quantity: a.build_stock_push(
                    m.platform_sku_id, q, item_id=m.platform_item_id))
            except Exception as exc:  # one listing's bad credentials or data never stops the others
                logger.exception("stock push to %s:%s failed", m.shop.code, m.platform_sku_id)
                outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}"[:1000])
            _record(m, fig, state, outcome, reason=_reason(fig, state, manual=manual), actor=actor,
                    duration_ms=int((time.monotonic() - t0) * 1000), now=now)
            if outcome.ok:
                report.pushed += 1
                failing[m.shop_id] = 0
            else:
                report.failed += 1
                failing[m.shop_id] = failing.get(m.shop_id, 0) + 1
    finally:
        for client in clients.values():
            client.close()
    return report


def _defer(m: SkuMapping, *, reason: str) -> None:
    """Not attempted this run: keep it pending so the next run tries it (no log row: no call)."""
    StockPushState.objects.update_or_create(shop_id=m.shop_id, platform_sku_id=m.platform_sku_id,
                                            defaults={"sku_id": m.sku_id, "pending": True, "last_error": reason})


# --- the job -----------------------------------------------------------------------------------------
def _acquire(owner: str, now: datetime) -> bool:
    StockPushCursor.objects.get_or_create(pk=1)
    return bool(StockPushCursor.objects.filter(pk=1).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .update(lease_until=now + LEASE, lease_owner=owner))


def _release(owner: str) -> None:
    StockPushCursor.objects.filter(pk=1, lease_owner=owner).update(lease_until=None, lease_owner="")


def push_changed(*, actor: Actor, now: datetime | None = None, budget: float | None = TIME_BUDGET_SECONDS) -> PushReport:
    """The every-minute job: push each listing whose figure may have changed, once, with the
    latest figure. Safe to run twice or concurrently (a lease lets one run at a time)."""
    now = now or timezone.now()
    owner = uuid.uuid4().hex
    if not _acquire(owner, now):
        return PushReport(skipped=True)
    try:
        cursor = StockPushCursor.objects.get(pk=1)
        full = (cursor.scanned_until is None or cursor.full_pass_at is None
                or cursor.full_pass_at <= now - FULL_PASS_EVERY)
        sku_ids: set[int] | None = None
        if not full:
            sku_ids = set(StockLevel.objects.filter(updated_at__gte=cursor.scanned_until - OVERLAP)
                          .values_list("sku_id", flat=True).distinct())
            sku_ids |= set(StockPushDirty.objects.filter(marked_at__lte=now).values_list("sku_id", flat=True))
            sku_ids |= set(StockPushState.objects.filter(pending=True).values_list("sku_id", flat=True))
        report = _push(actor=actor, now=now, sku_ids=sku_ids, budget=budget)
        report.full_pass = full
        if not report.truncated:  # a truncated run leaves its marks and window for the next one
            StockPushDirty.objects.filter(marked_at__lte=now).delete()
            values = {"scanned_until": now, **({"full_pass_at": now} if full else {})}
            StockPushCursor.objects.filter(pk=1).update(**values)
        return report
    finally:
        _release(owner)


def push_now(*, actor: Actor, shop_ids: Iterable[int] | None = None, sku_ids: Iterable[int] | None = None,
             listings: Iterable[tuple[int, str]] | None = None, now: datetime | None = None) -> PushReport:
    """Push the current figure of these listings now, changed or not (the admin's "push now")."""
    if not actor.can(PUSH_PERMISSION):
        raise NotPermitted(_no_permission_message())
    scope = actor.scope.shop_ids
    if scope is not None:
        shop_ids = set(scope) if shop_ids is None else set(shop_ids) & set(scope)
    return _push(actor=actor, now=now or timezone.now(), sku_ids=sku_ids, shop_ids=shop_ids, listings=listings,
                 force=True, manual=True)


def _no_permission_message() -> str:
    from django.utils.translation import gettext

    return gettext("没有回写渠道库存的权限")


# --- marks: cheap, after commit, never raising into the caller ------------------------------------
def _write_marks(sku_ids: list[int]) -> None:
    now = timezone.now()
    StockPushDirty.objects.bulk_create([StockPushDirty(sku_id=i, marked_at=now) for i in sku_ids],
                                       update_conflicts=True, unique_fields=["sku"], update_fields=["marked_at"])


def mark_dirty(sku_ids: Iterable[int]) -> None:
    """Ask the next run to recompute these SKUs (after the current transaction commits)."""
    ids = sorted({int(i) for i in sku_ids if i})
    if ids:
        transaction.on_commit(lambda: _write_marks(ids), robust=True)


def request_full_pass() -> None:
    transaction.on_commit(lambda: StockPushCursor.objects.filter(pk=1).update(full_pass_at=None), robust=True)


def _sku_saved(sender, instance, **kwargs) -> None:
    mark_dirty([instance.pk])


def _mapping_saved(sender, instance, **kwargs) -> None:
    mark_dirty([instance.sku_id])
    shop_id, platform_sku_id = instance.shop_id, instance.platform_sku_id
    transaction.on_commit(lambda: StockPushState.objects.filter(  # a fixed mapping is retried at once
        shop_id=shop_id, platform_sku_id=platform_sku_id, failures__gt=1).update(failures=1), robust=True)


def _warehouse_changed(sender, instance, **kwargs) -> None:
    request_full_pass()


def connect_signals() -> None:
    """Called from `OrdersConfig.ready`: config edits that move a channel figure mark it."""
    from django.db.models.signals import post_delete, post_save

    from inventory.models import Warehouse

    post_save.connect(_sku_saved, sender=Sku, dispatch_uid="stockpush-sku-saved")
    from inventory.imports import skus_imported  # an Excel import: one signal for all its SKUs

    skus_imported.connect(lambda sender, sku_ids, **kw: mark_dirty(sku_ids), dispatch_uid="stockpush-skus-imported",
                          weak=False)
    post_save.connect(_mapping_saved, sender=SkuMapping, dispatch_uid="stockpush-mapping-saved")
    post_save.connect(_warehouse_changed, sender=Warehouse, dispatch_uid="stockpush-warehouse-saved")
    post_delete.connect(_warehouse_changed, sender=Warehouse, dispatch_uid="stockpush-warehouse-deleted")
