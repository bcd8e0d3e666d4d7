"""Platform webhooks: POST /hooks/<platform>/<shop_code>/ → verified → inbox → task → orders.

Shopify bodies are the real fixtures from ../shared/fixtures/shopify/ (a webhook body is the
order object itself); the signature is computed here with the algorithm of the published
vector (base64 HMAC-SHA256 of the raw bytes with the shop's secret), and the vector itself is
checked against the verifier. Processing runs synchronously: the on-commit callbacks are
executed and `async_task` is replaced by a direct call.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.core.handlers.wsgi import WSGIRequest
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.actors import Source
from inventory.models import StockLevel
from orders import webhook_tasks
from orders.models import EventKind, HoldReason, Order, OrderStatus, Platform, WebhookEvent, WebhookStatus
from orders.platforms.shopify import verify_webhook
from orders.webhooks import orderhub_signature, platform_hook, verify_orderhub_signature
from tests.factories import ShopFactory, SkuFactory, SkuMappingFactory, WarehouseFactory, scoped, staff, stock

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures")
VECTOR = json.loads((FIXTURES / "shopify" / "hmac_vector.json").read_text())
ORDER = json.loads((FIXTURES / "shopify" / "order.single.json").read_text())["order"]
SECRET = "shpss_webhook_secret"
CHANGELIST = "admin:orders_webhookevent_changelist"


def shopify_hmac(raw: bytes, secret: str = SECRET) -> str:
    """The vector's algorithm: base64(HMAC-SHA256(key=secret, message=raw body bytes))."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def order_body(**changes) -> bytes:
    order = copy.deepcopy(ORDER)
    order.update(changes)
    return json.dumps(order, ensure_ascii=False).encode()


@pytest.fixture(autouse=True)
def inline_tasks(monkeypatch):
    """async_task runs the task at once (the on-commit callback still decides when)."""
    import django_q.tasks

    def run_now(func, *args, **kwargs):
        module, name = func.rsplit(".", 1)
        target = getattr(__import__(module, fromlist=[name]), name)
        for key in [k for k in kwargs if k in ("task_name", "group", "hook", "q_options", "broker", "save")]:
            kwargs.pop(key)
        return target(*args, **kwargs)

    monkeypatch.setattr(django_q.tasks, "async_task", run_now)


@pytest.fixture
def shop():
    return ShopFactory(code="us-shopify", platform=Platform.SHOPIFY, webhook_secret=SECRET, currency="USD",
                       time_zone="America/New_York")


def url(platform: str = "shopify", code: str = "us-shopify") -> str:
    return reverse("hooks:platform", kwargs={"platform": platform, "shop_code": code})


def post(raw: bytes, *, signature: str | None = "auto", topic: str = "orders/updated", webhook_id: str | None = "wh-1",
         path: str | None = None, secret: str = SECRET, client: Client | None = None, **extra):
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": "us-shopify.myshopify.com"}
    if webhook_id is not None:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    if signature == "auto":
        signature = shopify_hmac(raw, secret)
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    client = client or Client(enforce_csrf_checks=True)
    return client.post(path or url(), data=raw, content_type="application/json", headers={**headers, **extra})


