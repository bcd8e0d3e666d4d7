"""The batched inbox drain (`orders.webhook_tasks.drain_webhook_inbox`), its coalesced trigger
(`orders.webhooks.request_drain`) and the lean middleware path of the platform hooks.

Bodies are the real Shopify sample (../shared/fixtures/shopify/order.single.json), each with
its own order id, customer id and phone where a test needs several orders.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders import ingest, webhook_tasks, webhooks
from orders.models import EventKind, Order, Platform, WebhookEvent, WebhookStatus
from tests.factories import ShopFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures")
ORDER = json.loads((FIXTURES / "shopify" / "order.single.json").read_text())["order"]
SECRET = "shpss_webhook_secret"


def order_body(order_id: int = 450789469, **changes) -> bytes:
    order = copy.deepcopy(ORDER)
    order["id"] = order_id
    order["customer"]["id"] = order_id  # a buyer per order, as a shop's traffic is
    for key in ("shipping_address", "billing_address"):
        order[key]["phone"] = f"+1 646 {2000000 + order_id % 8000000}"
    order.update(changes)
    return json.dumps(order, ensure_ascii=False).encode()


def post(raw: bytes, *, webhook_id: str, topic: str = "orders/create", path: str | None = None):
    signature = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    return Client(enforce_csrf_checks=True).post(
        path or reverse("hooks:platform", kwargs={"platform": "shopify", "shop_code": "us-shopify"}),
        data=raw, content_type="application/json",
        headers={"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Webhook-Id": webhook_id})


@pytest.fixture
def shop():
    return ShopFactory(code="us-shopify", platform=Platform.SHOPIFY, webhook_secret=SECRET, currency="USD",
                       time_zone="America/New_York")


@pytest.fixture
def queued(monkeypatch):
    """Deliveries are stored, the drain requests are only counted (the test drains)."""
    requests = []
    monkeypatch.setattr(webhooks, "request_drain", lambda: requests.append(1))
    return requests


@pytest.fixture
def ingest_calls(monkeypatch):
    """How many payloads each `ingest_payloads` call got (the real one still runs)."""
    calls = []
    real = ingest.ingest_payloads

    def spy(*, payloads, **kwargs):
        payloads = list(payloads)
        calls.append(len(payloads))
        return real(payloads=payloads, **kwargs)

    monkeypatch.setattr(ingest, "ingest_payloads", spy)
    return calls


def statuses() -> dict[str, tuple[str, int]]:
    return {e.event_id: (e.status, e.attempts) for e in WebhookEvent.objects.all()}


# --- one batch -------------------------------------------------------------------------------------

def test_a_batch_goes_through_the_bulk_path_and_one_bad_event_fails_alone_and_is_retried(
        shop, queued, ingest_calls):
    for i in range(3):
        assert post(order_body(1000 + i), webhook_id=f"good-{i}").status_code == 200
    assert post(json.dumps({"id": 1, "line_items": "not a list"}).encode(), webhook_id="bad").status_code == 200
    assert statuses()["bad"] == (WebhookStatus.RECEIVED, 0)  # stored, not processed yet

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert webhook_tasks.drain_webhook_inbox() == {WebhookStatus.DONE: 3, WebhookStatus.FAILED: 1}
    assert ingest_calls == [4]  # the four events' payloads together, once
    assert Order.objects.count() == 3
    good = WebhookEvent.objects.filter(event_id__startswith="good-")
    assert {(e.status, e.attempts, e.result) for e in good} == {
        (WebhookStatus.DONE, 1, "created=1 updated=0 unchanged=0")}
    bad = WebhookEvent.objects.get(event_id="bad")
    assert (bad.status, bad.attempts, bad.next_attempt_at) == (WebhookStatus.FAILED, 1, start + timedelta(minutes=2))
    assert bad.last_error.startswith("created=0 updated=0 unchanged=0 failed=1: #1: ")

    # The back-off passes: the retry sweep takes the bad one again (and only it).
    with time_machine.travel(start + timedelta(minutes=2, seconds=1), tick=False):
        assert webhook_tasks.retry_webhook_events() == {WebhookStatus.FAILED: 1}
    assert statuses()["bad"] == (WebhookStatus.FAILED, 2)
    assert {statuses()[f"good-{i}"] for i in range(3)} == {(WebhookStatus.DONE, 1)}
    assert Order.objects.count() == 3


def test_the_same_order_twice_in_one_batch_is_one_order_with_one_created_event(shop, queued):
    post(order_body(2000), webhook_id="create")
    post(order_body(2000, note="again"), webhook_id="update", topic="orders/updated")  # other bytes, same version
    post(order_body(2001), webhook_id="other")
    assert WebhookEvent.objects.count() == 3

    assert webhook_tasks.drain_webhook_inbox() == {WebhookStatus.DONE: 3}
    assert Order.objects.count() == 2
    order = Order.objects.get(platform_order_id="2000")
    assert order.events.filter(kind=EventKind.CREATED).count() == 1
    results = dict(WebhookEvent.objects.values_list("event_id", "result"))
    assert results["create"] == "created=1 updated=0 unchanged=0"
    assert results["update"] in ("created=0 updated=1 unchanged=0", "created=0 updated=0 unchanged=1")
    assert results["other"] == "created=1 updated=0 unchanged=0"


def test_if_the_batch_call_itself_breaks_each_event_goes_alone(shop, queued, monkeypatch):
    real = ingest.ingest_payloads

    def breaks_on_batches(*, payloads, **kwargs):
        payloads = list(payloads)
        if len(payloads) > 1:
            raise RuntimeError("connection lost")
        return real(payloads=payloads, **kwargs)

    monkeypatch.setattr(ingest, "ingest_payloads", breaks_on_batches)
    post(order_body(3000), webhook_id="a")
    post(order_body(3001), webhook_id="b")
    assert webhook_tasks.drain_webhook_inbox() == {WebhookStatus.DONE: 2}
    assert set(Order.objects.values_list("platform_order_id", flat=True)) == {"3000", "3001"}


def test_a_non_order_topic_in_a_batch_is_done_as_ignored(shop, queued):
    post(order_body(4000), webhook_id="order")
    post(b'{"id": 1}', webhook_id="refund", topic="refunds/create")
    assert webhook_tasks.drain_webhook_inbox() == {WebhookStatus.DONE: 2}
    assert WebhookEvent.objects.get(event_id="refund").result == "ignored: topic not about orders"


def test_the_drain_takes_batches_until_nothing_is_received_and_leaves_failed_ones_to_the_sweep(shop, queued):
    for i in range(5):
        post(order_body(5000 + i), webhook_id=f"e-{i}")
    WebhookEvent.objects.filter(event_id="e-4").update(status=WebhookStatus.FAILED, attempts=1,
                                                       next_attempt_at=timezone.now() + timedelta(minutes=2))
    assert webhook_tasks.drain_webhook_inbox(batch=2) == {WebhookStatus.DONE: 4}
    assert statuses()["e-4"] == (WebhookStatus.FAILED, 1)  # in back-off: not the drain's


# --- the trigger -----------------------------------------------------------------------------------

class FakeRedis:
    def __init__(self):
        self.keys: dict[str, str] = {}

    def set(self, key, value, nx=False, ex=None):
        if nx and key in self.keys:
            return None
        self.keys[key] = value
        return True

    def delete(self, key):
        self.keys.pop(key, None)


def test_deliveries_queue_one_drain_until_the_drain_clears_the_signal(shop, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    store = FakeRedis()
    queued = []
    monkeypatch.setattr(webhooks, "_signal_store", lambda: store)
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *a, **kw: queued.append(func))
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            post(order_body(6000 + i), webhook_id=f"s-{i}")
    assert queued == ["orders.webhook_tasks.drain_webhook_inbox"]  # one task for three deliveries
    assert webhooks.DRAIN_SIGNAL_KEY in store.keys

    assert webhook_tasks.drain_webhook_inbox() == {WebhookStatus.DONE: 3}
    assert webhooks.DRAIN_SIGNAL_KEY not in store.keys  # cleared before its last look
    with django_capture_on_commit_callbacks(execute=True):
        post(order_body(6010), webhook_id="later")
    assert len(queued) == 2  # the next delivery queues a new drain


def test_a_broker_failure_still_answers_200_and_leaves_the_event_to_the_sweep(shop, monkeypatch,
                                                                            django_capture_on_commit_callbacks):
    store = FakeRedis()
    monkeypatch.setattr(webhooks, "_signal_store", lambda: store)

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("django_q.tasks.async_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(order_body(7000), webhook_id="x").status_code == 200
    assert statuses()["x"] == (WebhookStatus.RECEIVED, 0)
    assert webhooks.DRAIN_SIGNAL_KEY not in store.keys  # the next delivery tries to queue again
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        assert webhook_tasks.retry_webhook_events() == {WebhookStatus.DONE: 1}


# --- the lean path ---------------------------------------------------------------------------------

def test_a_platform_hook_skips_sessions_and_locale_but_keeps_the_security_headers(shop, queued):
    response = post(order_body(), webhook_id="lean")
    assert response.status_code == 200 and response.json()["status"] == "stored"
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers  # no session, no locale
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Length"] == str(len(response.content))
    assert response.wsgi_request.resolver_match.url_name == "platform"


def test_the_lean_path_keeps_every_answer_of_the_hook(shop, queued, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    client = Client(enforce_csrf_checks=True)
    path = reverse("hooks:platform", kwargs={"platform": "shopify", "shop_code": "us-shopify"})
    assert client.get(path).status_code == 405
    assert post(b"{}", webhook_id="x", path=path.replace("us-shopify", "nope")).status_code == 404
    assert post(order_body(), webhook_id="big").status_code == 413
    wrong = client.post(path, data=b"{}", content_type="application/json", headers={"X-Shopify-Hmac-Sha256": "x"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_signature"
    assert WebhookEvent.objects.count() == 0


def test_other_paths_under_hooks_take_the_whole_middleware_stack(shop):
    # An unknown path below /hooks/ is not a platform hook: the normal stack answers it
    # (CommonMiddleware's slash handling included).
    response = Client().get("/hooks/shopify/us-shopify")
    assert response.status_code in (301, 404)
    assert not WebhookEvent.objects.exists()


# --- two drains at once (PostgreSQL) -----------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_drains_at_once_never_process_the_same_event_twice(monkeypatch):
    from tests.concurrency import run_together

    shop = ShopFactory(code="us-shopify", platform=Platform.SHOPIFY, webhook_secret=SECRET)
    monkeypatch.setattr(webhooks, "request_drain", lambda: None)
    for i in range(40):
        post(order_body(8000 + i), webhook_id=f"c-{i}")
    seen: list[int] = []
    lock = threading.Lock()

    def fake_ingest_payloads(*, shop, payloads, actor, **kwargs):
        payloads = list(payloads)
        with lock:
            seen.extend(p["id"] for p in payloads)
        time.sleep(0.02)  # long enough for the other drain to try the same rows
        return ingest.IngestReport(created=len(payloads), outcomes={
            i: (ingest.CREATED, None) for i in range(1, len(payloads) + 1)})

    monkeypatch.setattr(ingest, "ingest_payloads", fake_ingest_payloads)
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: (
        fake_ingest_payloads(shop=shop, payloads=payloads, actor=None), "created=1 updated=0 unchanged=0")[1])
    outcomes = run_together([lambda: webhook_tasks.drain_webhook_inbox(batch=3) for _ in range(2)])
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    assert sorted(seen) == [8000 + i for i in range(40)]  # each exactly once
    assert sum(value.get(WebhookStatus.DONE, 0) for _, value in outcomes) == 40
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {(WebhookStatus.DONE, 1)}
