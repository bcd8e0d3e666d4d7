"""Platform webhooks: ``POST /hooks/<platform>/<shop_code>/`` → verified → durable inbox → 200.

The request does as little as it can: find the shop, read at most
``settings.WEBHOOK_MAX_BODY_BYTES`` of the body, check the signature over the raw bytes, check
that the body is JSON, store one `orders.models.WebhookEvent` row (one autocommitted INSERT:
it is durable before the answer) and answer. It skips the middleware it does not use
(`PlatformHookFastPath`). Processing (the adapter's normalization and `orders.ingest`) runs
later in a django-q2 task that drains the inbox in batches
(`orders.webhook_tasks.drain_webhook_inbox`); a delivery only makes sure one is queued
(`request_drain`: one Redis SET NX, a task only when none is queued). The "webhook inbox
retry" schedule picks up whatever the drains did not finish.

Answers, in the order they are decided:

- 405 for any method but POST (no session, no CSRF token, no login: the signature is the
  authentication);
- 404 for an unknown or inactive shop, an unknown platform, or a shop of another platform
  than the URL names;
- 413 when the body is larger than the limit (``Content-Length`` alone decides when it is
  sent; never more than limit + 1 bytes are read);
- 401 for a missing or wrong signature — nothing of that request is stored;
- 400 for a body that is not JSON (after the signature checked out);
- 200 ``{"status": "stored", "id": N}``, or ``{"status": "duplicate", "id": N}`` for a
  redelivery (same event id, or the same body bytes, for this shop): one row, one effect.

Signatures:

- Shopify: ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(shop.webhook_secret, raw body)),
  checked by `orders.platforms.shopify.verify_webhook` (constant time). Delivery id:
  ``X-Shopify-Webhook-Id`` (the same on a retry), else ``X-Shopify-Event-Id``; topic:
  ``X-Shopify-Topic``.
- Every other platform (Taobao, JD, PDD, Douyin, our mini-program, Amazon, distributor,
  sandbox): Order Hub's own scheme, since their order pushes reach us through a relay of ours
  (the platforms' own push channels — Taobao JDP/TMC, PDD/Douyin message services — are not
  plain signed HTTP posts to a seller URL): ``X-OrderHub-Signature`` = lowercase hex
  HMAC-SHA256(shop.webhook_secret, raw body), optionally prefixed ``sha256=``; optional
  ``X-OrderHub-Event-Id`` (delivery id, for de-duplication) and ``X-OrderHub-Topic``. The body
  is what ``manage.py ingest`` takes: one order, the single-order response, a list, or the
  list response.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from contextlib import nullcontext

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.actors import Actor
from config.errors import NotFound, NotPermitted
from orders.models import Platform, Shop, WebhookEvent, WebhookStatus

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
ORDERHUB_SIGNATURE_HEADER = "X-OrderHub-Signature"
ORDERHUB_EVENT_ID_HEADER = "X-OrderHub-Event-Id"
ORDERHUB_TOPIC_HEADER = "X-OrderHub-Topic"
REPLAY_PERMISSION = "orders.change_shop"  # supervisors and operations (shop configuration)
# How long after receipt the retry sweep takes over a row that no worker has picked up.
UNCLAIMED_GRACE_SECONDS = 60


# --- verification --------------------------------------------------------------------------------

def orderhub_signature(raw_body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body — the value of ``X-OrderHub-Signature``."""
    return hmac.new(secret.encode("utf-8"), bytes(raw_body), hashlib.sha256).hexdigest()


def verify_orderhub_signature(raw_body: bytes, signature: str | None, secret: str) -> bool:
    if not signature or not secret:
        return False
    value = signature.strip()
    if value.lower().startswith("sha256="):
        value = value[len("sha256="):]
    expected = orderhub_signature(raw_body, secret)
    return hmac.compare_digest(expected.encode("ascii"), value.lower().encode("ascii", "replace"))


