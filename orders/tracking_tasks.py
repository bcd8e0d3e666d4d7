"""Carrier tracking jobs (django-q2): poll parcels still with the carrier, retry failed pushes.

`poll_shipments` takes the parcels due (`next_poll_at` passed), at most `limit` per provider
per run so a provider's rate limit holds, and asks each one's provider: the sandbox locally,
KDNiao and Kuaidi100 over HTTP with the default active account. After a poll the next one is
`interval` later plus a spread (by shipment id, so parcels shipped together are not polled
together); a failure backs off exponentially (2^n minutes, at most 6 hours). Delivered and
returned parcels are never polled again (`next_poll_at` cleared, and not in the query).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.utils import timezone

from config.actors import Actor, Source
from orders import shipping
from orders.carriers import ADAPTERS, CarrierError, sandbox
from orders.models import SHIPMENT_AWAY, CarrierAccount, CarrierPush, Shipment, TrackingProvider

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


def _fetch(shipment: Shipment, account: CarrierAccount | None, client: httpx.Client, now: datetime):
    if shipment.provider == TrackingProvider.SANDBOX:
        return [sandbox.next_update(carrier=shipment.carrier, tracking_number=shipment.tracking_number,
                                    scans_so_far=shipment.tracking_events.count(), now=now)]
    if account is None:
        raise CarrierError(f"没有启用的 {shipment.provider} 账号")
    adapter = ADAPTERS[shipment.provider]
    request = adapter.query_request(account=account, carrier=shipment.carrier,
                                    tracking_number=shipment.tracking_number)
    response = client.post(request.url, data=request.data, timeout=HTTP_TIMEOUT)
    if response.status_code != 200:
        raise CarrierError(f"HTTP {response.status_code}")
    return adapter.parse_query(response.content)


def poll_shipments(*, limit: int = 200, now: datetime | None = None, client: httpx.Client | None = None) -> PollResult:
    """One poll round over every provider."""
    now = now or timezone.now()
    result = PollResult()
    own_client = client is None
    client = client or httpx.Client()
    try:
        for provider in TrackingProvider.values:
            account = (CarrierAccount.objects.filter(provider=provider, is_active=True)
                       .order_by("-is_default", "id").first())
            interval = poll_interval(provider)
            for shipment in list(due_shipments(provider=provider, now=now, limit=limit)):
                try:
                    updates = _fetch(shipment, account, client, now)
                    for update in updates:
                        if update.tracking_number != shipment.tracking_number:
                            continue
                        applied = shipping.apply_tracking(shipment_id=shipment.pk, update=update, actor=ACTOR, now=now)
                        result.scans_added += applied.scans_added
                        result.transitions += applied.transitions
                except (CarrierError, httpx.HTTPError, ValueError) as exc:
                    failures = shipment.poll_failures + 1
                    Shipment.objects.filter(pk=shipment.pk).update(poll_failures=failures,
                                                                   next_poll_at=now + backoff(failures))
                    logger.warning("tracking poll of shipment %s failed (%s): %s", shipment.pk, failures, exc)
                    result.failed += 1
                    continue
                result.polled += 1
                # Parcels that reached the end were cleared by the service; the rest come back later.
                Shipment.objects.filter(pk=shipment.pk, status__in=SHIPMENT_AWAY).update(
                    poll_failures=0, next_poll_at=now + interval + spread(shipment.pk, interval))
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
