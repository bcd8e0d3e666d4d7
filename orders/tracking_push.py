"""Tracking numbers pushed back to the platforms when a parcel ships (issue 15).

Outbox, like the stock push (`orders.stock_push`): durable rows, pushed after commit, retried.

- `enqueue` is called by `orders.shipping.ship_parcels` — the one place a shipment becomes
  shipped, by a person (`order_ship`) or by a carrier's first scan (`apply_tracking` →
  `services._ship_locked`) — in the same transaction: a rolled-back ship leaves no row. One
  `TrackingPush` per shipment (OneToOne): shipping the same parcel again writes nothing.
  After commit the rows are handed to a django-q2 task (`orders.tracking_push_tasks`); if
  the broker is down they wait for the schedule.
- `process` claims one row (a short lease, so two workers never push the same parcel), asks
  the shop's adapter for the request (`build_tracking_push`, see `orders.platforms.tracking`)
  and sends it with the platforms' HTTP client (`PlatformClient`: timeouts, 2^n s back-off,
  Retry-After, at most `CLIENT_ATTEMPTS` tries per run). A success is ``sent`` and never pushed
  again; a parcel the platform takes no number for is ``not_applicable`` (with the reason);
  a permanent error (the platform refused, unmapped carrier, a shop without an address or
  credentials — nothing is sent to a production gateway on a demo shop) is ``failed`` at once; a
  retryable one stays ``pending`` and waits 2, 4, 8 … minutes (at most `MAX_BACKOFF`) for the
  schedule, until `MAX_ATTEMPTS` runs failed: then ``failed``. Failed rows are listed in the
  admin, where 运营 and 主管 may "retry now" (`retry_now`, permission
  ``orders.retry_trackingpush``).
- A split order: every parcel has its row, numbered per order (``package_no``). Platforms
  that take several get each: Shopify (a fulfillment per parcel), Amazon (a package per
  parcel), our mini-program, Taobao (split sends with the parcel's oids), Douyin (one
  ``order.logisticsAddMultiPack`` pack per parcel, when the parcel's lines carry the sku order
  ids) and PDD (the first parcel ships the order, later ones go up as extra numbers with
  ``pdd.order.upload.extra.logistics`` — they wait, as retries, until the first is sent). JD
  takes numbers only in its one outbound call: its additional parcels are ``not_applicable``
  with a note. Where each shape comes from: the adapters' docstrings.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

import httpx
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.actors import Actor, Source
from config.errors import NotPermitted
from orders import events
from orders.models import Order, OrderStatus, Shipment, TrackingPush
from orders.platforms.base import PlatformError
from orders.platforms.client import PlatformCallFailed, PlatformClient, local_transport
from orders.platforms.tracking import TrackingJob, TrackingLine, TrackingNotApplicable

logger = logging.getLogger("orderhub.tracking_push")

S = TrackingPush.Status
JOB_ACTOR = Actor.system("tracking_push", Source.JOB)
RETRY_PERMISSION = "orders.retry_trackingpush"  # 运营, 主管 (config/roles.py)
VIEW_PERMISSION = "orders.view_trackingpush"  # 运营, 主管, 仓管
MAX_ATTEMPTS = 8  # failed runs before a retryable error becomes `failed`
MAX_BACKOFF = timedelta(hours=2)
LEASE = timedelta(minutes=5)
CLIENT_ATTEMPTS = 3  # tries inside one run (2^n s apart, never sooner than Retry-After)
MAX_RETRY_AFTER = 10.0  # a longer Retry-After: this run gives up, the schedule retries after it
MAX_STEPS = 3  # requests of one push (Shopify: fulfillment orders, then the fulfillment)
BATCH = 200
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
TRANSPORT: httpx.BaseTransport | None = None  # tests may capture requests
SLEEP: Callable[[float], None] | None = None  # None = time.sleep (tests: no waiting)
SECRET_PARAMS = {"sign", "access_token", "session", "app_key", "client_id", "app_secret", "app_secret_key"}


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed run: 2^n minutes, at most `MAX_BACKOFF`."""
    return min(timedelta(minutes=2 ** min(max(attempts, 1), 12)), MAX_BACKOFF)