def deliver(django_capture_on_commit_callbacks, raw: bytes, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return post(raw, **kwargs)


# --- the vector and the verifier -------------------------------------------------------------------

def test_the_published_vector_passes_the_verifier_and_its_reserialised_body_does_not():
    raw = bytes.fromhex(VECTOR["body_hex"])
    assert raw == VECTOR["body_utf8"].encode() and len(raw) == VECTOR["body_length"]
    assert verify_webhook(raw, VECTOR["headers"]["X-Shopify-Hmac-Sha256"], VECTOR["secret"]) is True
    assert shopify_hmac(raw, VECTOR["secret"]) == VECTOR["headers"]["X-Shopify-Hmac-Sha256"]
    negative = VECTOR["negative_case"]
    assert verify_webhook(negative["body_utf8"].encode(), VECTOR["headers"]["X-Shopify-Hmac-Sha256"],
                          VECTOR["secret"]) is False
    assert shopify_hmac(negative["body_utf8"].encode(), VECTOR["secret"]) == negative["hmac_of_this_body"]


def test_the_published_vector_is_accepted_through_the_hook_and_its_non_order_topic_ignored(
        django_capture_on_commit_callbacks):
    ShopFactory(code="shop1", platform=Platform.SHOPIFY, webhook_secret=VECTOR["secret"])
    raw = bytes.fromhex(VECTOR["body_hex"])
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(url(code="shop1"), data=raw, content_type="application/json",
                                 headers=VECTOR["headers"])
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.topic, event.event_id, event.body.encode()) == ("products/create", "123456789", raw)
    assert event.status == WebhookStatus.DONE and event.result.startswith("ignored")
    assert event.headers["X-Shopify-Hmac-Sha256"] == VECTOR["headers"]["X-Shopify-Hmac-Sha256"]
    assert Order.objects.count() == 0


def test_orderhub_signature_is_hex_hmac_sha256_of_the_raw_body():
    raw = b'{"tid": 1}'
    expected = hmac.new(b"k", raw, hashlib.sha256).hexdigest()
    assert orderhub_signature(raw, "k") == expected
    assert verify_orderhub_signature(raw, expected, "k")
    assert verify_orderhub_signature(raw, "sha256=" + expected.upper(), "k")
    assert not verify_orderhub_signature(raw, expected, "other")
    assert not verify_orderhub_signature(raw, "", "k")
    assert not verify_orderhub_signature(raw, expected, "")


# --- refused requests: nothing stored ----------------------------------------------------------------

@pytest.mark.parametrize("signature", [None, "", "not-base64", shopify_hmac(b"another body"),
                                       shopify_hmac(order_body(), "wrong secret")])
def test_missing_or_wrong_signature_is_401_and_stores_nothing(shop, signature, django_capture_on_commit_callbacks):
    response = deliver(django_capture_on_commit_callbacks, order_body(), signature=signature)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0
    assert Order.objects.count() == 0


def test_a_shop_without_a_webhook_secret_accepts_no_signature(django_capture_on_commit_callbacks):
    ShopFactory(code="no-secret", platform=Platform.SHOPIFY, webhook_secret="")
    raw = order_body()
    response = deliver(django_capture_on_commit_callbacks, raw, signature=shopify_hmac(raw, ""),
                       path=url(code="no-secret"))
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("path", ["/hooks/shopify/nobody/", "/hooks/taobao/us-shopify/", "/hooks/ebay/us-shopify/"])
def test_unknown_shop_platform_mismatch_or_unknown_platform_is_404(shop, path):
    assert post(order_body(), path=path).status_code == 404
    assert WebhookEvent.objects.count() == 0


def test_an_inactive_shop_is_404(shop):
    shop.is_active = False
    shop.save()
    assert post(order_body()).status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_only_post_is_allowed(shop, method):
    assert getattr(Client(), method)(url()).status_code == 405


def test_malformed_body_with_a_valid_signature_is_400(shop):
    for raw in (b"{not json", "订单".encode("gbk"), b'"just a string"', b"42"):
        assert post(raw).status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_a_body_over_the_limit_is_413_and_not_stored(shop, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    raw = order_body(note="x" * 4096)
    response = post(raw)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0
    settings.WEBHOOK_MAX_BODY_BYTES = len(raw)
    assert post(raw).status_code == 200  # exactly the limit is fine


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def _wsgi_post(stream, length: int | None) -> WSGIRequest:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": url(), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
               "wsgi.input": stream, "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json",
               "HTTP_X_SHOPIFY_HMAC_SHA256": "x"}
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    return WSGIRequest(environ)


