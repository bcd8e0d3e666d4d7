"""Tracking numbers pushed back to the platforms when a parcel ships (issue 15).

Against a fake platform server on 127.0.0.1 (pytest-httpserver): each adapter's request
(signed where the platform signs), success, 429/5xx retried with Retry-After, permanent
errors, an unmapped carrier, the outbox written in the ship transaction, idempotent runs,
the 2^n-minute retry schedule, split orders, and the admin per role and scope.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone
from werkzeug import Response

from config.actors import Actor, Source
from config.errors import NotPermitted
from orders import services, shipping, tracking_push
from orders.carriers.base import Scan, TrackingUpdate
from orders.models import OrderEvent, OrderLine, Platform, Shipment, TrackingPush
from orders.platforms import douyin, jd, pdd, taobao, wechat
from orders.tracking_push_tasks import push_tracking_numbers, retry_tracking_pushes
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db
S = TrackingPush.Status


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(tracking_push, "SLEEP", slept.append)
    handed: list[list[int]] = []
    monkeypatch.setattr(tracking_push, "_hand_to_worker", handed.append)  # no broker: tests run the task
    return {"slept": slept, "handed": handed}


def make_shop(server, platform, code, **extra):
    return ShopFactory(code=code, platform=platform, app_key=f"{code}-key", app_secret=f"{code}-secret",
                       access_token=f"{code}-token", api_base_url=server.url_for("/").rstrip("/"),
                       platform_extra=extra)


def ship(shop, system, *, carrier="SF", number="SF1001", order_id="3001", line_id=""):
    sku = SkuFactory()
    warehouse = WarehouseFactory()
    stock(warehouse, sku, 5)
    order = make_order(shop=shop, lines=[(sku, 1)], platform_order_id=order_id)
    if line_id:
        OrderLine.objects.filter(order=order).update(platform_line_id=line_id)
    order = services.order_pack(order=services.order_allocate(order=order, actor=system), actor=system)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the on-commit hand-off (captured by `no_waiting`)
        order = services.order_ship(order=order, actor=system, carrier=carrier, tracking_number=number)
    return order, TrackingPush.objects.get(order=order)


def answer(body, status=200, headers=None):
    return lambda request: Response(json.dumps(body) if body is not None else "", status,
                                    content_type="application/json", headers=headers or {})


def requests(server, path=None):
    return [r for r, _ in server.log if path is None or r.path == path]


def run(push):
    push_tracking_numbers([push.pk])
    push.refresh_from_db()
    return push


# --- per platform: the request and its answer ---------------------------------------------------
def test_taobao_offline_send_is_signed_and_a_second_run_pushes_nothing(httpserver, system, no_waiting):
    shop = make_shop(httpserver, Platform.TAOBAO, "tb")
    httpserver.expect_request("/router/rest", method="POST").respond_with_handler(
        answer({"logistics_offline_send_response": {"shipping": {"is_success": True}}}))
    order, push = ship(shop, system, carrier="YD", number="YD123", order_id="2001")
    assert push.status == S.PENDING and no_waiting["handed"] == [[push.pk]]

    push = run(push)
    assert push.status == S.SENT and push.attempts == 1 and push.sent_at is not None
    [req] = requests(httpserver)
    params = dict(req.args)
    assert params["method"] == "taobao.logistics.offline.send"
    assert (params["tid"], params["out_sid"], params["company_code"]) == ("2001", "YD123", "YUNDA")
    assert params["sign"] == taobao.sign({k: v for k, v in params.items() if k != "sign"}, "tb-secret")
    assert "sign" not in push.request_summary["params"] and "session" not in push.request_summary["params"]
    assert "tb-token" not in json.dumps(push.request_summary)
    event = OrderEvent.objects.get(order=order, kind="tracking_pushed")  # internal: the buyer never reads it
    assert not event.is_public and "YD123" in event.message and event.actor_label == "tracking_push"

    run(push)
    retry_tracking_pushes()
    tracking_push.process(push.pk, due_only=False)
    assert len(requests(httpserver)) == 1  # sent once, never again


def test_jd_shipment_carries_the_logistics_company_id(httpserver, system):
    shop = make_shop(httpserver, Platform.JD, "jd1")
    httpserver.expect_request("/routerjson").respond_with_handler(answer(
        {"jingdong_pop_order_shipment_responce": {"code": "0", "sopjosshipment_result": {"success": True}}}))
    _order, push = ship(shop, system, carrier="SF", number="SF77", order_id="300123")
    assert run(push).status == S.SENT
    params = dict(requests(httpserver)[0].args)
    assert params["method"] == "jingdong.pop.order.shipment"
    assert json.loads(params["360buy_param_json"]) == {"logiCoprId": "467", "logiNo": "SF77", "orderId": 300123}
    assert params["sign"] == jd.sign({k: v for k, v in params.items() if k != "sign"}, "jd1-secret")


def test_pdd_online_send_signed_and_its_error_envelope_is_permanent(httpserver, system):
    shop = make_shop(httpserver, Platform.PDD, "pdd1")
    httpserver.expect_request("/api/router").respond_with_handler(answer(
        {"error_response": {"error_code": 10000, "error_msg": "参数错误", "sub_msg": "订单已发货"}}))
    _order, push = ship(shop, system, carrier="ZTO", number="ZT9", order_id="240101-1")
    push = run(push)
    params = dict(requests(httpserver)[0].args)
    assert params["type"] == "pdd.logistics.online.send"
    assert (params["order_sn"], params["logistics_id"], params["tracking_number"]) == ("240101-1", "115", "ZT9")
    assert params["sign"] == pdd.sign({k: v for k, v in params.items() if k != "sign"}, "pdd1-secret")
    assert push.status == S.FAILED and "订单已发货" in push.last_error and push.next_attempt_at is None
    assert len(requests(httpserver)) == 1  # a permanent refusal is not retried


def test_pdd_success(httpserver, system):
    shop = make_shop(httpserver, Platform.PDD, "pdd2")
    httpserver.expect_request("/api/router").respond_with_handler(answer(
        {"logistics_online_send_response": {"is_success": True}}))
    _order, push = ship(shop, system, carrier="STO", number="ST1")
    assert run(push).status == S.SENT and dict(requests(httpserver)[0].args)["logistics_id"] == "1"


def test_douyin_logistics_add_signed_json(httpserver, system):
    shop = make_shop(httpserver, Platform.DOUYIN, "dy1")
    httpserver.expect_request("/order/logisticsAdd", method="POST").respond_with_handler(
        answer({"code": 10000, "msg": "success", "data": {}}))
    _order, push = ship(shop, system, carrier="JD", number="JDV01", order_id="4950001")
    assert run(push).status == S.SENT
    req = requests(httpserver)[0]
    body = json.loads(req.get_data())
    assert body == {"order_id": "4950001", "company_code": "jd", "logistics_code": "JDV01"}
    params = dict(req.args)
    assert params["method"] == "order.logisticsAdd"
    assert params["sign"] == douyin.sign("dy1-key", "dy1-secret", "order.logisticsAdd", params["timestamp"],
                                         douyin.param_json(body))


def test_shopify_fulfillment_from_fulfillment_orders_with_tracking_info(httpserver, system):
    shop = make_shop(httpserver, Platform.SHOPIFY, "sh1", shop_id="demo.myshopify.com", location_id="55")
    base = "/admin/api/2024-07"
    httpserver.expect_request(f"{base}/orders/450789/fulfillment_orders.json", method="GET").respond_with_handler(
        answer({"fulfillment_orders": [
            {"id": 1046000, "status": "closed", "assigned_location_id": 55, "line_items": []},
            {"id": 1046001, "status": "open", "assigned_location_id": 55, "line_items": [
                {"id": 9001, "line_item_id": 466157049, "fulfillable_quantity": 3},
                {"id": 9002, "line_item_id": 518995019, "fulfillable_quantity": 1}]}]}))
    httpserver.expect_request(f"{base}/fulfillments.json", method="POST").respond_with_handler(
        answer({"fulfillment": {"id": 255858046, "status": "success"}}, 201))
    _order, push = ship(shop, system, carrier="UPS", number="1Z999", order_id="450789", line_id="466157049")
    push = run(push)
    assert push.status == S.SENT and push.platform_reference == "255858046"
    get, post = requests(httpserver)
    assert get.headers["X-Shopify-Access-Token"] == "sh1-token" == post.headers["X-Shopify-Access-Token"]
    assert json.loads(post.get_data()) == {"fulfillment": {
        "line_items_by_fulfillment_order": [{"fulfillment_order_id": 1046001,
                                             "fulfillment_order_line_items": [{"id": 9001, "quantity": 1}]}],
        "tracking_info": {"number": "1Z999", "company": "UPS"}, "notify_customer": False}}


def test_amazon_confirm_shipment(httpserver, system):
    shop = make_shop(httpserver, Platform.AMAZON, "amz1", marketplace_ids="A1F83G8C2ARO7P", shop_id="SELLER1")
    path = "/orders/v0/orders/902-3159896-1390916/shipmentConfirmation"
    httpserver.expect_request(path, method="POST").respond_with_handler(answer(None, 204))
    _order, push = ship(shop, system, carrier="FEDEX", number="7489", order_id="902-3159896-1390916",
                        line_id="68828574383266")
    assert run(push).status == S.SENT
    req = requests(httpserver)[0]
    assert req.headers["x-amz-access-token"] == "amz1-token"
    body = json.loads(req.get_data())
    assert body["marketplaceId"] == "A1F83G8C2ARO7P"
    detail = body["packageDetail"]
    assert (detail["carrierCode"], detail["trackingNumber"], detail["packageReferenceId"]) == ("FedEx", "7489", "1")
    assert detail["orderItems"] == [{"orderItemId": "68828574383266", "quantity": 1}]


def test_wechat_mini_program_own_api_signed(httpserver, system):
    shop = make_shop(httpserver, Platform.MINIAPP, "wx1")
    path = "/api/orderhub/v1/orders/WX2024001/shipments"
    httpserver.expect_request(path, method="POST").respond_with_handler(answer({"ok": True, "shipment_id": "S-1"}))
    _order, push = ship(shop, system, carrier="EMS", number="EA1CN", order_id="WX2024001")
    push = run(push)
    assert push.status == S.SENT and push.platform_reference == "S-1"
    req = requests(httpserver)[0]
    body = json.loads(req.get_data())
    assert (body["carrier"], body["tracking_number"], body["package_no"]) == ("EMS", "EA1CN", 1)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert req.headers["X-OrderHub-Signature"] == wechat.signature(
        "wx1-secret", "POST", path, {}, req.headers["X-OrderHub-Timestamp"], text)


def test_sandbox_records_locally_without_network(system):
    shop = ShopFactory(code="sbx", platform=Platform.SANDBOX)
    _order, push = ship(shop, system, carrier="SF", number="SF5", order_id="SBX-1")
    push = run(push)
    assert push.status == S.SENT and push.platform_reference == "SBX-1/1"
    assert push.request_summary["path"] == "/shipments"


def test_distributor_orders_have_nothing_to_push(system):
    shop = ShopFactory(code="dist", platform=Platform.DISTRIBUTOR)
    _order, push = ship(shop, system)
    push = run(push)
    assert push.status == S.NOT_APPLICABLE and "分销" in push.note and push.attempts == 0


def test_a_ship_without_a_tracking_number_is_not_applicable(httpserver, system, no_waiting):
    shop = make_shop(httpserver, Platform.TAOBAO, "tb0")
    _order, push = ship(shop, system, number="")
    assert push.status == S.NOT_APPLICABLE and no_waiting["handed"] == []
    assert requests(httpserver) == []


# --- failures and retries ------------------------------------------------------------------------
def test_429_with_retry_after_then_success(httpserver, system, no_waiting):
    shop = make_shop(httpserver, Platform.TAOBAO, "tb429")
    httpserver.expect_ordered_request("/router/rest").respond_with_handler(
        answer({"message": "slow down"}, 429, {"Retry-After": "3"}))
    httpserver.expect_ordered_request("/router/rest").respond_with_handler(
        answer({"logistics_offline_send_response": {"shipping": {"is_success": True}}}))
    _order, push = ship(shop, system)
    push = run(push)
    assert push.status == S.SENT and push.response_summary["tries"] == 2
    assert no_waiting["slept"] == [3.0]  # 2^0 s back-off, raised to the Retry-After


def test_5xx_backs_off_2n_minutes_then_fails_visibly(httpserver, system, monkeypatch):
    monkeypatch.setattr(tracking_push, "MAX_ATTEMPTS", 3)
    shop = make_shop(httpserver, Platform.TAOBAO, "tb503")
    httpserver.expect_request("/router/rest").respond_with_handler(answer({"oops": 1}, 503))
    _order, push = ship(shop, system)
    t0 = timezone.now()
    assert tracking_push.process(push.pk, now=t0) == "waiting"
    push.refresh_from_db()
    assert push.status == S.PENDING and push.attempts == 1 and push.next_attempt_at == t0 + timedelta(minutes=2)
    assert "503" in push.last_error and len(requests(httpserver)) == tracking_push.CLIENT_ATTEMPTS

    assert tracking_push.process_due(now=t0 + timedelta(minutes=1)).as_dict()["waiting"] == 0  # not due yet
    assert len(requests(httpserver)) == 3
    assert tracking_push.process_due(now=t0 + timedelta(minutes=2)).waiting == 1
    push.refresh_from_db()
    assert push.attempts == 2 and push.next_attempt_at == t0 + timedelta(minutes=2) + timedelta(minutes=4)
    assert tracking_push.process_due(now=t0 + timedelta(minutes=6)).failed == 1
    push.refresh_from_db()
    assert push.status == S.FAILED and push.attempts == 3 and push.next_attempt_at is None
    assert tracking_push.process_due(now=t0 + timedelta(days=1)).as_dict() == tracking_push.PushReport().as_dict()


def test_a_long_retry_after_waits_for_the_schedule(httpserver, system, no_waiting):
    shop = make_shop(httpserver, Platform.PDD, "pdd429")
    httpserver.expect_request("/api/router").respond_with_handler(answer(
        {"error_response": {"error_code": 52101, "error_msg": "当前接口被限流"}}))
    _order, push = ship(shop, system)
    t0 = timezone.now()
    assert tracking_push.process(push.pk, now=t0) == "waiting"
    push.refresh_from_db()
    assert len(requests(httpserver)) == 1 and no_waiting["slept"] == []  # 60 s > MAX_RETRY_AFTER: no sleeping
    assert push.next_attempt_at == t0 + timedelta(minutes=2)  # max(2^1 min, Retry-After 60 s)


def test_an_unmapped_carrier_fails_at_once_without_a_call(httpserver, system):
    shop = make_shop(httpserver, Platform.TAOBAO, "tbx")
    _order, push = ship(shop, system, carrier="LHWL", number="LH1")
    push = run(push)
    assert push.status == S.FAILED and "unmapped_carrier" in push.last_error and "LHWL" in push.last_error
    event = OrderEvent.objects.get(order=_order, kind="tracking_push_failed")
    assert not event.is_public and "LHWL" in event.message
    assert requests(httpserver) == []


def test_a_shop_may_map_a_carrier_itself(httpserver, system):
    shop = make_shop(httpserver, Platform.TAOBAO, "tbmap", carrier_codes="LHWL=LHT")
    httpserver.expect_request("/router/rest").respond_with_handler(
        answer({"logistics_offline_send_response": {"shipping": {"is_success": True}}}))
    _order, push = ship(shop, system, carrier="LHWL", number="LH1")
    assert run(push).status == S.SENT and dict(requests(httpserver)[0].args)["company_code"] == "LHT"


def test_a_real_platform_shop_without_address_or_credentials_is_never_called(system):
    shop = ShopFactory(code="bare", platform=Platform.TAOBAO)
    _order, push = ship(shop, system)
    push = run(push)
    assert push.status == S.FAILED and "凭据" in push.last_error


# --- the outbox and shipping ---------------------------------------------------------------------
def test_a_rolled_back_ship_leaves_no_push(httpserver, system, no_waiting):
    shop = make_shop(httpserver, Platform.TAOBAO, "tbrb")
    sku = SkuFactory()
    stock(WarehouseFactory(), sku, 5)
    order = services.order_allocate(order=make_order(shop=shop, lines=[(sku, 1)]), actor=system)
    order = services.order_pack(order=order, actor=system)
    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.order_ship(order=order, actor=system, carrier="SF", tracking_number="SF1")
            assert TrackingPush.objects.filter(order=order).count() == 1  # written in the same transaction
            raise RuntimeError("the rest of the ship failed")
    assert not TrackingPush.objects.exists() and not Shipment.objects.filter(order=order).exists()
    assert no_waiting["handed"] == [] and callbacks == []


def test_the_first_carrier_scan_queues_the_push(httpserver, system):
    shop = make_shop(httpserver, Platform.TAOBAO, "tbscan")
    sku = SkuFactory()
    stock(WarehouseFactory(), sku, 5)
    order = services.order_allocate(order=make_order(shop=shop, lines=[(sku, 1)]), actor=system)
    order = services.order_pack(order=order, actor=system)
    shipping.shipment_create(order=order, actor=system, carrier="SF", tracking_number="SF900")
    assert not TrackingPush.objects.exists()
    scan = Scan(occurred_at=timezone.now(), description="已揽收", state="picked_up")
    shipping.record_tracking(updates=[TrackingUpdate(carrier="SF", tracking_number="SF900", state=None,
                                                     scans=(scan,))], actor=system)
    push = TrackingPush.objects.get(order=order)
    assert (push.status, push.tracking_number, push.carrier) == (S.PENDING, "SF900", "SF")
    shipping.record_tracking(updates=[TrackingUpdate(carrier="SF", tracking_number="SF900", state="in_transit",
                                                     scans=())], actor=system)
    assert TrackingPush.objects.filter(order=order).count() == 1


@pytest.fixture
def split_order(system):
    def make(shop):
        sku = SkuFactory()
        a, b = WarehouseFactory(priority=1), WarehouseFactory(priority=2)
        stock(a, sku, 1)
        stock(b, sku, 1)
        order = services.order_allocate(order=make_order(shop=shop, lines=[(sku, 2)], platform_order_id="500900"),
                                        actor=system)
        order = services.order_pack(order=order, actor=system)
        services.order_ship(order=order, actor=system, warehouse=a, carrier="SF", tracking_number="SF-A")
        services.order_ship(order=order, actor=system, warehouse=b, carrier="YTO", tracking_number="YT-B")
        return list(TrackingPush.objects.filter(order=order).order_by("package_no"))
    return make


def test_split_order_one_number_per_order_platform_pushes_the_first_and_notes_the_rest(httpserver, split_order):
    shop = make_shop(httpserver, Platform.JD, "jdsplit")
    httpserver.expect_request("/routerjson").respond_with_handler(answer(
        {"jingdong_pop_order_shipment_responce": {"sopjosshipment_result": {"success": True}}}))
    first, second = split_order(shop)
    assert (first.package_no, second.package_no) == (1, 2)
    tracking_push.process_many([first.pk, second.pk])
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == S.SENT and second.status == S.NOT_APPLICABLE and "附加包裹" in second.note
    assert [json.loads(dict(r.args)["360buy_param_json"])["logiNo"] for r in requests(httpserver)] == ["SF-A"]


def test_split_order_pdd_sends_the_first_then_the_rest_as_extra_numbers(httpserver, split_order):
    shop = make_shop(httpserver, Platform.PDD, "pddsplit")

    def handler(request):
        kind = dict(request.args)["type"]
        key = {"pdd.logistics.online.send": ("logistics_online_send_response", "is_success"),
               "pdd.order.upload.extra.logistics": ("upload_extra_logistics_response", "success")}[kind]
        return answer({key[0]: {key[1]: True}})(request)

    httpserver.expect_request("/api/router").respond_with_handler(handler)
    first, second = split_order(shop)
    assert tracking_push.process(second.pk, due_only=False) == "waiting"  # the order is not shipped on PDD yet
    second.refresh_from_db()
    assert second.status == S.PENDING and "第一个包裹" in second.last_error and requests(httpserver) == []
    assert tracking_push.process(first.pk, due_only=False) == "sent"
    assert tracking_push.process(second.pk, due_only=False) == "sent"
    sent = [dict(r.args) for r in requests(httpserver)]
    assert [p["type"] for p in sent] == ["pdd.logistics.online.send", "pdd.order.upload.extra.logistics"]
    assert (sent[0]["order_sn"], sent[0]["logistics_id"], sent[0]["tracking_number"]) == ("500900", "44", "SF-A")
    assert (sent[1]["order_sn"], sent[1]["extra_track_type"]) == ("500900", "1")
    assert json.loads(sent[1]["extra_track_list"]) == [{"shipping_id": 85, "tracking_number": "YT-B"}]
    assert sent[1]["sign"] == pdd.sign({k: v for k, v in sent[1].items() if k != "sign"}, "pddsplit-secret")


def test_split_order_douyin_sends_each_parcel_as_a_pack_of_its_sku_orders(httpserver, split_order):
    shop = make_shop(httpserver, Platform.DOUYIN, "dysplit")
    httpserver.expect_request("/order/logisticsAddMultiPack", method="POST").respond_with_handler(
        lambda request: answer({"code": 10000, "msg": "success", "data": {"pack_list": [{
            "logistics_code": json.loads(request.get_data())["pack_list"][0]["logistics_code"],
            "pack_id": "7398056775972421900"}]}})(request))
    pushes = split_order(shop)
    OrderLine.objects.filter(order_id=pushes[0].order_id).update(platform_line_id="6919000000000000001")
    assert tracking_push.process_many([p.pk for p in pushes]).sent == 2
    bodies = [json.loads(r.get_data()) for r in requests(httpserver)]
    assert bodies == [{"order_id": "500900", "request_id": f"orderhub-{p.shipment_id}", "pack_list": [{
        "shipped_order_info": [{"shipped_order_id": "6919000000000000001", "shipped_num": 1}],
        "logistics_code": number, "company_code": code}]} for p, number, code in
        zip(pushes, ("SF-A", "YT-B"), ("shunfeng", "yuantong"))]
    params = dict(requests(httpserver)[1].args)
    assert params["method"] == "order.logisticsAddMultiPack"
    assert params["sign"] == douyin.sign("dysplit-key", "dysplit-secret", "order.logisticsAddMultiPack",
                                         params["timestamp"], douyin.param_json(bodies[1]))
    pushes[0].refresh_from_db()
    assert pushes[0].platform_reference == "7398056775972421900"


def test_split_order_every_parcel_goes_to_a_platform_that_takes_several(httpserver, split_order):
    shop = make_shop(httpserver, Platform.MINIAPP, "wxsplit")
    httpserver.expect_request("/api/orderhub/v1/orders/500900/shipments").respond_with_handler(answer({"ok": True}))
    pushes = split_order(shop)
    assert tracking_push.process_many([p.pk for p in pushes]).sent == 2
    assert [(b["tracking_number"], b["package_no"]) for b in (json.loads(r.get_data()) for r in requests(httpserver))] \
        == [("SF-A", 1), ("YT-B", 2)]


def test_a_claimed_row_is_not_pushed_by_a_second_worker(httpserver, system):
    shop = make_shop(httpserver, Platform.TAOBAO, "tbclaim")
    _order, push = ship(shop, system)
    now = timezone.now()
    TrackingPush.objects.filter(pk=push.pk).update(claimed_until=now + timedelta(minutes=5))
    assert tracking_push.process(push.pk, now=now) == "skipped"
    assert retry_tracking_pushes() == tracking_push.PushReport().as_dict()
    assert requests(httpserver) == []


def test_the_retry_schedule_is_registered():
    from orders.management.commands.setup_schedules import SCHEDULES

    entry = next(e for e in SCHEDULES if e["func"] == "orders.tracking_push_tasks.retry_tracking_pushes")
    assert entry["minutes"] >= 1


# --- who may see and retry -----------------------------------------------------------------------
ROLE_TABLE = {  # written from the role descriptions: ops and supervisors handle platforms, warehouse may look
    "customer_service": (403, False), "warehouse": (200, False), "finance": (403, False),
    "operations": (200, True), "supervisor": (200, True),
}


@pytest.fixture
def failed_push(httpserver, system, monkeypatch):
    monkeypatch.setattr(tracking_push, "MAX_ATTEMPTS", 1)
    shop = make_shop(httpserver, Platform.TAOBAO, "tbadmin")
    httpserver.expect_ordered_request("/router/rest").respond_with_handler(answer({}, 500))
    _order, push = ship(shop, system)
    push = run(push)
    assert push.status == S.FAILED
    httpserver.clear()
    httpserver.expect_request("/router/rest").respond_with_handler(
        answer({"logistics_offline_send_response": {"shipping": {"is_success": True}}}))
    return push


@pytest.mark.parametrize("role", list(ROLE_TABLE))
def test_admin_list_and_retry_now_per_role(role, failed_push):
    list_status, may_retry = ROLE_TABLE[role]
    client = Client()
    client.force_login(staff(role))
    url = reverse("admin:orders_trackingpush_changelist")
    response = client.get(url)
    assert response.status_code == list_status
    if list_status == 200:
        assert failed_push.tracking_number in response.content.decode()
    response = client.post(url, {"action": "retry_selected", "_selected_action": [failed_push.pk]})
    failed_push.refresh_from_db()
    assert failed_push.status == (S.SENT if may_retry else S.FAILED)
    pushed = OrderEvent.objects.filter(order=failed_push.order, kind="tracking_pushed")
    assert [e.actor_label for e in pushed] == ([role] if may_retry else [])


def test_retry_now_refused_in_the_service_and_scoped(failed_push):
    with pytest.raises(NotPermitted):
        tracking_push.retry_now(actor=Actor.of(staff("warehouse"), Source.ADMIN), push_ids=[failed_push.pk])
    other = ShopFactory(code="elsewhere")
    lead = scoped(staff("supervisor", "lead-b"), shops=[other])
    assert tracking_push.retry_now(actor=Actor.of(lead, Source.ADMIN), push_ids=[failed_push.pk]).as_dict() == \
        tracking_push.PushReport().as_dict()
    failed_push.refresh_from_db()
    assert failed_push.status == S.FAILED
    client = Client()
    client.force_login(lead)
    assert client.get(reverse("admin:orders_trackingpush_change", args=[failed_push.pk])).status_code in (302, 404)
    assert failed_push.tracking_number not in client.get(reverse("admin:orders_trackingpush_changelist")).content.decode()


def test_retry_now_sends_a_failed_push_once(failed_push):
    ops = Actor.of(staff("operations"), Source.ADMIN)
    assert tracking_push.retry_now(actor=ops, push_ids=[failed_push.pk]).sent == 1
    assert tracking_push.retry_now(actor=ops, push_ids=[failed_push.pk]).skipped == 1  # sent: never again
    failed_push.refresh_from_db()
    assert failed_push.status == S.SENT


def test_admin_detail_shows_the_summary_without_secrets(failed_push):
    client = Client()
    client.force_login(staff("operations"))
    response = client.get(reverse("admin:orders_trackingpush_change", args=[failed_push.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and "taobao.logistics.offline.send" in html
    assert "tbadmin-token" not in html and "tbadmin-secret" not in html