def _verify_shopify(raw_body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    from orders.platforms.shopify import HMAC_HEADER, verify_webhook

    return verify_webhook(raw_body, headers.get(HMAC_HEADER), secret)


def _verify_orderhub(raw_body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    return verify_orderhub_signature(raw_body, headers.get(ORDERHUB_SIGNATURE_HEADER), secret)


@dataclass(frozen=True)
class HookScheme:
    """How one platform signs its webhooks and names a delivery."""

    verify: Callable[[bytes, Mapping[str, str], str], bool]
    event_id_headers: tuple[str, ...]
    topic_header: str
    kept_header_prefixes: tuple[str, ...]


ORDERHUB_SCHEME = HookScheme(_verify_orderhub, (ORDERHUB_EVENT_ID_HEADER,), ORDERHUB_TOPIC_HEADER, ("X-OrderHub-",))
SCHEMES: dict[str, HookScheme] = {
    Platform.SHOPIFY: HookScheme(_verify_shopify, ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id"),
                                 "X-Shopify-Topic", ("X-Shopify-",)),
}


def scheme_for(platform: str) -> HookScheme:
    return SCHEMES.get(platform, ORDERHUB_SCHEME)


def kept_headers(headers: Mapping[str, str], scheme: HookScheme) -> dict[str, str]:
    """The headers worth keeping with the event: the platform's own, content type, user agent."""
    kept = {}
    for name, value in headers.items():
        if name.lower().startswith(tuple(p.lower() for p in scheme.kept_header_prefixes)) or name.lower() in (
                "content-type", "user-agent"):
            kept[name] = value
    return kept


def _first_header(headers: Mapping[str, str], names: Iterable[str], *, limit: int) -> str:
    for name in names:
        value = (headers.get(name) or "").strip()
        if value:
            return value[:limit]
    return ""


# --- the inbox -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Receipt:
    event: WebhookEvent
    duplicate: bool


def store_event(*, shop: Shop, raw_body: bytes, headers: Mapping[str, str]) -> Receipt:
    """Store one verified delivery (or recognise a redelivery) and enqueue its processing when
    the row is committed. The caller has verified the signature and that the body is JSON."""
    scheme = scheme_for(shop.platform)
    event_id = _first_header(headers, scheme.event_id_headers, limit=200)
    digest = hashlib.sha256(raw_body).hexdigest()
    now = timezone.now()
    try:
        # Outside a transaction the INSERT commits by itself: one round trip, not BEGIN/INSERT/
        # COMMIT. Inside one (a caller's, a test's) a savepoint keeps a duplicate from breaking it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            event = WebhookEvent.objects.create(
                shop=shop, platform=shop.platform,
                topic=_first_header(headers, (scheme.topic_header,), limit=100),
                event_id=event_id, body=raw_body.decode("utf-8"), body_sha256=digest,
                headers=kept_headers(headers, scheme), received_at=now,
                status=WebhookStatus.RECEIVED,
                next_attempt_at=now + timedelta(seconds=UNCLAIMED_GRACE_SECONDS),
            )
            transaction.on_commit(lambda pk=event.pk: enqueue_processing(pk))
    except IntegrityError:
        # A redelivery: same event id or same bytes. Count it; it is already being handled.
        existing = WebhookEvent.objects.filter(shop=shop, body_sha256=digest)
        if event_id:
            existing = existing | WebhookEvent.objects.filter(shop=shop, event_id=event_id)
        event = existing.order_by("pk").first()
        if event is None:  # pragma: no cover - the conflicting row vanished (deleted meanwhile)
            raise
        WebhookEvent.objects.filter(pk=event.pk).update(duplicates=F("duplicates") + 1)
        return Receipt(event, duplicate=True)
    return Receipt(event, duplicate=False)


_broker = None
# "A drain task is queued or running" (Redis broker only). Set with SET NX by the first delivery
# that finds it unset, cleared by the drain before its last look at the inbox. The expiry only
# matters if a drain dies without clearing it: deliveries then queue a new one after this long
# (and the retry sweep takes anything left after `UNCLAIMED_GRACE_SECONDS`).
DRAIN_SIGNAL_KEY = "orderhub:webhooks:drain-queued"
DRAIN_SIGNAL_TTL_SECONDS = 10


def _get_broker():
    """One broker per process: django-q2 makes a new one (a new Redis connection) per
    `async_task` otherwise, which costs a connect on every webhook answer."""
    global _broker
    if _broker is None:
        from django_q.brokers import get_broker

        _broker = get_broker()
    return _broker


def _signal_store():
    """The Redis connection of the broker, or None (ORM broker: no coalescing, a drain per event)."""
    from django_q.brokers.redis_broker import Redis

    broker = _get_broker()
    return broker.connection if isinstance(broker, Redis) else None


def clear_drain_signal() -> None:
    try:
        store = _signal_store()
        if store is not None:
            store.delete(DRAIN_SIGNAL_KEY)
    except Exception:  # noqa: BLE001 - the key expires by itself
        logger.warning("webhook drain signal could not be cleared", exc_info=True)


def request_drain() -> None:
    """Make sure a drain task (`orders.webhook_tasks.drain_webhook_inbox`) will look at the
    inbox: queue one unless one is already queued or running (one Redis SET NX per delivery
    instead of a pickled, signed task per delivery). If the broker is down the rows stay
    ``received`` and the retry sweep takes them after `UNCLAIMED_GRACE_SECONDS`: the sender is
    answered either way."""
    store = None
    try:
        store = _signal_store()
        if store is not None and not store.set(DRAIN_SIGNAL_KEY, "1", nx=True, ex=DRAIN_SIGNAL_TTL_SECONDS):
            return  # the queued (or running) drain will see this event
        from django_q.tasks import async_task

        # save=False: the inbox rows are the record of the outcome; a saved success per drain
        # would also make the monitor prune the success table (a locked scan) every time.
        async_task("orders.webhook_tasks.drain_webhook_inbox", task_name="webhook-drain", group="webhooks",
                   save=False, broker=_get_broker())
    except Exception:  # noqa: BLE001 - the inbox row is the durable copy
        logger.exception("webhook drain could not be queued; the retry sweep will pick the events up")
        if store is not None:
            clear_drain_signal()  # the next delivery tries again


def enqueue_processing(event_pk: int) -> None:
    """Hand a stored (or replayed) event to the workers: a drain takes it with its neighbours."""
    request_drain()


REPLAY_INLINE_LIMIT = 20  # processed in the admin request; more are queued for the workers


@dataclass(frozen=True)
class ReplayResult:
    processed: list[WebhookEvent]  # processed now, as they are afterwards
    queued: list[int]  # handed to the workers (beyond the inline limit)
    skipped: list[int]  # being processed by a worker right now


def replay_events(*, events: Iterable[WebhookEvent], actor: Actor,
                  inline_limit: int = REPLAY_INLINE_LIMIT) -> ReplayResult:
    """Process these events again (failed, dead, or done ones after a fix such as a new SKU
    mapping or a corrected secret), each with a fresh attempt budget. Only who may configure
    shops may replay, and only events of shops in their scope. The first ``inline_limit`` are
    processed at once (the person sees the outcome); the rest are queued for the workers. An
    event a worker is processing right now is skipped."""
    if not actor.can(REPLAY_PERMISSION):
        raise NotPermitted("没有重放 Webhook 事件的权限")
    events = list(events)
    if any(not actor.scope.allows_shop(event.shop_id) for event in events):
        raise NotFound("Webhook 事件不存在")
    from orders.webhook_tasks import process_webhook_event

    processed, queued, skipped = [], [], []
    for event in events:
        claimed = WebhookEvent.objects.filter(pk=event.pk).exclude(status=WebhookStatus.PROCESSING).update(
            status=WebhookStatus.RECEIVED, attempts=0, next_attempt_at=timezone.now(),
            replayed_by=actor.label[:150])
        if not claimed:
            skipped.append(event.pk)
            continue
        logger.info("webhook %s replayed by %s", event.pk, actor.label)
        if len(processed) < inline_limit:
            process_webhook_event(event.pk)
            processed.append(WebhookEvent.objects.get(pk=event.pk))
        else:
            queued.append(event.pk)
            transaction.on_commit(lambda pk=event.pk: enqueue_processing(pk))
    return ReplayResult(processed, queued, skipped)


# --- the view ------------------------------------------------------------------------------------

def max_body_bytes() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


def _read_limited(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` (never reads more than limit + 1)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.strip():
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            pass  # the server's stream is bounded anyway; the read below decides
    raw = request.read(limit + 1)
    return None if len(raw) > limit else raw


# Active shops by (platform, code), kept per process for WEBHOOK_SHOP_CACHE_SECONDS (default 5):
# one query less on every delivery of a busy shop. A changed secret or a deactivated shop takes
# effect within that time; unknown codes are never kept (nothing for a scanner to fill up).
_shops: dict[tuple[str, str], tuple[float, Shop]] = {}


def _hook_shop(platform: str, code: str) -> Shop | None:
    import time

    ttl = float(getattr(settings, "WEBHOOK_SHOP_CACHE_SECONDS", 5))
    now = time.monotonic()
    held = _shops.get((platform, code)) if ttl > 0 else None
    if held is not None and held[0] > now:
        return held[1]
    shop = Shop.objects.filter(code=code, platform=platform, is_active=True).first()
    if shop is not None and ttl > 0:
        if len(_shops) > 10_000:
            _shops.clear()
        _shops[(platform, code)] = (now + ttl, shop)
    else:
        _shops.pop((platform, code), None)
    return shop


@csrf_exempt
@require_POST
def platform_hook(request: HttpRequest, platform: str, shop_code: str) -> JsonResponse:
    if platform not in Platform.values:
        return _error(404, "not_found", "unknown platform")
    shop = _hook_shop(platform, shop_code)
    if shop is None:
        return _error(404, "not_found", "unknown shop")
    limit = max_body_bytes()
    raw = _read_limited(request, limit)
    if raw is None:
        return _error(413, "too_large", f"body larger than {limit} bytes")
    scheme = scheme_for(shop.platform)
    if not scheme.verify(raw, request.headers, shop.webhook_secret):
        logger.warning("webhook %s/%s: signature missing or wrong (%d bytes), rejected",
                       platform, shop_code, len(raw))
        return _error(401, "bad_signature", "signature missing or wrong")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _error(400, "malformed", "body is not JSON")
    if not isinstance(doc, (dict, list)):
        return _error(400, "malformed", "body is not a JSON object or list")
    receipt = store_event(shop=shop, raw_body=raw, headers=request.headers)
    return JsonResponse({"status": "duplicate" if receipt.duplicate else "stored", "id": receipt.event.pk})


# --- the lean path -------------------------------------------------------------------------------

class PlatformHookFastPath:
    """Middleware, right after ``SecurityMiddleware``: a request for a platform hook
    (``/hooks/<platform>/<shop_code>/``) goes straight to `platform_hook`, skipping the rest of
    the stack — whitenoise, sessions, locale, CSRF (the view is exempt), auth, messages, history,
    frame options, the portal's headers, axes — none of which a signed machine-to-machine POST
    uses. SSL redirect and the security headers still apply (they run before this); an error in
    the view is still Django's 500. Any other path (``/hooks/carriers/…`` included) takes the
    whole stack."""

    PREFIX = "/hooks/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path_info.startswith(self.PREFIX):
            from django.urls import Resolver404, resolve

            try:
                match = resolve(request.path_info)
            except Resolver404:
                match = None
            if match is not None and match.namespace == "hooks" and match.url_name == "platform":
                request.resolver_match = match
                response = match.func(request, *match.args, **match.kwargs)
                if not response.streaming and not response.has_header("Content-Length"):
                    response.headers["Content-Length"] = str(len(response.content))  # as CommonMiddleware
                return response
        return self.get_response(request)
