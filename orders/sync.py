"""Platform order sync: one run for one shop, under a lease, cursor stored after each page.

A run (`run_sync`):

1. takes the shop's lease — one conditional UPDATE on its `ShopSyncState`
   (``… WHERE lease_expires_at IS NULL OR lease_expires_at < now``), atomic on SQLite and
   PostgreSQL alike, so one sync per shop runs at a time across every cluster and machine;
   a second run started meanwhile returns ``skipped``;
2. starts from the stored cursor, or ``adapter.initial_cursor(start_from or now − lookback)``;
3. fetches a page through `orders.platforms.client.PlatformClient` (timeouts, back-off),
   ingests its payloads through `orders.ingest.ingest_payloads` (each payload its own
   transaction, idempotent on shop + platform order id), and **only then** stores
   ``page.next_cursor`` — in the same UPDATE that renews the lease and checks we still hold
   it. A worker killed between pages (or mid-page) leaves the cursor at the last committed
   page: the next run fetches the unfinished page again, and the idempotent upsert makes
   the repeat a no-op;
4. loops while ``has_more``, bounded by ``max_pages`` and a time budget (the django-q task
   timeout), and leaves the rest for the next run (scheduled at once);
5. records the outcome (counts, lag, last error, consecutive failures, next run) and
   releases the lease.

Saving the shop in the admin never touches this state: it lives in its own table.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from config import notify
from config.actors import Actor
from config.errors import DomainError, NotPermitted
from orders.models import Shop, ShopSyncState, SyncStatus
from orders.platforms.base import PlatformError
from orders.platforms.client import PlatformCallFailed, PlatformClient

log = logging.getLogger(__name__)

LEASE_SECONDS = 180  # > the django-q task timeout (120 s): a killed worker's lease lapses soon after
MAX_PAGES = 20  # per run; the rest is fetched by the next run, scheduled at once
PAGE_SIZE = 50
TIME_BUDGET_SECONDS = 90  # stop paging after this, inside the task timeout
LOOKBACK = timedelta(hours=24)  # a shop's first sync without start_from reaches this far back
MAX_BACKOFF_MINUTES = 60  # a failing shop is retried less and less often, at least hourly
ERROR_LIMIT = 2000


class LeaseLost(Exception):
    """Another worker holds the shop's lease now (ours expired): stop without storing anything."""


@dataclass
class SyncResult:
    shop: str
    outcome: str  # "ok" | "partial" | "failed" | "skipped"
    pages: int = 0
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    cursor: str = ""
    error: str = ""
    lag_seconds: int | None = None
    failures: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def line(self) -> str:
        return (f"created={self.created} updated={self.updated} unchanged={self.unchanged} failed={self.failed} "
                f"fetched={self.fetched} pages={self.pages}")

    def as_dict(self) -> dict:
        return asdict(self)


def default_owner(prefix: str = "worker") -> str:
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:100]


def sync_actor(shop: Shop) -> Actor:
    """Who the sync acts as: the shop, via platform traffic (the same actor as webhooks and
    `manage.py ingest`, `orders.ingest.platform_actor`)."""
    from orders.ingest import platform_actor

    return platform_actor(shop)


def state_for(shop: Shop) -> ShopSyncState:
    """The shop's sync state row (created on first use; safe when two workers race)."""
    try:
        return ShopSyncState.objects.get(shop=shop)
    except ShopSyncState.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            return ShopSyncState.objects.create(shop=shop)
    except IntegrityError:
        return ShopSyncState.objects.get(shop=shop)


# --- the lease ------------------------------------------------------------------------------------
def acquire_lease(shop: Shop, owner: str, *, now: datetime, seconds: int = LEASE_SECONDS) -> bool:
    """Take the shop's lease if nobody holds it (or theirs has expired). One UPDATE: of two
    workers racing, the database lets exactly one match the WHERE clause."""
    state_for(shop)
    taken = (ShopSyncState.objects.filter(shop=shop)
             .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
             .update(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds),
                     status=SyncStatus.RUNNING, last_started_at=now, last_pages=0, last_fetched=0,
                     last_created=0, last_updated=0, last_unchanged=0, last_failed=0))
    return taken == 1


