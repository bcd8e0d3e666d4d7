"""POST /hooks/carriers/<carrier>/: signatures, the durable inbox, scans applied once."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from orders import services
from orders.carriers import kdniao, kuaidi100
from orders.demo.runner import reset_logins
from orders.models import CarrierAccount, CarrierPush, OrderEvent, Shipment, TrackingEvent
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock
from tests.orders.platforms.shared import load, load_text

pytestmark = pytest.mark.django_db
SECRET = "s3cret-demo"
KDNIAO_URL = "/hooks/carriers/kdniao/"
KUAIDI100_URL = "/hooks/carriers/kuaidi100/"


@pytest.fixture
def accounts():
    CarrierAccount.objects.create(provider="kdniao", account_id="1109259", app_key=SECRET)
    CarrierAccount.objects.create(provider="kuaidi100", account_id="C1", app_key="k", salt=SECRET)


def shipped_order(system, carrier: str, number: str, code: str = "wh"):
    sku = SkuFactory()
    wh = WarehouseFactory(code=code)
    stock(wh, sku, 1)
    order = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system),
                                actor=system)
    return services.order_ship(order=order, actor=system, carrier=carrier, tracking_number=number)


def post_form(client, url: str, form: dict):
    return client.post(url, data=urlencode(form), content_type="application/x-www-form-urlencoded")


def kdniao_form(request_data: str, key: str = SECRET) -> dict:
    return {"RequestData": request_data, "EBusinessID": "1109259", "RequestType": "101",
            "DataSign": kdniao.data_sign(request_data, key)}


def kuaidi100_form(last_result: dict, salt: str = SECRET) -> dict:
    param = json.dumps({"status": "shutdown", "message": "", "lastResult": last_result}, ensure_ascii=False)
    return {"param": param, "sign": kuaidi100.push_sign(param, salt)}


def test_kdniao_push_is_verified_stored_and_applied_once(client, accounts, system):
    first = shipped_order(system, "EMS", "5042260908504", "w1")
    second = shipped_order(system, "EMS", "5042260943004", "w2")
    form = kdniao_form(load_text("kdniao/push_101.request_data.doc_example.json"))

    response = post_form(client, KDNIAO_URL, form)
    assert response.status_code == 200
    ack = response.json()
    assert (ack["EBusinessID"], ack["Success"], ack["Reason"]) == ("1109259", True, "")
    push = CarrierPush.objects.get()
    assert (push.provider, push.status, push.account.account_id) == ("kdniao", "processed", "1109259")
    assert push.result["scans_added"] == 16 and push.result["duplicates"] == 0
    for order, count in ((first, 8), (second, 8)):
        shipment = Shipment.objects.get(order=order)
        assert shipment.status == "in_transit"
        assert shipment.tracking_events.count() == count
    # Each scan is a public timeline event with a fixed wording: no courier names or phones.
    scans = OrderEvent.objects.filter(order=first, kind__startswith="tracking_").order_by("occurred_at", "id")
    assert [e.kind for e in scans] == ["tracking_picked_up"] + ["tracking_in_transit"] * 6 + [
        "tracking_out_for_delivery"]
    assert scans[0].public_text == "快递已揽收(快递公司 EMS,运单号 5042260908504)"
    public = " ".join(e.public_text for e in OrderEvent.objects.public())
    for secret in ("张三", "李四", "王五", "13800000000", "揽投部"):
        assert secret not in public
    assert "138****0000" in scans[7].message and "13800000000" not in scans[7].message

    # The same push again (a carrier retry): stored, nothing new applied.
    again = post_form(client, KDNIAO_URL, form)
    assert again.status_code == 200 and again.json()["Success"] is True
    assert CarrierPush.objects.count() == 2
    assert CarrierPush.objects.order_by("-id").first().result["duplicates"] == 16
    assert TrackingEvent.objects.count() == 16
    assert OrderEvent.objects.filter(kind__startswith="tracking_").count() == 16


@pytest.mark.parametrize("mutate", [
    lambda f: {**f, "DataSign": kdniao.data_sign(f["RequestData"], "wrong-key")},
    lambda f: {**f, "RequestData": f["RequestData"].replace("5042260908504", "5042260908505")},
    lambda f: {k: v for k, v in f.items() if k != "DataSign"},
    lambda f: {**f, "EBusinessID": "1234567"},
    lambda f: {},
], ids=["wrong-key", "tampered", "missing-sign", "unknown-business-id", "empty"])
def test_kdniao_bad_signature_is_401_and_nothing_is_stored(client, accounts, system, mutate):
    shipped_order(system, "EMS", "5042260908504")
    form = mutate(kdniao_form(load_text("kdniao/push_101.request_data.doc_example.json")))
    response = post_form(client, KDNIAO_URL, form)
    assert response.status_code == 401
    assert response.json()["Success"] is False
    assert CarrierPush.objects.count() == 0 and TrackingEvent.objects.count() == 0
    assert Shipment.objects.get().status == "shipped"


def test_kuaidi100_push_delivers_the_parcel_and_the_order(client, accounts, system):
    order = shipped_order(system, "LHWL", "532071843804")
    response = post_form(client, KUAIDI100_URL, kuaidi100_form(load("kuaidi100/query_response.captured.json")))
    assert response.status_code == 200
    assert response.json() == {"result": True, "returnCode": "200", "message": "成功"}
    order.refresh_from_db()
    shipment = Shipment.objects.get(order=order)
    assert (order.status, shipment.status) == ("delivered", "delivered")
    assert [e.state for e in shipment.tracking_events.all()] == [
        "in_transit", "in_transit", "in_transit", "out_for_delivery", "delivered"]
    assert CarrierPush.objects.get().status == "processed"


@pytest.mark.parametrize("mutate", [
    lambda f: {**f, "sign": kuaidi100.push_sign(f["param"], "wrong")},
    lambda f: {"param": f["param"]},
    lambda f: {**f, "param": f["param"].replace("532071843804", "532071843805")},
], ids=["wrong-salt", "missing-sign", "tampered"])
def test_kuaidi100_bad_signature_is_401_and_nothing_is_stored(client, accounts, system, mutate):
    shipped_order(system, "LHWL", "532071843804")
    form = mutate(kuaidi100_form(load("kuaidi100/query_response.captured.json")))
    response = post_form(client, KUAIDI100_URL, form)
    assert response.status_code == 401 and response.json()["result"] is False
    assert CarrierPush.objects.count() == 0 and TrackingEvent.objects.count() == 0


def test_unknown_carrier_is_404_and_get_is_refused(client, accounts):
    assert client.post("/hooks/carriers/nosuch/", data="a=1", content_type="application/x-www-form-urlencoded").status_code == 404
    assert client.get(KDNIAO_URL).status_code == 405


def test_a_push_for_an_unknown_parcel_is_acknowledged_and_recorded(client, accounts):
    response = post_form(client, KDNIAO_URL, kdniao_form(load_text("kdniao/push_101.request_data.doc_example.json")))
    assert response.status_code == 200
    assert CarrierPush.objects.get().result["unmatched"] == ["5042260908504", "5042260943004"]


def test_a_push_that_fails_to_process_stays_in_the_inbox_and_is_retried(client, accounts, system):
    from orders.tracking_tasks import retry_failed_pushes

    shipped_order(system, "SF", "SF1")
    bad = json.dumps({"EBusinessID": "1109259", "Data": [{"LogisticCode": "SF1", "ShipperCode": "SF", "State": "2",
                                                          "Traces": [{"AcceptTime": "not a time", "AcceptStation": "x"}]}]})
    response = post_form(client, KDNIAO_URL, kdniao_form(bad))
    assert response.status_code == 200  # stored durably: the carrier need not send it again
    push = CarrierPush.objects.get()
    assert push.status == "failed" and "not a time" in push.error and push.attempts == 1
    assert TrackingEvent.objects.count() == 0
    assert retry_failed_pushes() == 0
    push.refresh_from_db()
    assert push.attempts == 2 and push.status == "failed"


def test_kdniao_exception_flags_the_parcel_with_an_internal_event_and_a_notification(
        client, accounts, system, django_capture_on_commit_callbacks, caplog):
    order = shipped_order(system, "ZTO", "ZT1")
    body = json.dumps({"EBusinessID": "1109259", "Data": [{"LogisticCode": "ZT1", "ShipperCode": "ZTO", "State": "4",
                                                           "Traces": [
        {"AcceptTime": "2026-03-01 10:00:00", "AcceptStation": "已收件"},
        {"AcceptTime": "2026-03-02 10:00:00", "AcceptStation": "收件人电话13912345678无法接通,快件滞留"}]}]})
    with caplog.at_level("INFO", logger="orderhub.notify"), django_capture_on_commit_callbacks(execute=True):
        assert post_form(client, KDNIAO_URL, kdniao_form(body)).status_code == 200
    shipment = Shipment.objects.get(order=order)
    assert (shipment.status, shipment.exception_flag) == ("exception", True)
    internal = OrderEvent.objects.get(order=order, kind="shipment_exception")
    assert internal.is_public is False and "139****5678" in internal.message
    public = OrderEvent.objects.get(order=order, kind="tracking_exception")
    assert public.public_text == "包裹运输异常,客服正在跟进(快递公司 中通快递,运单号 ZT1)"
    assert any("shipment_exception" in r.getMessage() for r in caplog.records)
    order.refresh_from_db()
    assert order.status == "shipped"


def test_seed_demo_secret_is_the_kdniao_app_key_and_the_kuaidi100_salt(client, system):
    reset_logins(password="pw", webhook_secret="S-demo")
    reset_logins(password="pw", webhook_secret="S-demo")  # idempotent
    assert CarrierAccount.objects.get(provider="kdniao").account_id == "1109259"
    shipped_order(system, "EMS", "5042260908504")
    form = kdniao_form(load_text("kdniao/push_101.request_data.doc_example.json"), key="S-demo")
    assert post_form(client, KDNIAO_URL, form).status_code == 200
    k_form = kuaidi100_form({"nu": "5042260908504", "com": "ems", "state": "0", "data": []}, salt="S-demo")
    assert post_form(client, KUAIDI100_URL, k_form).status_code == 200
    assert CarrierPush.objects.count() == 2
