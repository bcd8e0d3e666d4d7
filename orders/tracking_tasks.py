"""Carrier tracking jobs (django-q2): poll parcels still with the carrier, retry failed pushes.

`poll_shipments` takes the parcels due (`next_poll_at` passed), at most `limit` per provider
per run so a provider's rate limit holds, and asks each one's provider: the sandbox locally,
KDNiao and Kuaidi100 over HTTP with the default active account. After a poll the next one is
`interval` later plus a spread (by shipment id, so parcels shipped together are not polled
together); a failure backs off exponentially (2^n minutes, at most 6 hours). Delivered and
returned parcels are never polled again (`next_poll_at` cleared, and not in the query).
The answers of a round are applied in batches (`orders.shipping.apply_updates`); a batch that
fails is applied again parcel by parcel, so only the parcel with the bad answer backs off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from config.actors import Actor, Source
from orders import shipping
from orders.carriers import ADAPTERS, CarrierError, sandbox
from orders.models import SHIPMENT_AWAY, CarrierAccount, CarrierPush, Shipment, TrackingEvent, TrackingProvider

logger = logging.getLogger(__name__)
ACTOR = Actor.system("tracking_poll", Source.JOB)

MAX_BACKOFF = timedelta(hours=6)
HTTP_TIMEOUT = 10.0


def _setting(name: str, default):
    return getattr(settings, "ORDERHUB", {}).get(name, default)


def poll_interval(provider: str) -> timedelta:
    """How often one parcel is asked about: the sandbox often (the demo moves), real providers less."""
    configured = _setting("TRACKING_POLL_MINUTES", {})  # e.g. {"kdniao": 240}
    minutes = configured.get(provider) if isinstance(configured, dict) else None
    return timedelta(minutes=minutes or (10 if provider == TrackingProvider.SANDBOX else 120))


def spread(shipment_id: int, interval: timedelta) -> timedelta:
    """A fixed offset per parcel within a tenth of the interval."""
    window = max(1, int(interval.total_seconds() // 10))
    return timedelta(seconds=(shipment_id * 7919) % window)


def backoff(failures: int) -> timedelta:
    return min(timedelta(minutes=2 ** min(failures, 12)), MAX_BACKOFF)


@dataclass
class PollResult:
    polled: int = 0
    failed: int = 0
    scans_added: int = 0
    transitions: list[str] = field(default_factory=list)


def due_shipments(*, provider: str, now: datetime, limit: int):
    return (Shipment.objects.filter(provider=provider, status__in=SHIPMENT_AWAY, next_poll_at__lte=now)
            .exclude(tracking_number="").order_by("next_poll_at", "id")[:limit])


def _fetch(shipment: Shipment, account: CarrierAccount | None, client: httpx.Client, now: datetime,
           scans_so_far: int | None = None):
    if shipment.provider == TrackingProvider.SANDBOX:
        if scans_so_far is None:
            scans_so_far = shipment.tracking_events.count()
        return [sandbox.next_update(carrier=shipment.carrier, tracking_number=shipment.tracking_number,
                                    scans_so_far=scans_so_far, now=now)]
    if account is None:
        raise CarrierError(f"没有启用的 {shipment.provider} 账号")
    adapter = ADAPTERS[shipment.provider]
    request = adapter.query_request(account=account, carrier=shipment.carrier,
                                    tracking_number=shipment.tracking_number)
    response = client.post(request.url, data=request.data, timeout=HTTP_TIMEOUT)
    if response.status_code != 200:
        raise CarrierError(f"HTTP {response.status_code}")
    return adapter.parse_query(response.content)


FAILURES = (CarrierError, httpx.HTTPError, ValueError)


def _failed(shipment: Shipment, now: datetime, exc: Exception, result: PollResult) -> None:
    failures = shipment.poll_failures + 1
    Shipment.objects.filter(pk=shipment.pk).update(poll_failures=failures, next_poll_at=now + backoff(failures))
    logger.warning("tracking poll of shipment %s failed (%s): %s", shipment.pk, failures, exc)
    result.failed += 1


def _apply(answers: list[tuple[Shipment, list]], now: datetime, result: PollResult) -> list[Shipment]:
    """Apply the answers in batches (`shipping.apply_updates`); a batch that fails is applied
    again parcel by parcel, so one bad answer backs off only its own parcel."""
    done: list[Shipment] = []
    chunk: list[tuple[Shipment, list]] = []
    scans = 0

    def run(group: list[tuple[Shipment, list]]) -> None:
        pairs = [(s.pk, u) for s, updates in group for u in updates]
        try:
            applied = shipping.apply_updates(pairs=pairs, actor=ACTOR, now=now)
        except FAILURES as exc:
            if len(group) == 1:
                _failed(group[0][0], now, exc, result)
                return
            for one in group:
                run([one])
            return
        result.scans_added += applied.scans_added
        result.transitions += applied.transitions
        done.extend(s for s, _u in group)

    for shipment, updates in answers:
        n = sum(len(u.scans) for u in updates)
        if chunk and (scans + n > shipping.BATCH_SCANS or len(chunk) >= shipping.BATCH_PAIRS):
            run(chunk)
            chunk, scans = [], 0
        chunk.append((shipment, updates))
        scans += n
    if chunk:
        run(chunk)
    return done


def poll_shipments(*, limit: int = 200, now: datetime | None = None, client: httpx.Client | None = None) -> PollResult:
    """One poll round over every provider: ask about each parcel due, then apply the answers
    in batches."""
    now = now or timezone.now()
    result = PollResult()
    own_client = client is None
    client = client or httpx.Client()
    try:
        for provider in TrackingProvider.values:
            account = (CarrierAccount.objects.filter(provider=provider, is_active=True)
                       .order_by("-is_default", "id").first())
            interval = poll_interval(provider)
            due = list(due_shipments(provider=provider, now=now, limit=limit))
            if not due:
                continue
            counts: dict[int, int] = {}
            if provider == TrackingProvider.SANDBOX:  # the sandbox's next step depends on the scans so far
                counts = dict(TrackingEvent.objects.filter(shipment_id__in=[s.pk for s in due]).values(
                    "shipment_id").annotate(n=Count("id")).values_list("shipment_id", "n").order_by())
            answers = []
            for shipment in due:
                try:
                    updates = _fetch(shipment, account, client, now, counts.get(shipment.pk, 0)
                                     if provider == TrackingProvider.SANDBOX else None)
                except FAILURES as exc:
                    _failed(shipment, now, exc, result)
                    continue
                answers.append((shipment, [u for u in updates if u.tracking_number == shipment.tracking_number]))
            done = _apply(answers, now, result)
            result.polled += len(done)
            # Parcels that reached the end were cleared by the service; the rest come back later.
            for shipment in done:
                shipment.poll_failures, shipment.next_poll_at = 0, now + interval + spread(shipment.pk, interval)
            Shipment.objects.filter(status__in=SHIPMENT_AWAY).bulk_update(done, ["poll_failures", "next_poll_at"],
                                                                           batch_size=shipping.BATCH_PAIRS)
    finally:
        if own_client:
            client.close()
    if result.polled or result.failed:
        logger.info("tracking poll: %s polled, %s failed, %s scans, %s transitions", result.polled, result.failed,
                    result.scans_added, len(result.transitions))
    return result


def retry_failed_pushes(*, limit: int = 100) -> int:
    """Process again the stored pushes that failed (at most 10 tries each)."""
    from orders.carrier_hooks import process_push

    done = 0
    for push_id in CarrierPush.objects.filter(status=CarrierPush.Status.FAILED, attempts__lt=10).order_by(
            "id").values_list("pk", flat=True)[:limit]:
        if process_push(push_id).status == CarrierPush.Status.PROCESSED:
            done += 1
    return done