def renew_lease(shop: Shop, owner: str, *, now: datetime, seconds: int = LEASE_SECONDS, **fields) -> None:
    """Extend our lease (and write ``fields`` with it); `LeaseLost` if it is no longer ours."""
    renewed = (ShopSyncState.objects.filter(shop=shop, lease_owner=owner)
               .update(lease_expires_at=now + timedelta(seconds=seconds), **fields))
    if renewed != 1:
        raise LeaseLost(f"lease on {shop.code} is no longer held by {owner}")


def release_lease(shop: Shop, owner: str, **fields) -> bool:
    return ShopSyncState.objects.filter(shop=shop, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None, **fields) == 1


# --- collaborators (the `ingest` helper's contract) --------------------------------------------
def adapter_for(shop: Shop):
    from orders.platforms.registry import adapter_for as registry_adapter_for

    return registry_adapter_for(shop)


def ingest_payloads(*, shop: Shop, payloads, actor: Actor, adapter=None):
    """`orders.ingest.ingest_payloads`, given the run's adapter where it takes one (so the
    payloads are read by the very adapter that fetched them)."""
    import inspect

    from orders.ingest import ingest_payloads as ingest

    if adapter is not None and "adapter" in inspect.signature(ingest).parameters:
        return ingest(shop=shop, payloads=payloads, actor=actor, adapter=adapter)
    return ingest(shop=shop, payloads=payloads, actor=actor)


def sandbox_transport(shop: Shop, adapter, *, now: Callable[[], datetime]):
    """The sandbox platform of ``shop``, answering in-process (no network) through the client.

    The stream is built from the adapter's credentials (``extra``: sku_ids, seed,
    orders_per_hour, start); without SKU ids it sells our active SKUs (so its orders map
    and allocate), and it starts when the shop was created, so every run and every machine
    sees the same stream."""
    from inventory.models import Sku
    from orders.platforms.client import handler_transport
    from orders.platforms.interface import Credentials
    from orders.platforms.parsing import parse_time
    from orders.platforms.sandbox import SandboxPlatform

    credentials = getattr(adapter, "credentials", None) or Credentials()
    extra = dict(credentials.extra)
    if not str(extra.get("sku_ids") or "").strip():
        codes = Sku.objects.filter(is_active=True).order_by("code").values_list("code", flat=True)[:30]
        extra["sku_ids"] = ",".join(codes)
    start = parse_time(extra.get("start")) if extra.get("start") else None
    try:
        platform = SandboxPlatform.from_credentials(Credentials(extra=extra), start=start or shop.created_at)
    except ValueError as exc:
        raise PlatformCallFailed("sandbox", f"sandbox: {exc}", attempts=0) from exc
    return handler_transport(lambda request: platform.handle(request, now=now()))


def _newest_update(adapter, payloads: list[dict]) -> datetime | None:
    newest = None
    for raw in payloads:
        try:
            when = adapter.normalize(raw).platform_updated_at
        except Exception:  # noqa: BLE001 - a bad payload is counted by the ingest, not here
            continue
        if when is not None and (newest is None or when > newest):
            newest = when
    return newest


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def _next_run(shop: Shop, now: datetime, *, failures: int = 0, retry_after: float | None = None,
              more: bool = False) -> datetime:
    if more:
        return now
    minutes = max(shop.sync_interval_minutes or 1, 1)
    if failures:
        minutes = min(minutes * 2 ** min(failures - 1, 6), max(MAX_BACKOFF_MINUTES, minutes))
    when = now + timedelta(minutes=minutes)
    if retry_after:
        when = max(when, now + timedelta(seconds=retry_after))
    return when


