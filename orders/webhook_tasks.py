"""Webhook inbox processing (django-q2). Safe to run twice: an event is claimed with one
conditional UPDATE (a batch with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL), and the
upsert behind it is idempotent on (shop, platform_order_id).

- `drain_webhook_inbox()` — what a stored delivery triggers (`orders.webhooks.request_drain`,
  coalesced in Redis: at most one drain queued at a time): takes up to `DRAIN_BATCH` received
  events, oldest first, and ingests each shop's events **together** through the bulk path
  (`orders.ingest.ingest_payloads`, the same path as sync and ``manage.py ingest``), then marks
  each event on its own: done with its own result, or failed with its own error — one bad
  event never fails its neighbours; the same order twice in one batch is one order. It loops
  until the inbox has nothing received left (within `DRAIN_BUDGET_SECONDS`, then hands over to
  a fresh drain task).
- `process_webhook_event(pk)` — one event (the retry sweep, an admin replay). Success →
  ``done``; an error → ``failed`` with the error and ``next_attempt_at = now + 2^attempts
  minutes``; after `max_attempts()` attempts → ``dead`` (kept, visible in the admin with its
  error, replayable there).
- `retry_webhook_events()` — the "webhook inbox retry" schedule (every minute): processes the
  events that are due: failed ones whose back-off has passed, received ones no worker took
  (broker down), and processing ones whose worker died (claimed longer ago than
  `CLAIM_TIMEOUT`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from config import notify
from config.actors import Actor
from orders.models import Platform, WebhookEvent, WebhookStatus

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 6  # back-off 2, 4, 8, 16, 32 min: dead about an hour after the first failure
# A claimed event not finished after this long is taken again (its worker died). Longer than the
# django-q2 task timeout (Q_CLUSTER["timeout"]), so a slow but live worker is never overtaken.
CLAIM_TIMEOUT = timedelta(minutes=10)
SWEEP_BATCH = 100
SWEEP_BUDGET_SECONDS = 60  # leave room under Q_CLUSTER["timeout"]
DRAIN_BATCH = 200  # events per claim: the bulk ingest writes them in one transaction
DRAIN_BUDGET_SECONDS = 30  # then a fresh drain task takes over (well under Q_CLUSTER["timeout"])


class WebhookProcessingError(Exception):
    """The event could not be turned into orders; the message is what the admin shows."""


def max_attempts() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: 2^attempts minutes."""
    return timedelta(minutes=2 ** max(1, attempts))


def webhook_actor(shop) -> Actor:
    """Platform traffic acts as the shop (as sync and ``manage.py ingest`` do)."""
    from orders.ingest import platform_actor

    return platform_actor(shop)


def payloads_of(event: WebhookEvent) -> list[dict] | None:
    """The raw order payloads in this event, or None when its topic is not about orders."""
    if event.platform == Platform.SHOPIFY:
        from orders.platforms.shopify import ORDER_TOPICS, TOPIC_HEADER, parse_webhook

        if event.topic not in ORDER_TOPICS:
            return None
        try:
            parsed = parse_webhook(event.body.encode("utf-8"), {TOPIC_HEADER: event.topic})
        except ValueError as exc:
            raise WebhookProcessingError(str(exc)) from None
        return [parsed.payload]
    try:
        doc = json.loads(event.body)
    except ValueError as exc:  # stored bodies were JSON; kept for hand-edited rows
        raise WebhookProcessingError(f"body is not JSON: {exc}") from None
    from orders.ingest import payloads_from_document

    try:
        return [p for p in payloads_from_document(event.shop, doc)]
    except ValueError as exc:
        raise WebhookProcessingError(str(exc)) from None


def _ingest(event: WebhookEvent, payloads: list[dict]) -> str:
    from orders.ingest import ingest_payloads

    if not payloads:
        raise WebhookProcessingError("no order in the body")
    report = ingest_payloads(shop=event.shop, payloads=payloads, actor=webhook_actor(event.shop))
    summary = f"created={report.created} updated={report.updated} unchanged={report.unchanged}"
    if report.failed:
        # Orders of this event that did go in stay in; a retry finds them unchanged.
        reasons = "; ".join(f"#{position}: {reason}" for position, reason in report.failures)
        raise WebhookProcessingError(f"{summary} failed={report.failed}: {reasons}")
    if getattr(report, "allocation_errors", None):  # stored; allocation is retried by its own job
        summary += f" allocation_errors={len(report.allocation_errors)}"
    return summary


