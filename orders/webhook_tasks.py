"""Webhook inbox processing (django-q2). Safe to run twice: an event is claimed with one
conditional UPDATE, and the upsert behind it is idempotent on (shop, platform_order_id).

- `process_webhook_event(pk)` — enqueued when a delivery is stored: normalizes the body through
  the shop's adapter and upserts the order(s) (`orders.ingest.ingest_payloads`, the same path as
  sync and ``manage.py ingest``). Success → ``done``; an error → ``failed`` with the error and
  ``next_attempt_at = now + 2^attempts minutes``; after `max_attempts()` attempts → ``dead``
  (kept, visible in the admin with its error, replayable there).
- `retry_webhook_events()` — the "webhook inbox retry" schedule (every minute): processes the
  events that are due: failed ones whose back-off has passed, received ones no worker took
  (broker down), and processing ones whose worker died (claimed longer ago than
  `CLAIM_TIMEOUT`).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from config.actors import Actor
from orders.models import Platform, WebhookEvent, WebhookStatus

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 6  # back-off 2, 4, 8, 16, 32 min: dead about an hour after the first failure
# A claimed event not finished after this long is taken again (its worker died). Longer than the
# django-q2 task timeout (Q_CLUSTER["timeout"]), so a slow but live worker is never overtaken.
CLAIM_TIMEOUT = timedelta(minutes=10)
SWEEP_BATCH = 100
SWEEP_BUDGET_SECONDS = 60  # leave room under Q_CLUSTER["timeout"]


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
        error = str(exc) if isinstance(exc, WebhookProcessingError) else f"{type(exc).__name__}: {exc}"
        dead = event.attempts >= max_attempts()
        WebhookEvent.objects.filter(pk=pk, status=WebhookStatus.PROCESSING).update(
            status=WebhookStatus.DEAD if dead else WebhookStatus.FAILED,
            last_error=error[:5000],
            next_attempt_at=None if dead else timezone.now() + backoff(event.attempts))
        log = logger.error if dead else logger.warning
        log("webhook %s (%s %s) attempt %d failed%s: %s", pk, event.platform, event.topic, event.attempts,
            ", giving up" if dead else "", error, exc_info=not isinstance(exc, WebhookProcessingError))
        return WebhookStatus.DEAD if dead else WebhookStatus.FAILED
    WebhookEvent.objects.filter(pk=pk, status=WebhookStatus.PROCESSING).update(
        status=WebhookStatus.DONE, processed_at=timezone.now(), next_attempt_at=None,
        last_error="", result=result[:200])
    return WebhookStatus.DONE


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