# --- the run ------------------------------------------------------------------------------------
def run_sync(shop: Shop, *, owner: str | None = None, adapter=None, client: PlatformClient | None = None,
             sleep: Callable[[float], None] | None = None, now: Callable[[], datetime] = timezone.now,
             max_pages: int = MAX_PAGES, page_size: int = PAGE_SIZE,
             time_budget: float = TIME_BUDGET_SECONDS, lookback: timedelta = LOOKBACK,
             lease_seconds: int = LEASE_SECONDS, timeout=None,
             after_page: Callable[[int, object], None] | None = None) -> SyncResult:
    """Sync one shop now (see the module docstring). Never raises for a platform failure: the
    outcome is in the result and on the shop's `ShopSyncState`. ``after_page(n, page)`` is
    called after page n's cursor is stored (tests use it to "kill" a worker there)."""
    owner = owner or default_owner()
    started = now()
    result = SyncResult(shop=shop.code, outcome="skipped")
    if not acquire_lease(shop, owner, now=started, seconds=lease_seconds):
        state = ShopSyncState.objects.get(shop=shop)
        result.error = f"another sync holds the lease ({state.lease_owner} until {state.lease_expires_at:%H:%M:%S} UTC)"
        return result

    def keep_lease(*_args) -> None:  # while the client backs off, the lease must not lapse
        renew_lease(shop, owner, now=now(), seconds=lease_seconds)

    own_client = client is None
    more = False
    newest = None
    try:
        adapter = adapter or adapter_for(shop)
        if own_client:
            transport = None
            if shop.platform == "sandbox" and not shop.api_base_url:
                transport = sandbox_transport(shop, adapter, now=getattr(adapter, "now", timezone.now))
            client = PlatformClient(adapter, base_url=shop.api_base_url, sleep=sleep or time.sleep,
                                    on_retry=keep_lease, timeout=timeout, transport=transport)
        state = ShopSyncState.objects.get(shop=shop)
        cursor = state.cursor or adapter.initial_cursor(state.start_from or started - lookback)
        actor = sync_actor(shop)
        clock = time.monotonic()
        for number in range(1, max_pages + 1):
            page = client.fetch_page(cursor, page_size)
            payloads = client.complete_orders(page.orders)  # Amazon: each order with its items
            report = ingest_payloads(shop=shop, payloads=payloads, actor=actor, adapter=adapter)
            # Every payload of the page is committed (each in its own transaction) — only now
            # does the cursor move, in the UPDATE that proves we still hold the lease.
            page_newest = _newest_update(adapter, payloads)
            if page_newest and (newest is None or page_newest > newest):
                newest = page_newest
            next_cursor = page.next_cursor or cursor
            fields = dict(cursor=next_cursor, last_pages=F("last_pages") + 1,
                          last_fetched=F("last_fetched") + len(page.orders),
                          last_created=F("last_created") + report.created,
                          last_updated=F("last_updated") + report.updated,
                          last_unchanged=F("last_unchanged") + report.unchanged,
                          last_failed=F("last_failed") + report.failed)
            renew_lease(shop, owner, now=now(), seconds=lease_seconds, **fields)
            cursor = next_cursor
            result.pages += 1
            result.fetched += len(page.orders)
            result.created += report.created
            result.updated += report.updated
            result.unchanged += report.unchanged
            result.failed += report.failed
            result.failures.extend((number, pos, reason) for pos, reason in report.failures)
            if after_page is not None:
                after_page(number, page)
            more = bool(page.has_more)
            if not more or time.monotonic() - clock > time_budget:
                break
    except (PlatformCallFailed, PlatformError, LeaseLost, DomainError) as exc:  # DomainError: e.g. no adapter
        return _finish_failed(shop, owner, result, exc, now=now())
    except Exception as exc:
        _finish_failed(shop, owner, result, exc, now=now())
        raise
    finally:
        if own_client and client is not None:
            client.close()
    return _finish_ok(shop, owner, result, cursor=cursor, newest=newest, more=more, now=now())


def _finish_ok(shop: Shop, owner: str, result: SyncResult, *, cursor: str, newest: datetime | None, more: bool,
               now: datetime) -> SyncResult:
    state = ShopSyncState.objects.get(shop=shop)
    newest = max(filter(None, [newest, state.newest_platform_updated_at]), default=None)
    result.cursor = cursor
    result.lag_seconds = max(int((now - newest).total_seconds()), 0) if newest else None
    if result.failed:
        result.outcome = "partial"
        result.error = _clip(f"{result.failed} payload(s) refused: " + "; ".join(
            f"page {page} #{pos}: {reason}" for page, pos, reason in result.failures[:20]))
    else:
        result.outcome = "ok"
    release_lease(shop, owner, status=SyncStatus.PARTIAL if result.failed else SyncStatus.OK,
                  last_finished_at=now, last_succeeded_at=now, consecutive_failures=0, last_error=result.error,
                  newest_platform_updated_at=newest, lag_seconds=result.lag_seconds,
                  next_run_at=_next_run(shop, now, more=more))
    log.info("sync %s: %s %s", shop.code, result.outcome, result.line())
    return result