# --- the outbox row, in the shipping transaction ------------------------------------------------
def enqueue(*, order: Order, shipments: Iterable[Shipment], at: datetime | None = None) -> list[TrackingPush]:
    """One pending push per newly shipped parcel (called inside the ship transaction)."""
    at = at or timezone.now()
    shipments = [s for s in shipments if s.pk]
    existing = set(TrackingPush.objects.filter(shipment__in=shipments).values_list("shipment_id", flat=True))
    created = []
    for shipment in shipments:
        if shipment.pk in existing:
            continue  # already queued or pushed: never twice
        numbered = TrackingPush.objects.filter(order=order).count()
        values: dict[str, Any] = {"status": S.PENDING, "next_attempt_at": at}
        if not shipment.tracking_number:
            values = {"status": S.NOT_APPLICABLE, "note": "发货时没有运单号,未回传"}
        created.append(TrackingPush.objects.create(
            shipment=shipment, order=order, shop_id=order.shop_id, platform=order.shop.platform,
            carrier=shipment.carrier, tracking_number=shipment.tracking_number, package_no=numbered + 1,
            created_at=at, **values))
    ids = [p.pk for p in created if p.status == S.PENDING]
    if ids:
        transaction.on_commit(lambda: _hand_to_worker(ids), robust=True)
    return created


def _hand_to_worker(ids: list[int]) -> None:
    try:
        from django_q.tasks import async_task

        async_task("orders.tracking_push_tasks.push_tracking_numbers", ids, group="tracking_push", save=False)
    except Exception:  # noqa: BLE001 - the rows are durable: the schedule takes them
        logger.exception("tracking push %s: could not enqueue; the schedule will pick them up", ids)


