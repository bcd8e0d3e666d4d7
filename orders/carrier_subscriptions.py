"""Subscribing parcels at their tracking provider (轨迹订阅), so the provider pushes their scans.

A carrier push (`POST /hooks/carriers/<provider>/`) only ever arrives for a tracking number
someone subscribed. The job `subscribe_shipments` (schedule "carrier subscriptions", every
5 minutes) takes the parcels with the carrier — shipped, in transit or in exception, with a
tracking number, tracked by a provider whose default account has **订阅推送** on — that have
no subscription yet, and subscribes each once:

- **KDNiao**: RequestType 1008 on the query endpoint, signed like a query
  (`kdniao.subscribe_request`); KDNiao pushes to the URL set in its console, which must be
  `<public base>/hooks/carriers/kdniao/`.
- **Kuaidi100**: `POST https://poll.kuaidi100.com/poll` (`kuaidi100.subscribe_request`) with
  `callbackurl = CARRIER_CALLBACK_BASE_URL + /hooks/carriers/kuaidi100/` and the account's
  salt, which then signs the pushes. Without `CARRIER_CALLBACK_BASE_URL` the row fails with
  that reason (nothing is sent).

One `CarrierSubscription` row per parcel records the outcome. A timeout, a 5xx or the
provider's "server error" is retried after 2, 4, 8 … minutes (6 tries); a refusal (unknown
number, wrong key) is `failed` at once with the provider's words, and "重新订阅" in the admin
queues it again. "Already subscribed" counts as subscribed. Polling stays on as the safety
net: a lost push is still caught by the next poll.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders.carriers import kdniao, kuaidi100
from orders.carriers.base import CarrierError
from orders.models import SHIPMENT_AWAY, CarrierAccount, CarrierSubscription, Shipment, TrackingProvider

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 6
HTTP_TIMEOUT = 10.0
S = CarrierSubscription.Status
PROVIDERS = (TrackingProvider.KDNIAO, TrackingProvider.KUAIDI100)


def callback_url(provider: str) -> str:
    base = (getattr(settings, "CARRIER_CALLBACK_BASE_URL", "") or "").rstrip("/")
    return f"{base}/hooks/carriers/{provider}/" if base else ""


def subscribing_account(provider: str) -> CarrierAccount | None:
    return (CarrierAccount.objects.filter(provider=provider, is_active=True, is_default=True, subscribe=True)
            .order_by("id").first())


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2 ** attempts, 240))


def _phone(shipment: Shipment) -> str:
    phone = "".join(ch for ch in (shipment.order.receiver_phone or "") if ch.isdigit())
    return phone if len(phone) >= 4 else ""  # masked or encrypted receivers give no usable digits


def _send(row: CarrierSubscription, account: CarrierAccount, client: httpx.Client) -> None:
    shipment = row.shipment
    provider = row.provider
    if provider == TrackingProvider.KUAIDI100:
        url = callback_url(provider)
        if not url:
            raise _Refused("未设置 CARRIER_CALLBACK_BASE_URL:快递100 需要推送地址")
        request = kuaidi100.subscribe_request(account=account, carrier=shipment.carrier,
                                              tracking_number=shipment.tracking_number, phone=_phone(shipment),
                                              callback_url=url)
    else:
        request = kdniao.subscribe_request(account=account, carrier=shipment.carrier,
                                           tracking_number=shipment.tracking_number, phone=_phone(shipment))
    try:
        response = client.post(request.url, data=request.data)
    except httpx.HTTPError as exc:
        raise _Retry(f"{type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"HTTP {response.status_code}")
    try:
        if provider == TrackingProvider.KUAIDI100:
            ok, words, retry = kuaidi100.parse_subscribe(response.content)
        else:
            (ok, words), retry = kdniao.parse_subscribe(response.content), False
    except CarrierError as exc:
        raise _Refused(str(exc)[:300]) from exc
    if ok:
        row.answer = words
        return
    raise (_Retry if retry else _Refused)(words)


class _Retry(Exception):
    pass


class _Refused(Exception):
    pass


def _claim_new(provider: str, account: CarrierAccount, limit: int) -> None:
    """Rows for the parcels of `provider` with the carrier that have none yet."""
    missing = (Shipment.objects.filter(provider=provider, status__in=SHIPMENT_AWAY, subscription__isnull=True)
               .exclude(tracking_number="").order_by("id").values_list("pk", flat=True)[:limit])
    rows = [CarrierSubscription(shipment_id=pk, provider=provider, account=account) for pk in missing]
    CarrierSubscription.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent run's rows win


def subscribe_shipments(*, limit: int = 200, now=None, transport: httpx.BaseTransport | None = None) -> dict:
    """The job: subscribe new parcels and retry due failures, at most `limit` per provider."""
    now = now or timezone.now()
    counts = {"subscribed": 0, "failed": 0, "retry": 0}
    with httpx.Client(timeout=HTTP_TIMEOUT, transport=transport) as client:
        for provider in PROVIDERS:
            account = subscribing_account(provider)
            if account is None:
                continue
            _claim_new(provider, account, limit)
            due = (CarrierSubscription.objects.filter(provider=provider, status=S.PENDING)
                   .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                   .select_related("shipment__order").order_by("id")[:limit])
            for row in due:
                outcome = _attempt(row, account, client, now)
                if outcome:
                    counts[outcome] += 1
    if any(counts.values()):
        logger.info("carrier subscriptions: %s", counts)
    return counts


def _attempt(row: CarrierSubscription, account: CarrierAccount, client: httpx.Client, now) -> str | None:
    # Claim the row (a second worker finds it no longer due), then call the provider.
    claimed = CarrierSubscription.objects.filter(pk=row.pk, status=S.PENDING).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).update(
        next_attempt_at=now + timedelta(minutes=5), attempts=row.attempts + 1, account=account)
    if not claimed:
        return None  # another worker took it
    row.attempts += 1
    try:
        _send(row, account, client)
    except _Retry as exc:
        failed = row.attempts >= MAX_ATTEMPTS
        CarrierSubscription.objects.filter(pk=row.pk).update(
            status=S.FAILED if failed else S.PENDING, last_error=str(exc)[:300],
            next_attempt_at=None if failed else now + _backoff(row.attempts))
        return "failed" if failed else "retry"
    except _Refused as exc:
        CarrierSubscription.objects.filter(pk=row.pk).update(status=S.FAILED, last_error=str(exc)[:300],
                                                             next_attempt_at=None)
        return "failed"
    CarrierSubscription.objects.filter(pk=row.pk).update(status=S.SUBSCRIBED, subscribed_at=timezone.now(),
                                                         answer=row.answer, last_error="", next_attempt_at=None)
    return "subscribed"


@transaction.atomic
def resubscribe(ids) -> int:
    """The admin's 重新订阅: failed rows go back to pending, tried again by the next run."""
    return CarrierSubscription.objects.filter(pk__in=list(ids), status=S.FAILED).update(
        status=S.PENDING, attempts=0, next_attempt_at=None, last_error="")