SYNC_FAILURES_ALERT = 3  # consecutive failed runs of a shop before staff are told


def _finish_failed(shop: Shop, owner: str, result: SyncResult, exc: BaseException, *, now: datetime) -> SyncResult:
    result.outcome = "failed"
    result.error = _clip(f"{type(exc).__name__}: {exc}")
    state = ShopSyncState.objects.get(shop=shop)
    result.cursor = state.cursor
    if isinstance(exc, LeaseLost):  # someone else runs the shop now: leave their state alone
        log.warning("sync %s: %s", shop.code, result.error)
        return result
    failures = state.consecutive_failures + 1
    release_lease(shop, owner, status=SyncStatus.FAILED, last_finished_at=now, last_error=result.error,
                  consecutive_failures=failures,
                  next_run_at=_next_run(shop, now, failures=failures, retry_after=getattr(exc, "retry_after", None)))
    log.warning("sync %s failed (%d in a row): %s", shop.code, failures, result.error)
    if failures == SYNC_FAILURES_ALERT:  # once per streak: the streak restarts after a good run
        notify.alert("sync_failed", key=f"sync_failed:{shop.pk}:{now:%Y%m%d%H%M%S}",
                     text=f"店铺 {shop.code} 连续 {failures} 次同步失败: {result.error}"[:400],
                     link=reverse("admin:orders_shopsyncstate_changelist"))
    return result


# --- scheduling ----------------------------------------------------------------------------------
def syncable_shops():
    """Shops the dispatcher polls: enabled, active, and on a platform with an order API
    (distributor files are imported, never polled)."""
    from orders.models import Platform

    return Shop.objects.filter(sync_enabled=True, is_active=True).exclude(platform=Platform.DISTRIBUTOR)


def due_states(now: datetime):
    """States of syncable shops whose next run is due and that nobody is syncing."""
    shops = list(syncable_shops().values_list("pk", flat=True))
    have = set(ShopSyncState.objects.filter(shop_id__in=shops).values_list("shop_id", flat=True))
    ShopSyncState.objects.bulk_create([ShopSyncState(shop_id=pk) for pk in shops if pk not in have],
                                      ignore_conflicts=True)
    return (ShopSyncState.objects.filter(shop_id__in=shops)
            .filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            .select_related("shop").order_by("next_run_at", "shop_id"))


def claim_due(state: ShopSyncState, now: datetime) -> bool:
    """Move the state's next run one interval on, if it is still what we read: of several
    dispatchers (several clusters), exactly one enqueues the shop."""
    nxt = now + timedelta(minutes=max(state.shop.sync_interval_minutes or 1, 1))
    same = Q(next_run_at__isnull=True) if state.next_run_at is None else Q(next_run_at=state.next_run_at)
    return ShopSyncState.objects.filter(same, pk=state.pk).update(next_run_at=nxt) == 1


def request_sync(*, shop: Shop, actor: Actor, enqueue: Callable[..., str] | None = None) -> str:
    """"Sync now" (admin action): enqueue one run of ``shop`` as a django-q2 task.

    Operations and supervisors may (``orders.change_shop``), within their shops. Returns the
    task id, or "" when the shop is being synced right now (nothing is queued then)."""
    if not actor.can("orders.change_shop") or not actor.scope.allows_shop(shop.pk):
        raise NotPermitted(f"没有权限同步店铺 {shop.code}")
    state = ShopSyncState.objects.filter(shop=shop).first()
    if state is not None and state.leased():
        return ""  # running right now: a queued run would only skip
    if enqueue is None:
        from django_q.tasks import async_task as enqueue
    return enqueue("orders.sync_tasks.sync_shop_task", shop.pk, task_name=f"sync {shop.code} (now)"[:100],
                   group="sync")
