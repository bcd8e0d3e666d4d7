"""POST /hooks/carriers/<carrier>/ — carrier tracking pushes (KDNiao, Kuaidi100).

Each push is verified with the provider's own scheme first (a bad or missing signature is a
401 and nothing is stored), then stored raw in the durable inbox (`CarrierPush`), then
processed — inline for now, idempotently: scans are deduplicated by key, so a push
processed twice (a retry, or the carrier sending it again) changes nothing the second time.
All the parcels of one push go through `shipping.record_tracking` together (scans applied in
batches, in one transaction with the push's status: a push that fails leaves no scan behind).
A push that fails to process stays in the inbox as `failed` and is retried by
`orders.tracking_tasks.retry_failed_pushes`; the carrier still gets its acknowledgement,
because the push is safely stored.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from django.db import transaction
from django.http import Http404, JsonResponse, QueryDict
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.actors import Actor, Source
from orders import shipping
from orders.carriers import ADAPTERS, BadSignature
from orders.models import CarrierAccount, CarrierPush

logger = logging.getLogger("orderhub.carriers")
ACTOR = Actor.system("carrier_push", Source.PLATFORM)


def _form(body: str) -> dict[str, str]:
    return QueryDict(body, encoding="utf-8").dict()


def process_push(push_id: int) -> CarrierPush:
    """Parse a stored push and apply its scans. Safe to run again on the same push."""
    push = CarrierPush.objects.get(pk=push_id)
    adapter = ADAPTERS[push.provider]
    push.attempts += 1
    try:
        with transaction.atomic():
            updates = adapter.parse_push(_form(push.body))
            result = shipping.record_tracking(updates=updates, actor=ACTOR)
    except Exception as exc:  # noqa: BLE001 - stored and visible in the admin, retried by a job
        logger.exception("carrier push %s failed", push.pk)
        push.status, push.error = CarrierPush.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        push.save(update_fields=["status", "error", "attempts"])
        return push
    push.status, push.error, push.result = CarrierPush.Status.PROCESSED, "", result.as_dict()
    push.processed_at = timezone.now()
    push.save(update_fields=["status", "error", "result", "processed_at", "attempts"])
    return push


@csrf_exempt
@require_POST
def carrier_push(request, carrier: str):
    adapter = ADAPTERS.get(carrier)
    if adapter is None:
        raise Http404
    body = request.body.decode("utf-8", errors="replace")
    if request.content_type == "application/json":
        form = _json_form(body)
    elif request.content_type == "multipart/form-data":
        form = request.POST.dict()
    else:  # application/x-www-form-urlencoded, as both providers send
        form = _form(body)
    accounts = list(CarrierAccount.objects.filter(provider=carrier, is_active=True).order_by("id"))
    try:
        account = adapter.verify_push(form, accounts=accounts)
    except BadSignature as exc:
        logger.warning("carrier push %s refused: %s", carrier, exc)
        return JsonResponse(adapter.push_ack(form, ok=False, reason=str(exc)), status=401,
                            json_dumps_params={"ensure_ascii": False})
    if request.content_type in ("application/json", "multipart/form-data"):
        body = urlencode(form)  # stored as the form the providers normally send
    push = CarrierPush.objects.create(provider=carrier, account=account, body=body)
    process_push(push.pk)
    return JsonResponse(adapter.push_ack(form, ok=True), json_dumps_params={"ensure_ascii": False})


def _json_form(body: str) -> dict[str, str]:
    """The same fields sent as a JSON object (some gateways forward pushes that way)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in data.items()}



urlpatterns = [path("<slug:carrier>/", carrier_push, name="carrier-push")]