def test_oversized_body_is_refused_without_reading_more_than_the_limit(shop, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    big = b"x" * (10 * 1024 * 1024)
    declared = CountingStream(big)  # an honest Content-Length: decided before reading anything
    assert platform_hook(_wsgi_post(declared, len(big)), platform="shopify", shop_code=shop.code).status_code == 413
    assert declared.bytes_read == 0
    # A sender that lies (declares less than it sends): the server's stream stops at the
    # declared length, and a declared length over the limit is refused unread; a body that
    # fits but keeps going is cut at limit + 1 bytes.
    lying = CountingStream(big)
    assert platform_hook(_wsgi_post(lying, 4096), platform="shopify", shop_code=shop.code).status_code == 413
    assert lying.bytes_read <= 1025
    assert WebhookEvent.objects.count() == 0


def test_the_hook_needs_no_csrf_token_session_or_login(shop, django_capture_on_commit_callbacks):
    response = deliver(django_capture_on_commit_callbacks, order_body(), client=Client(enforce_csrf_checks=True))
    assert response.status_code == 200
    assert "sessionid" not in response.cookies


# --- the inbox ---------------------------------------------------------------------------------------

def test_a_valid_delivery_is_stored_before_processing_and_answered_200(shop, django_capture_on_commit_callbacks):
    raw = order_body()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(raw, webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert response.json() == {"status": "stored", "id": event.pk}
    # Stored, not processed: processing waits for the commit and a worker.
    assert len(callbacks) == 1
    assert (event.status, event.attempts, event.platform, event.topic) == (
        WebhookStatus.RECEIVED, 0, "shopify", "orders/updated")
    assert event.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert event.body.encode() == raw and event.body_sha256 == hashlib.sha256(raw).hexdigest()
    assert event.headers["X-Shopify-Topic"] == "orders/updated"
    assert event.next_attempt_at is not None  # the sweep takes it if no worker does


def test_the_same_event_id_delivered_twice_is_one_row(shop, django_capture_on_commit_callbacks, monkeypatch):
    calls = []
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: calls.append(payloads) or "created=1")
    first = deliver(django_capture_on_commit_callbacks, order_body(), webhook_id="same")
    again = deliver(django_capture_on_commit_callbacks, order_body(note="re-sent"), webhook_id="same")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"status": "duplicate", "id": first.json()["id"]}
    event = WebhookEvent.objects.get()
    assert (event.duplicates, event.status, len(calls)) == (1, WebhookStatus.DONE, 1)


@pytest.mark.parametrize("second_id", [None, "another-delivery-id"])
def test_the_same_body_delivered_twice_is_one_row(shop, second_id, django_capture_on_commit_callbacks, monkeypatch):
    calls = []
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: calls.append(payloads) or "created=1")
    raw = order_body()
    deliver(django_capture_on_commit_callbacks, raw, webhook_id=None)
    response = deliver(django_capture_on_commit_callbacks, raw, webhook_id=second_id)
    assert response.status_code == 200 and response.json()["status"] == "duplicate"
    assert WebhookEvent.objects.count() == 1
    assert len(calls) == 1


def test_the_same_body_for_two_shops_is_two_rows(shop, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: "created=1")
    ShopFactory(code="eu-shopify", platform=Platform.SHOPIFY, webhook_secret=SECRET)
    raw = order_body()
    deliver(django_capture_on_commit_callbacks, raw)
    deliver(django_capture_on_commit_callbacks, raw, path=url(code="eu-shopify"))
    assert WebhookEvent.objects.count() == 2


# --- failures, back-off, dead, replay -----------------------------------------------------------------