def _claim(pk: int, *, due_only: bool) -> bool:
    """Atomically take the event (received/failed, or processing with an expired claim)."""
    now = timezone.now()
    takeable = Q(status__in=[WebhookStatus.RECEIVED, WebhookStatus.FAILED]) | Q(
        status=WebhookStatus.PROCESSING, next_attempt_at__lte=now)
    if due_only:
        takeable &= Q(next_attempt_at__lte=now)
    return bool(WebhookEvent.objects.filter(takeable, pk=pk).update(
        status=WebhookStatus.PROCESSING, attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_TIMEOUT))


def process_webhook_event(pk: int, *, due_only: bool = False) -> str:
    """Process one inbox event. Returns its status afterwards ("skipped" if someone else holds it
    or it is finished). Never raises for a processing error: the error is stored on the event."""
    if not _claim(pk, due_only=due_only):
        return "skipped"
    event = WebhookEvent.objects.select_related("shop").get(pk=pk)
    try:
        payloads = payloads_of(event)
        result = "ignored: topic not about orders" if payloads is None else _ingest(event, payloads)
    except Exception as exc:  # noqa: BLE001 - any failure is the event's, kept for the admin
        return _mark_failed(event, exc)
    _mark_done([event.pk], result)
    return WebhookStatus.DONE


def _mark_failed(event: WebhookEvent, exc: Exception) -> str:
    """The claimed event failed: ``failed`` with its back-off, or ``dead`` after the last attempt."""
    error = str(exc) if isinstance(exc, WebhookProcessingError) else f"{type(exc).__name__}: {exc}"
    dead = event.attempts >= max_attempts()
    WebhookEvent.objects.filter(pk=event.pk, status=WebhookStatus.PROCESSING).update(
        status=WebhookStatus.DEAD if dead else WebhookStatus.FAILED,
        last_error=error[:5000],
        next_attempt_at=None if dead else timezone.now() + backoff(event.attempts))
    if dead:
        notify.alert("webhook_dead", key=f"webhook_dead:{event.pk}",
                     text=f"{event.platform} 推送 #{event.pk}({event.topic})处理 {event.attempts} 次仍失败: {error}"[:400],
                     link=reverse("admin:orders_webhookevent_change", args=[event.pk]))
    log = logger.error if dead else logger.warning
    log("webhook %s (%s %s) attempt %d failed%s: %s", event.pk, event.platform, event.topic, event.attempts,
        ", giving up" if dead else "", error, exc_info=not isinstance(exc, WebhookProcessingError))
    return WebhookStatus.DEAD if dead else WebhookStatus.FAILED


def _mark_done(pks: list[int], result: str) -> None:
    WebhookEvent.objects.filter(pk__in=pks, status=WebhookStatus.PROCESSING).update(
        status=WebhookStatus.DONE, processed_at=timezone.now(), next_attempt_at=None,
        last_error="", result=result[:200])


# --- the batched drain ---------------------------------------------------------------------------

def claim_batch(limit: int = DRAIN_BATCH) -> list[int]:
    """Take up to ``limit`` received events, oldest first, in one short transaction. On
    PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED``, so two drains at once take
    disjoint batches; SQLite serializes the transaction (``transaction_mode`` IMMEDIATE)."""
    with transaction.atomic():
        pending = WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        pks = list(pending.values_list("pk", flat=True)[:limit])
        if pks:
            WebhookEvent.objects.filter(pk__in=pks, status=WebhookStatus.RECEIVED).update(
                status=WebhookStatus.PROCESSING, attempts=F("attempts") + 1,
                next_attempt_at=timezone.now() + CLAIM_TIMEOUT)
    return pks


def _event_summary(report, positions: range) -> str:
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    allocation_failed = {order_id for order_id, _reason in report.allocation_errors}
    allocation_errors = 0
    for position in positions:
        if position not in report.outcomes:  # failed: reported with its reason
            continue
        outcome, order_id = report.outcomes[position]
        counts[outcome] += 1
        allocation_errors += order_id in allocation_failed
    summary = " ".join(f"{k}={v}" for k, v in counts.items())
    return summary + (f" allocation_errors={allocation_errors}" if allocation_errors else "")