# --- one push -----------------------------------------------------------------------------------
def _claim(push_id: int, now: datetime, *, due_only: bool) -> bool:
    qs = TrackingPush.objects.filter(pk=push_id, status=S.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    if due_only:
        qs = qs.filter(next_attempt_at__lte=now)
    return bool(qs.update(claimed_until=now + LEASE))


def job_for(push: TrackingPush) -> TrackingJob:
    shipment, order = push.shipment, push.order
    lines = tuple(TrackingLine(platform_line_id=sl.order_line.platform_line_id or "",
                               platform_sku_id=sl.order_line.platform_sku_id or "",
                               sku_code=sl.order_line.sku.code if sl.order_line.sku_id else "", quantity=sl.quantity)
                  for sl in shipment.lines.select_related("order_line__sku").order_by("id"))
    count = Shipment.objects.filter(order=order).count()
    partial = order.status == OrderStatus.PARTIALLY_SHIPPED or count > 1
    return TrackingJob(platform_order_id=order.platform_order_id, carrier=push.carrier,
                       tracking_number=push.tracking_number, shipped_at=shipment.shipped_at or push.created_at,
                       package_no=push.package_no, package_count=max(count, 2 if partial else 1), lines=lines,
                       reference=f"orderhub-{shipment.pk}")


def _client(shop, adapter) -> PlatformClient:
    from orders import stock_push

    transport = TRANSPORT
    if transport is None and shop.platform == "sandbox" and not shop.api_base_url:
        from orders.sync import sandbox_transport

        transport = sandbox_transport(shop, adapter, now=timezone.now)
    if transport is None:
        transport = local_transport(adapter)
    base = stock_push.base_url_for(shop, adapter)
    if transport is None and not (base.startswith(("http://", "https://"))
                                  and (shop.api_base_url or shop.app_key or shop.access_token)):
        raise PlatformCallFailed(shop.platform, f"{shop.platform}: 店铺没有接口地址或凭据,无法回传", attempts=0)
    kwargs = {"sleep": SLEEP} if SLEEP is not None else {}
    return PlatformClient(adapter, base_url=base if base.startswith(("http://", "https://")) else "",
                          timeout=TIMEOUT, max_attempts=CLIENT_ATTEMPTS, max_retry_after=MAX_RETRY_AFTER,
                          transport=transport, **kwargs)


_SECRET_IN_URL = re.compile(r"\b(session|access_token|sign|app_secret|client_secret)=[^&\s'\"<>]+", re.I)


def scrub(text: str, shop) -> str:
    """An error text as stored: credentials never kept (a platform or fake server may echo the URL)."""
    text = _SECRET_IN_URL.sub(lambda m: f"{m.group(1)}=***", text or "")
    for secret in (shop.access_token, shop.app_secret, shop.webhook_secret):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _summary(request) -> dict:
    params = {k: v for k, v in (request.params or {}).items() if k not in SECRET_PARAMS}
    return {"method": request.method, "path": request.path, "params": params, "body": request.body}


@dataclass
class PushReport:
    sent: int = 0
    failed: int = 0
    waiting: int = 0  # retryable failure: pending with a later next_attempt_at
    not_applicable: int = 0
    skipped: int = 0  # not claimable: done already, or another worker holds it

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict:
        return asdict(self)


def _send(push: TrackingPush) -> tuple[str, dict]:
    """Push once (all steps). Returns (outcome, field values to store)."""
    from orders.platforms.registry import NoAdapter, adapter_for

    try:
        adapter = adapter_for(push.shop)
    except NoAdapter as exc:
        return "not_applicable", {"note": str(exc)[:255]}
    if not callable(getattr(adapter, "build_tracking_push", None)):
        return "not_applicable", {"note": f"{push.platform}: 没有回传运单号的接口"}
    job = job_for(push)
    if job.additional and getattr(adapter, "extra_parcels_after_first", False):
        first = (TrackingPush.objects.filter(order_id=push.order_id, package_no=1)
                 .values_list("status", flat=True).first())
        if first in (S.PENDING, S.FAILED):  # PDD takes extra numbers only once the order is shipped there
            return "retry", {"last_error": f"{push.platform}: 等待第一个包裹回传成功后再回传附加包裹"}
    seen: dict[str, Any] = {}
    try:  # pure: decides "nothing to push" and "unmapped carrier" before any address is needed
        seen["request"] = _summary(adapter.build_tracking_push(job))
    except TrackingNotApplicable as exc:
        return "not_applicable", {"note": str(exc)[:255]}
    except PlatformError as exc:
        return ("retry" if exc.retryable else "failed"), {"last_error": f"{exc.platform}: {exc.code} {exc.message}"[:2000]}
    try:
        client = _client(push.shop, adapter)
    except PlatformCallFailed as exc:  # nowhere to send it: a configuration problem, not worth retrying
        return "failed", {"last_error": exc.message[:2000]}
    try:
        for _step in range(MAX_STEPS):
            def attempt(job=job):
                request = adapter.build_tracking_push(job)
                seen["request"] = _summary(request)
                response = client.send_once(request)
                seen["status"] = response.status
                return adapter.parse_tracking_push(job, status=response.status, body=response.body,
                                                   headers=response.headers)

            answer = client.call(attempt)
            if answer.done:
                return "sent", {"platform_reference": answer.reference[:100], "note": answer.note[:255],
                                "request_summary": seen.get("request", {}),
                                "response_summary": {"http_status": seen.get("status"), "reference": answer.reference,
                                                     "tries": client.attempts}}
            job = replace(job, state={**job.state, **answer.state})
        return "failed", {"last_error": "too many steps", "request_summary": seen.get("request", {})}
    except TrackingNotApplicable as exc:
        return "not_applicable", {"note": str(exc)[:255]}
    except PlatformCallFailed as exc:
        retryable = bool(getattr(exc.cause, "retryable", False))
        return ("retry" if retryable else "failed"), {
            "last_error": exc.message[:2000], "request_summary": seen.get("request", {}),
            "response_summary": {"http_status": seen.get("status"), "tries": exc.attempts,
                                 "retry_after": exc.retry_after}}
    finally:
        client.close()


def process(push_id: int, *, now: datetime | None = None, due_only: bool = True, actor: Actor | None = None) -> str:
    """Push one row if it is pending (and due); returns the outcome (see `PushReport`). A
    success and a final failure are internal events on the order's timeline."""
    now = now or timezone.now()
    actor = actor or JOB_ACTOR
    if not _claim(push_id, now, due_only=due_only):
        return "skipped"
    push = TrackingPush.objects.select_related("shop", "order", "shipment").get(pk=push_id)
    try:
        outcome, values = _send(push)
    except Exception as exc:  # noqa: BLE001 - one row's bad data never stops the others
        logger.exception("tracking push %s failed", push_id)
        outcome, values = "retry", {"last_error": f"{type(exc).__name__}: {exc}"[:2000]}
    if "last_error" in values:
        values["last_error"] = scrub(values["last_error"], push.shop)
    attempts = push.attempts + (0 if outcome == "not_applicable" else 1)
    values.update(attempts=attempts, claimed_until=None)
    if outcome == "sent":
        values.update(status=S.SENT, sent_at=now, next_attempt_at=None, last_error="")
    elif outcome == "not_applicable":
        values.update(status=S.NOT_APPLICABLE, next_attempt_at=None)
    elif outcome == "retry" and attempts < MAX_ATTEMPTS:
        retry_after = (values.get("response_summary") or {}).get("retry_after") or 0
        wait = max(backoff(attempts), timedelta(seconds=float(retry_after)))
        values.update(status=S.PENDING, next_attempt_at=now + wait)
        outcome = "waiting"
    else:
        values.update(status=S.FAILED, next_attempt_at=None)
        outcome = "failed"
    with transaction.atomic():
        TrackingPush.objects.filter(pk=push_id).update(**values, updated_at=timezone.now())
        if outcome == "sent":
            events.tracking_pushed(order=push.order, actor=actor, shipment_id=push.shipment_id, platform=push.platform,
                                   tracking_number=push.tracking_number, reference=values["platform_reference"])
        elif outcome == "failed":
            events.tracking_push_failed(order=push.order, actor=actor, shipment_id=push.shipment_id,
                                        platform=push.platform, tracking_number=push.tracking_number,
                                        error=values.get("last_error", ""), attempts=attempts)
    if outcome == "failed":
        logger.warning("tracking push %s (%s %s) failed: %s", push_id, push.platform, push.tracking_number,
                       values.get("last_error"))
    return outcome


def process_many(ids: Iterable[int], *, now: datetime | None = None, due_only: bool = True) -> PushReport:
    report = PushReport()
    for push_id in ids:
        report.add(process(push_id, now=now, due_only=due_only))
    return report


def process_due(*, now: datetime | None = None, limit: int = BATCH) -> PushReport:
    """The schedule: every pending row whose time has come (new ones the task missed, retries)."""
    now = now or timezone.now()
    ids = list(TrackingPush.objects.filter(status=S.PENDING, next_attempt_at__lte=now)
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
               .order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
    return process_many(ids, now=now)


# --- the admin's "retry now" --------------------------------------------------------------------
def retry_now(*, actor: Actor, push_ids: Iterable[int], now: datetime | None = None) -> PushReport:
    """Push these rows now (pending or failed; sent and not-applicable rows are skipped).
    A failed row gets one more try; failing again leaves it failed."""
    if not actor.can(RETRY_PERMISSION):
        from django.utils.translation import gettext

        raise NotPermitted(gettext("没有重新回传运单号的权限"))
    now = now or timezone.now()
    qs = TrackingPush.objects.filter(pk__in=list(push_ids))
    if actor.scope.shop_ids is not None:
        qs = qs.filter(shop_id__in=actor.scope.shop_ids)
    ids = list(qs.order_by("id").values_list("pk", flat=True))
    report = PushReport()
    for push_id in ids:
        with transaction.atomic():
            row = TrackingPush.objects.select_for_update().filter(pk=push_id).first()
            if row is None or row.status not in (S.PENDING, S.FAILED) or (
                    row.claimed_until is not None and row.claimed_until > now):
                report.skipped += 1
                continue
            if row.status == S.FAILED:
                TrackingPush.objects.filter(pk=push_id).update(
                    status=S.PENDING, attempts=min(row.attempts, MAX_ATTEMPTS - 1), next_attempt_at=now)
        outcome = process(push_id, now=now, due_only=False, actor=actor)
        report.add(outcome)
    logger.info("tracking push retry by %s: %s", actor.label, report.as_dict())
    return report