class FlakyIngest:
    """Fails the first ``failures`` calls, then succeeds."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def __call__(self, event, payloads):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"database is down (call {self.calls})")
        return "created=1 updated=0 unchanged=0"


def test_processing_failure_is_kept_with_its_error_and_retried_with_backoff_until_done(
        shop, django_capture_on_commit_callbacks, monkeypatch):
    flaky = FlakyIngest(failures=2)
    monkeypatch.setattr(webhook_tasks, "_ingest", flaky)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert deliver(django_capture_on_commit_callbacks, order_body()).status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookStatus.FAILED, 1)
    assert event.last_error == "RuntimeError: database is down (call 1)"
    assert event.next_attempt_at == start + timedelta(minutes=2)

    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        assert webhook_tasks.retry_webhook_events() == {}  # not due yet
    with time_machine.travel(start + timedelta(minutes=2, seconds=1), tick=False):
        assert webhook_tasks.retry_webhook_events() == {"failed": 1}
        event.refresh_from_db()
        assert (event.attempts, event.last_error) == (2, "RuntimeError: database is down (call 2)")
        assert event.next_attempt_at == timezone.now() + timedelta(minutes=4)
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert webhook_tasks.retry_webhook_events() == {}
    with time_machine.travel(start + timedelta(minutes=6, seconds=2), tick=False):
        assert webhook_tasks.retry_webhook_events() == {"done": 1}
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error, event.next_attempt_at) == (
        WebhookStatus.DONE, 3, "", None)
    assert event.processed_at is not None and event.result.startswith("created=1")
    assert flaky.calls == 3


def test_an_event_that_keeps_failing_is_dead_after_the_attempt_limit(shop, settings, django_capture_on_commit_callbacks,
                                                                      monkeypatch):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    flaky = FlakyIngest(failures=100)
    monkeypatch.setattr(webhook_tasks, "_ingest", flaky)
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        deliver(django_capture_on_commit_callbacks, order_body())
    for minutes in (3, 8, 30, 120):  # after 2, then 4 minutes; then nothing is due any more
        with time_machine.travel(now + timedelta(minutes=minutes), tick=False):
            webhook_tasks.retry_webhook_events()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.next_attempt_at) == (WebhookStatus.DEAD, 3, None)
    assert event.last_error == "RuntimeError: database is down (call 3)"
    assert flaky.calls == 3


def test_a_received_event_no_worker_took_is_processed_by_the_sweep(shop, django_capture_on_commit_callbacks,
                                                                  monkeypatch):
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: "created=1")
    with django_capture_on_commit_callbacks(execute=False):  # the enqueue is lost (broker down)
        post(order_body())
    assert webhook_tasks.retry_webhook_events() == {}  # grace period: a worker may still take it
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        assert webhook_tasks.retry_webhook_events() == {"done": 1}


def test_an_event_whose_worker_died_is_taken_again_after_the_claim_timeout(shop, django_capture_on_commit_callbacks,
                                                                          monkeypatch):
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: "created=1")
    with django_capture_on_commit_callbacks(execute=False):
        post(order_body())
    event = WebhookEvent.objects.get()
    assert webhook_tasks._claim(event.pk, due_only=False)  # a worker takes it and dies
    assert webhook_tasks.process_webhook_event(event.pk) == "skipped"  # another one may not, yet
    with time_machine.travel(timezone.now() + webhook_tasks.CLAIM_TIMEOUT + timedelta(seconds=1), tick=False):
        assert webhook_tasks.retry_webhook_events() == {"done": 1}
    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookStatus.DONE, 2)


def test_dead_events_show_their_error_in_the_admin_and_replay_makes_them_done(
        shop, settings, django_capture_on_commit_callbacks, monkeypatch):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    flaky = FlakyIngest(failures=1)
    monkeypatch.setattr(webhook_tasks, "_ingest", flaky)
    deliver(django_capture_on_commit_callbacks, order_body())
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.DEAD

    client = Client()
    client.force_login(staff("operations"))
    page = client.get(reverse(CHANGELIST), {"status": "dead"})
    assert page.status_code == 200
    assert "database is down (call 1)" in page.content.decode()

    response = client.post(reverse(CHANGELIST), {"action": "replay_selected", "_selected_action": [event.pk]},
                           follow=True)
    assert response.status_code == 200
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error, event.replayed_by) == (
        WebhookStatus.DONE, 1, "", "operations")
    assert flaky.calls == 2


@pytest.mark.parametrize("role, may_see, may_replay", [
    ("supervisor", True, True),
    ("operations", True, True),
    ("customer_service", False, False),
    ("warehouse", False, False),
    ("finance", False, False),
])
def test_who_sees_the_inbox_and_may_replay(role, may_see, may_replay, shop, settings,
                                           django_capture_on_commit_callbacks, monkeypatch):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    monkeypatch.setattr(webhook_tasks, "_ingest", FlakyIngest(failures=1))
    deliver(django_capture_on_commit_callbacks, order_body())
    event = WebhookEvent.objects.get()
    client = Client()
    client.force_login(staff(role))
    assert client.get(reverse(CHANGELIST)).status_code == (200 if may_see else 403)
    client.post(reverse(CHANGELIST), {"action": "replay_selected", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == (WebhookStatus.DONE if may_replay else WebhookStatus.DEAD)


def test_replay_service_refuses_an_actor_without_the_permission(shop, actor_for):
    from config.errors import NotPermitted
    from orders.webhooks import replay_events

    with pytest.raises(NotPermitted):
        replay_events(events=[], actor=actor_for(staff("customer_service")))



def test_a_large_replay_processes_the_first_events_at_once_and_queues_the_rest(
        shop, settings, django_capture_on_commit_callbacks, monkeypatch, actor_for):
    from orders.webhooks import replay_events

    settings.WEBHOOK_MAX_ATTEMPTS = 1
    monkeypatch.setattr(webhook_tasks, "_ingest", FlakyIngest(failures=3))
    for n in range(3):
        deliver(django_capture_on_commit_callbacks, order_body(id=450789469 + n), webhook_id=f"big-{n}")
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookStatus.DEAD}
    with django_capture_on_commit_callbacks(execute=False) as queued:
        result = replay_events(events=WebhookEvent.objects.order_by("pk"), actor=actor_for(staff("supervisor")),
                               inline_limit=2)
    assert [e.status for e in result.processed] == [WebhookStatus.DONE, WebhookStatus.DONE]
    last = WebhookEvent.objects.order_by("pk").last()
    assert (result.queued, last.status, last.attempts) == ([last.pk], WebhookStatus.RECEIVED, 0)
    for callback in queued:  # the workers take it
        callback()
    last.refresh_from_db()
    assert last.status == WebhookStatus.DONE


def test_replay_refuses_events_of_shops_outside_the_persons_scope(shop, settings, django_capture_on_commit_callbacks,
                                                                   monkeypatch, actor_for):
    from config.errors import NotFound
    from orders.webhooks import replay_events

    settings.WEBHOOK_MAX_ATTEMPTS = 1
    monkeypatch.setattr(webhook_tasks, "_ingest", FlakyIngest(failures=1))
    deliver(django_capture_on_commit_callbacks, order_body())
    other = ShopFactory(code="other-shop", platform=Platform.TAOBAO)
    with pytest.raises(NotFound):
        replay_events(events=WebhookEvent.objects.all(),
                      actor=actor_for(scoped(staff("operations"), shops=[other])))
    assert WebhookEvent.objects.get().status == WebhookStatus.DEAD


def test_the_retry_schedule_is_registered_every_minute():
    from django_q.models import Schedule

    from orders.management.commands.setup_schedules import sync_schedules

    sync_schedules()
    schedule = Schedule.objects.get(name="webhook inbox retry")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "orders.webhook_tasks.retry_webhook_events", Schedule.MINUTES, 1)




def test_the_raw_body_shows_personal_data_only_to_who_may_see_it(shop, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: "created=1")
    deliver(django_capture_on_commit_callbacks, order_body())
    change = reverse("admin:orders_webhookevent_change", args=[WebhookEvent.objects.get().pk])
    pages = {}
    for role in ("supervisor", "operations"):  # operations sees personal data masked
        client = Client()
        client.force_login(staff(role))
        response = client.get(change)
        assert response.status_code == 200
        pages[role] = response.content.decode()
    for personal in ("555-010-0199", "john.doe@example.com", "Example Street 1"):
        assert personal in pages["supervisor"]
        assert personal not in pages["operations"]
    for business in ("IPOD2008GREEN", "409.94", "authorized"):
        assert business in pages["operations"]


def test_the_inbox_is_limited_to_the_persons_shops(shop, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: "created=1")
    deliver(django_capture_on_commit_callbacks, order_body())
    event = WebhookEvent.objects.get()
    other = ShopFactory(code="other-shop", platform=Platform.TAOBAO)
    client = Client()
    client.force_login(scoped(staff("operations"), shops=[other]))
    assert event.event_id not in client.get(reverse(CHANGELIST)).content.decode()
    assert client.get(reverse("admin:orders_webhookevent_change", args=[event.pk])).status_code == 404


def test_who_sees_personal_data_masked_cannot_filter_the_inbox_by_the_body(shop):
    client = Client()
    client.force_login(staff("operations"))
    assert client.get(reverse(CHANGELIST), {"body__contains": "555-010"}).status_code == 400


# --- end to end: hook → inbox → task → adapter → orders.ingest ----------------------------------------

def shopify_order():
    return Order.objects.get(platform_order_id="450789469")


def test_a_shopify_order_webhook_becomes_the_order(shop, django_capture_on_commit_callbacks):
    response = deliver(django_capture_on_commit_callbacks, order_body(), topic="orders/create")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.result) == (WebhookStatus.DONE, 1, "created=1 updated=0 unchanged=0")
    order = shopify_order()
    assert order.shop == shop and order.currency == "USD"
    assert (order.paid_amount, order.goods_amount) == (Decimal("409.94"), Decimal("398.00"))
    assert list(order.lines.values_list("platform_line_id", "quantity", "unit_price")) == [
        ("466157049", 1, Decimal("199.00")), ("518995019", 1, Decimal("199.00")), ("703073504", 1, Decimal("199.00"))]
    assert order.platform_updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    # Paid (authorized) but its SKUs are not mapped here: stored and held with the reason.
    assert (order.status, order.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.SKU_UNMAPPED)
    created = order.events.get(kind=EventKind.CREATED)
    assert (created.source, created.actor_label) == (Source.PLATFORM, shop.code)


def test_a_shopify_order_with_mapped_skus_in_stock_is_allocated(shop, django_capture_on_commit_callbacks):
    warehouse = WarehouseFactory(code="la", country="US")
    for line in ORDER["line_items"]:
        sku = SkuFactory(code=line["sku"])
        SkuMappingFactory(shop=shop, sku=sku, platform_sku_id=str(line["variant_id"]))
        stock(warehouse, sku, 5)
    deliver(django_capture_on_commit_callbacks, order_body(), topic="orders/create")
    order = shopify_order()
    assert order.status == OrderStatus.ALLOCATED
    assert set(StockLevel.objects.filter(warehouse=warehouse).values_list("reserved", flat=True)) == {1}


def test_a_duplicate_delivery_is_one_order_and_one_inbox_row(shop, django_capture_on_commit_callbacks):
    raw = order_body()
    answers = [deliver(django_capture_on_commit_callbacks, raw, webhook_id=webhook_id)
               for webhook_id in ("d-1", "d-1", "d-2", None)]
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["status"] for a in answers] == ["stored", "duplicate", "duplicate", "duplicate"]
    assert WebhookEvent.objects.count() == 1
    assert Order.objects.count() == 1
    assert shopify_order().events.filter(kind=EventKind.CREATED).count() == 1


def test_an_older_update_arriving_late_never_overwrites_the_newer_one(shop, django_capture_on_commit_callbacks):
    newer = order_body(updated_at="2008-01-12T09:00:00-05:00", note="请周末送达")
    older = order_body(updated_at="2008-01-11T09:00:00-05:00", note="旧备注")
    newest = order_body(updated_at="2008-01-13T09:00:00-05:00", note="改为工作日送达")
    deliver(django_capture_on_commit_callbacks, newer, webhook_id="v2")
    response = deliver(django_capture_on_commit_callbacks, older, webhook_id="v1")  # delivered late
    assert response.status_code == 200
    stale = WebhookEvent.objects.get(event_id="v1")
    assert (stale.status, stale.result) == (WebhookStatus.DONE, "created=0 updated=0 unchanged=1")
    order = shopify_order()
    assert (order.buyer_note.splitlines()[0], order.platform_updated_at) == ("请周末送达", datetime(2008, 1, 12, 14, 0, tzinfo=UTC))
    deliver(django_capture_on_commit_callbacks, newest, webhook_id="v3")
    order.refresh_from_db()
    assert (order.buyer_note.splitlines()[0], order.platform_updated_at) == ("改为工作日送达", datetime(2008, 1, 13, 14, 0, tzinfo=UTC))
    assert WebhookEvent.objects.get(event_id="v3").result == "created=0 updated=1 unchanged=0"
    assert Order.objects.count() == 1


def test_an_orders_cancelled_webhook_cancels_the_order(shop, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, order_body(), topic="orders/create", webhook_id="c-1")
    cancelled = order_body(updated_at="2008-01-10T12:00:00-05:00", cancelled_at="2008-01-10T12:00:00-05:00",
                           cancel_reason="customer", financial_status="voided")
    deliver(django_capture_on_commit_callbacks, cancelled, topic="orders/cancelled", webhook_id="c-2")
    assert shopify_order().status == OrderStatus.CANCELLED


def test_a_taobao_push_signed_with_the_orderhub_scheme_becomes_the_order(django_capture_on_commit_callbacks):
    ShopFactory(code="tb", platform=Platform.TAOBAO, webhook_secret="tb-secret")
    raw = (FIXTURES / "taobao" / "trade_fullinfo_get.jdp_push_row.json").read_bytes()  # the real row, as sent
    signature = hmac.new(b"tb-secret", raw, hashlib.sha256).hexdigest()
    path = url("taobao", "tb")
    with django_capture_on_commit_callbacks(execute=True):
        bad = Client().post(path, data=raw, content_type="application/json",
                            headers={"X-OrderHub-Signature": signature[:-1] + "0"})
        response = Client().post(path, data=raw, content_type="application/json",
                                 headers={"X-OrderHub-Signature": signature, "X-OrderHub-Event-Id": "jdp-1",
                                          "X-OrderHub-Topic": "trade"})
    assert (bad.status_code, response.status_code) == (401, 200)
    event = WebhookEvent.objects.get()
    assert (event.event_id, event.topic, event.status) == ("jdp-1", "trade", WebhookStatus.DONE)
    order = Order.objects.get(platform_order_id="452790065331038")
    assert order.paid_amount == Decimal("13.80")


def test_a_payload_the_adapter_refuses_fails_with_the_reason(shop, django_capture_on_commit_callbacks):
    raw = json.dumps({"id": 1, "line_items": "not a list"}).encode()
    deliver(django_capture_on_commit_callbacks, raw)
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.FAILED
    assert event.last_error.startswith("created=0 updated=0 unchanged=0 failed=1: #1: ")
    assert Order.objects.count() == 0


def test_an_event_failed_by_the_upsert_is_replayed_from_the_admin_into_the_order(
        shop, settings, django_capture_on_commit_callbacks, monkeypatch):
    from orders import ingest

    settings.WEBHOOK_MAX_ATTEMPTS = 2
    real_upsert = ingest.upsert_order

    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(ingest, "upsert_order", database_down)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        deliver(django_capture_on_commit_callbacks, order_body())
    with time_machine.travel(start + timedelta(minutes=3), tick=False):
        webhook_tasks.retry_webhook_events()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookStatus.DEAD, 2)
    assert "OperationalError: could not connect to server" in event.last_error
    assert not Order.objects.exists()

    monkeypatch.setattr(ingest, "upsert_order", real_upsert)  # the database is back
    client = Client()
    client.force_login(staff("supervisor"))
    client.post(reverse(CHANGELIST), {"action": "replay_selected", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert (event.status, event.result, event.replayed_by) == (
        WebhookStatus.DONE, "created=1 updated=0 unchanged=0", "supervisor")
    assert shopify_order().paid_amount == Decimal("409.94")


# --- at the same moment (PostgreSQL) ---------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_delivery_arriving_eight_times_at_once_is_one_row_and_one_effect(monkeypatch):
    from tests.concurrency import run_together

    ShopFactory(code="us-shopify", platform=Platform.SHOPIFY, webhook_secret=SECRET)
    calls = []
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: calls.append(event.pk) or "created=1")
    raw = order_body()
    outcomes = run_together([lambda i=i: post(raw, webhook_id=f"delivery-{i % 2}") for i in range(8)])
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    answers = [response for _, response in outcomes]
    assert {r.status_code for r in answers} == {200}
    assert sorted(r.json()["status"] for r in answers) == ["duplicate"] * 7 + ["stored"]
    event = WebhookEvent.objects.get()
    assert (event.status, event.duplicates, calls) == (WebhookStatus.DONE, 7, [event.pk])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_taking_the_same_event_at_once_process_it_once(monkeypatch):
    from tests.concurrency import run_together

    ShopFactory(code="us-shopify", platform=Platform.SHOPIFY, webhook_secret=SECRET)
    calls = []
    monkeypatch.setattr(webhook_tasks, "_ingest", lambda event, payloads: calls.append(event.pk) or "created=1")
    monkeypatch.setattr("orders.webhooks.enqueue_processing", lambda pk: None)  # the workers below take it
    post(order_body())
    pk = WebhookEvent.objects.get().pk
    outcomes = run_together([lambda: webhook_tasks.process_webhook_event(pk) for _ in range(4)])
    assert sorted(value for _, value in outcomes) == ["done", "skipped", "skipped", "skipped"]
    assert calls == [pk]


def test_a_dead_event_tells_staff_once(shop, settings, django_capture_on_commit_callbacks, monkeypatch):
    from config.models import Notification

    settings.WEBHOOK_MAX_ATTEMPTS = 2
    monkeypatch.setattr(webhook_tasks, "_ingest", FlakyIngest(failures=100))
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        deliver(django_capture_on_commit_callbacks, order_body())
    assert not Notification.objects.exists()  # one failure is retried quietly
    for minutes in (3, 30, 120):
        with time_machine.travel(now + timedelta(minutes=minutes), tick=False), \
                django_capture_on_commit_callbacks(execute=True):
            webhook_tasks.retry_webhook_events()
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.DEAD
    row = Notification.objects.get()
    assert row.topic == "webhook_dead" and f"#{event.pk}" in row.text and "database is down" in row.text


def test_a_web_process_keeps_the_shop_for_a_few_seconds_only(shop, settings, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders import webhooks

    settings.WEBHOOK_SHOP_CACHE_SECONDS = 5
    webhooks._shops.clear()
    assert deliver(django_capture_on_commit_callbacks, order_body(), webhook_id="a").status_code == 200
    # Within the time: the next delivery does not look the shop up again (only the insert).
    with CaptureQueriesContext(connection) as queries:
        assert post(order_body(id=2), webhook_id="b").status_code == 200
    assert not [q for q in queries.captured_queries if '"orders_shop"' in q["sql"]]
    assert [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    # A new secret takes effect once the time has passed; the old one is refused from then on.
    shop.webhook_secret = "rotated"
    shop.save()
    assert post(order_body(id=3), webhook_id="c").status_code == 200  # still the kept copy
    for key, (_expires, kept) in list(webhooks._shops.items()):
        webhooks._shops[key] = (0.0, kept)  # the 5 seconds have passed
    assert post(order_body(id=4), webhook_id="d").status_code == 401
    assert post(order_body(id=5), webhook_id="e", secret="rotated").status_code == 200
    # Unknown shops are never kept (a scanner cannot fill the memory with made-up codes).
    assert post(order_body(), path=url(code="nope")).status_code == 404
    assert ("shopify", "nope") not in webhooks._shops
    webhooks._shops.clear()
