"""Staff alerts (config.notify): once per key, after commit, never a customer's phone; sent
to the group-chat robots (企业微信 / 钉钉, request shapes from their public docs) against a
local fake server, batched, with rate-limit retries and permanent failures; who sees the
员工通知 list (written by hand from the role descriptions: 运营 and 主管 look after alerts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client
from django.urls import reverse
from werkzeug import Response

from config import notify
from config.models import Notification
from orders import services, shipping
from orders.carriers.base import Scan, TrackingUpdate
from orders.models import Shipment
from tests.factories import SkuFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


def shipped(system, number="SF1"):
    sku = SkuFactory()
    wh = WarehouseFactory()
    stock(wh, sku, 1)
    order = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system),
                                actor=system)
    return services.order_ship(order=order, actor=system, carrier="SF", tracking_number=number, at=T0)


def exception_scan(system, text="快件滞留,请联系派送员 13912345678", minutes=10):
    scan = Scan(occurred_at=T0 + timedelta(minutes=minutes), description=text, state="exception")
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", None, (scan,))], actor=system)


def robot_answers(httpserver, path="/cgi-bin/webhook/send", answers=None):
    seen = []
    answers = list(answers or [])

    def handler(request):
        seen.append(request)
        code = answers.pop(0) if answers else 0
        return Response(json.dumps({"errcode": code, "errmsg": "ok" if code == 0 else "busy"}), 200,
                        content_type="application/json")

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    return seen


# --- what becomes an alert --------------------------------------------------------------------
def test_a_parcel_exception_alerts_once_with_the_courier_phone_masked(system, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        order = shipped(system)
    assert not Notification.objects.exists()  # shipping is routine: no alert
    with django_capture_on_commit_callbacks(execute=True):
        exception_scan(system)
    with django_capture_on_commit_callbacks(execute=True):
        exception_scan(system)  # the same scan pushed again: deduplicated, no second alert
    row = Notification.objects.get()
    assert row.topic == "shipment_exception" and order.number in row.text and "SF1" in row.text
    assert "139****5678" in row.text and "13912345678" not in row.text
    assert row.status == "not_sent"  # no robot configured: kept for the admin
    assert row.link == reverse("admin:orders_order_change", args=[order.pk])


def test_nothing_is_stored_when_the_work_rolls_back(system):
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            notify.alert("stock_low", key="k-rollback", text="x")
            raise RuntimeError
    assert not Notification.objects.filter(key="k-rollback").exists()


def test_a_long_key_is_hashed_and_still_deduplicates(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("stock_low", key="x" * 500, text="a")
        notify.alert("stock_low", key="x" * 500, text="b")
        notify.alert("stock_low", key="x" * 499 + "y", text="c")
    assert Notification.objects.count() == 2 and all(len(r.key) <= 200 for r in Notification.objects.all())


# --- sending -----------------------------------------------------------------------------------
def test_wecom_robot_gets_one_text_message_for_a_batch(settings, httpserver, django_capture_on_commit_callbacks,
                                                      monkeypatch):
    monkeypatch.setattr(notify, "request_delivery", lambda: None)
    settings.NOTIFY_WECOM_WEBHOOK = httpserver.url_for("/cgi-bin/webhook/send") + "?key=ROBOT-KEY"
    settings.NOTIFY_SITE_URL = "https://hub.example.com"
    seen = robot_answers(httpserver)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            notify.alert("shipment_returned", key=f"r{n}", text=f"订单 T{n}: SF{n}", link=f"/admin/x/{n}/")
    assert set(Notification.objects.values_list("status", flat=True)) == {"pending"}
    assert notify.deliver_pending() == 3
    assert len(seen) == 1 and seen[0].args["key"] == "ROBOT-KEY"
    body = json.loads(seen[0].get_data(as_text=True))
    assert body["msgtype"] == "text"
    content = body["text"]["content"]
    assert content.startswith("【Order Hub】3 条提醒") and "包裹退回 · 订单 T0: SF0" in content
    assert "https://hub.example.com/admin/x/2/" in content
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
    assert notify.deliver_pending() == 0 and len(seen) == 1  # sent rows are never sent again


def test_dingtalk_url_is_signed_as_its_docs_say(settings, httpserver, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(notify, "request_delivery", lambda: None)
    settings.NOTIFY_DINGTALK_WEBHOOK = httpserver.url_for("/robot/send") + "?access_token=TOKEN"
    settings.NOTIFY_DINGTALK_SECRET = "SECthis-is-secret"
    seen = robot_answers(httpserver, "/robot/send")
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("stock_low", key="s1", text="PAN 在 CN 可用 15 < 安全库存 20")
    assert notify.deliver_pending() == 1
    args = seen[0].args
    assert args["access_token"] == "TOKEN"
    # timestamp + "\n" + secret, HMAC-SHA256 with the secret, base64 (then URL-encoded in the query)
    expected = base64.b64encode(hmac.new(b"SECthis-is-secret", f"{args['timestamp']}\nSECthis-is-secret".encode(),
                                         hashlib.sha256).digest()).decode()
    assert args["sign"] == expected
    assert "PAN 在 CN" in json.loads(seen[0].get_data(as_text=True))["text"]["content"]


def test_signing_helper_matches_a_fixed_vector():
    url = notify.dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SECabc",
                                     timestamp_ms=1700000000000)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    digest = hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    assert query["timestamp"] == ["1700000000000"] and query["sign"] == [base64.b64encode(digest).decode()]


def test_many_alerts_go_in_batches(settings, httpserver, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(notify, "request_delivery", lambda: None)
    settings.NOTIFY_WECOM_WEBHOOK = httpserver.url_for("/cgi-bin/webhook/send")
    seen = robot_answers(httpserver)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(45):
            notify.alert("shipment_exception", key=f"e{n}", text=f"订单 T{n}: 滞留")
    assert notify.deliver_pending(batch=20) == 45
    assert len(seen) == 3
    assert all(len(r.get_data()) < 2200 for r in seen)  # the robot's 2,048-byte text limit, plus the JSON


def test_rate_limited_rows_wait_and_permanent_errors_fail(settings, httpserver, django_capture_on_commit_callbacks,
                                                          monkeypatch):
    monkeypatch.setattr(notify, "request_delivery", lambda: None)
    settings.NOTIFY_WECOM_WEBHOOK = httpserver.url_for("/cgi-bin/webhook/send")
    robot_answers(httpserver, answers=[45009, 0])
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("shipment_exception", key="e1", text="订单 T1: 滞留")
    assert notify.deliver_pending() == 0
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("pending", 1) and "45009" in row.last_error
    assert notify.deliver_pending() == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")

    httpserver.clear()
    robot_answers(httpserver, answers=[93000])  # invalid webhook URL / key: retrying cannot help
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("shipment_exception", key="e2", text="订单 T2: 滞留")
    notify.deliver_pending()
    assert Notification.objects.get(key="e2").status == "failed"


def test_a_robot_that_is_down_is_retried_up_to_the_limit(settings, httpserver, django_capture_on_commit_callbacks,
                                                         monkeypatch):
    monkeypatch.setattr(notify, "request_delivery", lambda: None)
    settings.NOTIFY_WECOM_WEBHOOK = httpserver.url_for("/cgi-bin/webhook/send")
    httpserver.expect_request("/cgi-bin/webhook/send").respond_with_data("down", status=502)
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("webhook_dead", key="w1", text="shopify 推送 #1")
    for _ in range(notify.MAX_ATTEMPTS):
        notify.deliver_pending()
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("failed", notify.MAX_ATTEMPTS) and "502" in row.last_error


def test_delivery_is_scheduled():
    from io import StringIO

    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=StringIO())
    assert Schedule.objects.filter(func="config.notify.deliver_pending").exists()


# --- the admin list -----------------------------------------------------------------------------
# 运营 and 主管 look after alerts; 客服, 仓管 and 财务 do not see the list.
WHO_SEES = [("supervisor", 200), ("operations", 200), ("customer_service", 403), ("warehouse", 403),
            ("finance", 403)]


@pytest.mark.parametrize("role, status", WHO_SEES)
def test_who_sees_the_notifications(role, status, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("stock_low", key="s1", text="PAN 低于安全库存")
    client = Client()
    client.force_login(staff(role))
    response = client.get(reverse("admin:core_notification_changelist"))
    assert response.status_code == status
    if status == 200:
        assert "PAN 低于安全库存" in response.content.decode()


def test_a_person_limited_to_some_shops_sees_no_rows(django_capture_on_commit_callbacks):
    from tests.factories import ShopFactory

    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("stock_low", key="s1", text="PAN 低于安全库存")
    client = Client()
    client.force_login(scoped(staff("supervisor", "lead-a"), shops=[ShopFactory(code="brand-a")]))
    response = client.get(reverse("admin:core_notification_changelist"))
    assert response.status_code == 200 and "PAN 低于安全库存" not in response.content.decode()


def test_resend_puts_failed_rows_back(settings, httpserver, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(notify, "request_delivery", lambda: None)
    with django_capture_on_commit_callbacks(execute=True):
        notify.alert("stock_low", key="s1", text="PAN")
    row = Notification.objects.get()
    client = Client()
    client.force_login(staff("supervisor"))
    url = reverse("admin:core_notification_changelist")
    response = client.post(url, {"action": "resend", "_selected_action": [row.pk]}, follow=True)
    assert "未配置群机器人" in response.content.decode()
    settings.NOTIFY_WECOM_WEBHOOK = httpserver.url_for("/cgi-bin/webhook/send")
    client.post(url, {"action": "resend", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == "pending"
    seen = robot_answers(httpserver)
    assert notify.deliver_pending() == 1 and len(seen) == 1
