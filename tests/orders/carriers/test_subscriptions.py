"""Subscribing parcels at their tracking provider (轨迹订阅), against local fake servers:
the request each provider documents (KDNiao 1008 signed like a query; Kuaidi100 /poll with
the callback URL and salt), once per parcel, only parcels with the carrier, "already
subscribed" is fine, server errors retried with back-off, refusals failed with the
provider's words, and who sees the list."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client
from django.urls import reverse
from werkzeug import Response

from orders import carrier_subscriptions, services
from orders.carriers import kdniao
from orders.models import CarrierAccount, CarrierSubscription, Shipment
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
KD_PATH = "/Ebusiness/EbusinessOrderHandle.aspx"


def shipped(system, number, carrier="YTO", phone="13800138000"):
    sku = SkuFactory()
    wh = WarehouseFactory()
    stock(wh, sku, 1)
    order = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)], phone=phone),
                                                              actor=system), actor=system)
    services.order_ship(order=order, actor=system, carrier=carrier, tracking_number=number, at=T0)
    return Shipment.objects.get(tracking_number=number)


def kdniao_account(httpserver, **kw):
    return CarrierAccount.objects.create(provider="kdniao", account_id="1109259", app_key="K", is_default=True,
                                         subscribe=True, api_url=httpserver.url_for(KD_PATH), **kw)


def answering(httpserver, path, answers):
    seen = []
    answers = list(answers)

    def handler(request):
        seen.append(request.form.to_dict())
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return Response(json.dumps(body), status, content_type="application/json")

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    return seen


def test_kdniao_subscribes_each_parcel_once_with_a_signed_1008(system, httpserver):
    kdniao_account(httpserver)
    yto = shipped(system, "YT100")
    sf = shipped(system, "SF200", carrier="SF")
    seen = answering(httpserver, KD_PATH, [(200, {"EBusinessID": "1109259", "Success": True, "Reason": ""})])
    assert carrier_subscriptions.subscribe_shipments(now=T0) == {"subscribed": 2, "failed": 0, "retry": 0}
    forms = {json.loads(f["RequestData"])["LogisticCode"]: f for f in seen}
    assert set(forms) == {"YT100", "SF200"}
    for form in forms.values():
        assert form["RequestType"] == "1008" and form["EBusinessID"] == "1109259" and form["DataType"] == "2"
        assert form["DataSign"] == kdniao.data_sign(form["RequestData"], "K")
    assert json.loads(forms["SF200"]["RequestData"])["CustomerName"] == "8000"  # SF wants the phone's last four
    assert "CustomerName" not in json.loads(forms["YT100"]["RequestData"])
    assert set(CarrierSubscription.objects.values_list("shipment_id", "status")) == {(yto.pk, "subscribed"),
                                                                                      (sf.pk, "subscribed")}
    assert carrier_subscriptions.subscribe_shipments(now=T0 + timedelta(minutes=5))["subscribed"] == 0
    assert len(seen) == 2  # never twice


def test_kuaidi100_sends_the_callback_url_and_salt_and_takes_already_subscribed(system, httpserver, settings):
    settings.CARRIER_CALLBACK_BASE_URL = "https://hub.example.com/"
    CarrierAccount.objects.create(provider="kuaidi100", account_id="CUST", app_key="KEY", salt="SALT", is_default=True,
                                  subscribe=True, api_url=httpserver.url_for("/poll/query.do"))
    shipped(system, "ZT300", carrier="ZTO")
    seen = answering(httpserver, "/poll", [(200, {"result": False, "returnCode": "501", "message": "重复订阅"})])
    assert carrier_subscriptions.subscribe_shipments(now=T0)["subscribed"] == 1
    assert seen[0]["schema"] == "json"
    param = json.loads(seen[0]["param"])
    assert (param["company"], param["number"], param["key"]) == ("zhongtong", "ZT300", "KEY")
    assert param["parameters"]["callbackurl"] == "https://hub.example.com/hooks/carriers/kuaidi100/"
    assert param["parameters"]["salt"] == "SALT" and param["parameters"]["phone"] == "13800138000"
    assert CarrierSubscription.objects.get().answer.startswith("501")


def test_kuaidi100_without_a_public_address_fails_visibly_and_sends_nothing(system, httpserver, settings):
    settings.CARRIER_CALLBACK_BASE_URL = ""
    CarrierAccount.objects.create(provider="kuaidi100", account_id="CUST", app_key="KEY", salt="SALT", is_default=True,
                                  subscribe=True, api_url=httpserver.url_for("/poll/query.do"))
    shipped(system, "ZT301", carrier="ZTO")
    carrier_subscriptions.subscribe_shipments(now=T0)
    row = CarrierSubscription.objects.get()
    assert row.status == "failed" and "CARRIER_CALLBACK_BASE_URL" in row.last_error
    assert httpserver.log == []


def test_server_errors_back_off_and_refusals_fail_at_once(system, httpserver):
    kdniao_account(httpserver)
    shipped(system, "YT400")
    answering(httpserver, KD_PATH, [(503, {}), (200, {"Success": True})])
    assert carrier_subscriptions.subscribe_shipments(now=T0)["retry"] == 1
    row = CarrierSubscription.objects.get()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    assert row.next_attempt_at == T0 + timedelta(minutes=2)
    assert carrier_subscriptions.subscribe_shipments(now=T0 + timedelta(minutes=1))["subscribed"] == 0  # not due
    assert carrier_subscriptions.subscribe_shipments(now=T0 + timedelta(minutes=3))["subscribed"] == 1

    httpserver.clear()
    shipped(system, "YT401")
    answering(httpserver, KD_PATH, [(200, {"Success": False, "Reason": "单号不存在"})])
    assert carrier_subscriptions.subscribe_shipments(now=T0 + timedelta(minutes=10))["failed"] == 1
    refused = CarrierSubscription.objects.get(shipment__tracking_number="YT401")
    assert (refused.status, refused.last_error) == ("failed", "单号不存在")
    assert carrier_subscriptions.resubscribe([refused.pk]) == 1
    assert CarrierSubscription.objects.get(pk=refused.pk).status == "pending"


def test_a_provider_that_stays_down_fails_after_the_attempt_limit(system, httpserver):
    kdniao_account(httpserver)
    shipped(system, "YT500")
    httpserver.expect_request(KD_PATH).respond_with_data("down", status=502)
    now = T0
    for _ in range(carrier_subscriptions.MAX_ATTEMPTS):
        carrier_subscriptions.subscribe_shipments(now=now)
        now += timedelta(hours=5)
    row = CarrierSubscription.objects.get()
    assert (row.status, row.attempts) == ("failed", carrier_subscriptions.MAX_ATTEMPTS)


def test_only_parcels_with_the_carrier_of_a_subscribing_account(system, httpserver):
    account = kdniao_account(httpserver)
    account.subscribe = False
    account.save()
    shipped(system, "YT600")
    assert carrier_subscriptions.subscribe_shipments(now=T0) == {"subscribed": 0, "failed": 0, "retry": 0}
    assert not CarrierSubscription.objects.exists()  # subscriptions are opt-in per account
    account.subscribe = True
    account.save()
    done = shipped(system, "YT601")
    Shipment.objects.filter(pk=done.pk).update(status="delivered")  # nothing left to push about
    answering(httpserver, KD_PATH, [(200, {"Success": True})])
    carrier_subscriptions.subscribe_shipments(now=T0)
    assert list(CarrierSubscription.objects.values_list("shipment__tracking_number", flat=True)) == ["YT600"]


def test_sandbox_parcels_are_never_subscribed(system):
    shipped(system, "SB000001")
    assert Shipment.objects.get().provider == "sandbox"
    carrier_subscriptions.subscribe_shipments(now=T0)
    assert not CarrierSubscription.objects.exists()


def test_the_job_is_scheduled():
    from io import StringIO

    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=StringIO())
    assert Schedule.objects.filter(func="orders.carrier_subscriptions.subscribe_shipments").exists()


# 运营 and 主管 configure the carriers (README "Demo logins"), so they see the subscriptions.
@pytest.mark.parametrize("role, status", [("operations", 200), ("supervisor", 200), ("warehouse", 403),
                                          ("customer_service", 403), ("finance", 403)])
def test_who_sees_the_subscriptions(role, status):
    client = Client()
    client.force_login(staff(role))
    assert client.get(reverse("admin:orders_carriersubscription_changelist")).status_code == status