def _ingest_together(shop, parsed: list[tuple[WebhookEvent, list[dict]]]) -> dict[str, int]:
    """One shop's events through one `ingest_payloads` call (the bulk path); each event is then
    done or failed on its own. If the call itself breaks, each event goes alone."""
    from orders.ingest import ingest_payloads

    payloads: list[dict] = []
    spans: list[tuple[WebhookEvent, range]] = []
    for event, event_payloads in parsed:
        spans.append((event, range(len(payloads) + 1, len(payloads) + len(event_payloads) + 1)))
        payloads.extend(event_payloads)
    try:
        report = ingest_payloads(shop=shop, payloads=payloads, actor=webhook_actor(shop))
    except Exception:  # noqa: BLE001 - e.g. the database went away mid-batch: one by one
        logger.warning("webhook drain: %d events of %s together failed; one by one", len(parsed), shop.code,
                       exc_info=True)
        return _ingest_each(parsed)
    failures = defaultdict(list)
    for position, reason in report.failures:
        failures[position].append(reason)
    counts: dict[str, int] = {}
    done: dict[str, list[int]] = defaultdict(list)
    for event, positions in spans:
        reasons = [f"#{p - positions.start + 1}: {r}" for p in positions for r in failures.get(p, [])]
        summary = _event_summary(report, positions)
        if reasons:
            outcome = _mark_failed(event, WebhookProcessingError(f"{summary} failed={len(reasons)}: {'; '.join(reasons)}"))
        else:
            done[summary].append(event.pk)
            outcome = WebhookStatus.DONE
        counts[outcome] = counts.get(outcome, 0) + 1
    for summary, pks in done.items():  # one UPDATE per distinct result, not per event
        _mark_done(pks, summary)
    return counts


def _ingest_each(parsed: list[tuple[WebhookEvent, list[dict]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event, payloads in parsed:
        try:
            result = _ingest(event, payloads)
        except Exception as exc:  # noqa: BLE001
            outcome = _mark_failed(event, exc)
        else:
            _mark_done([event.pk], result)
            outcome = WebhookStatus.DONE
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def process_claimed(pks: list[int]) -> dict[str, int]:
    """Process events this drain has claimed: parse each, then each shop's together."""
    counts: dict[str, int] = {}

    def add(more: dict[str, int]) -> None:
        for key, value in more.items():
            counts[key] = counts.get(key, 0) + value

    by_shop: dict[int, list[tuple[WebhookEvent, list[dict]]]] = defaultdict(list)
    shops = {}
    ignored: list[int] = []
    for event in WebhookEvent.objects.select_related("shop").filter(pk__in=pks).order_by("pk"):
        try:
            payloads = payloads_of(event)
            if payloads is not None and not payloads:
                raise WebhookProcessingError("no order in the body")
        except Exception as exc:  # noqa: BLE001
            add({_mark_failed(event, exc): 1})
            continue
        if payloads is None:
            ignored.append(event.pk)
            continue
        shops[event.shop_id] = event.shop
        by_shop[event.shop_id].append((event, payloads))
    if ignored:
        _mark_done(ignored, "ignored: topic not about orders")
        add({WebhookStatus.DONE: len(ignored)})
    for shop_id, parsed in by_shop.items():
        add(_ingest_each(parsed) if len(parsed) == 1 else _ingest_together(shops[shop_id], parsed))
    return counts


def drain_webhook_inbox(*, batch: int = DRAIN_BATCH, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> dict[str, int]:
    """The task a stored delivery triggers: process received events in batches until none is
    left. Before it stops it clears the "drain queued" signal and looks once more, so an event
    stored meanwhile either is seen here or queues a new drain (never stranded). Returns counts
    per resulting status."""
    from orders.webhooks import clear_drain_signal, request_drain

    started = time.monotonic()
    counts: dict[str, int] = {}
    while True:
        pks = claim_batch(batch)
        if not pks:
            clear_drain_signal()
            pks = claim_batch(batch)
            if not pks:
                break
        for key, value in process_claimed(pks).items():
            counts[key] = counts.get(key, 0) + value
        if time.monotonic() - started > budget_seconds:
            clear_drain_signal()
            request_drain()  # a fresh task carries on; this one ends within the cluster's timeout
            break
    if counts:
        logger.info("webhook drain: %s", counts)
    return counts


def due_event_ids(limit: int = SWEEP_BATCH) -> list[int]:
    return list(
        WebhookEvent.objects.filter(
            status__in=[WebhookStatus.RECEIVED, WebhookStatus.FAILED, WebhookStatus.PROCESSING],
            next_attempt_at__lte=timezone.now(),
        ).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit]
    )


def retry_webhook_events() -> dict[str, int]:
    """The "webhook inbox retry" schedule: process what is due, oldest first, within a time
    budget (the rest waits for the next minute). Returns counts per resulting status."""
    started = time.monotonic()
    counts: dict[str, int] = {}
    for pk in due_event_ids():
        if time.monotonic() - started > SWEEP_BUDGET_SECONDS:
            break
        outcome = process_webhook_event(pk, due_only=True)
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        logger.info("webhook inbox retry: %s", counts)
    return counts
