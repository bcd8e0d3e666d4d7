"""E-waybills for batch parcels: sandbox numbers, KDNiao against a local fake server,
idempotency, partial failure, permissions per role (table written by hand from the role
descriptions), warehouse scoping, receiver decryption (audited once per print, never stored)
and the 100 × 180 mm label with its inline SVG Code 128 barcode."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from itertools import count

import pytest
from django.test import Client
from django.urls import reverse
from werkzeug import Response

from config.actors import Actor, Source
from config.errors import InvalidInput, NotFound, NotPermitted
from orders import batches, services, waybills
from orders.carriers import kdniao
from orders.models import (CarrierAccount, EventKind, Order, OrderEvent, Parcel, ParcelOrder, Platform,
                           ReceiverDecryption, Shipment, TrackingProvider, Waybill)
from orders.platforms.base import NormalizedLine, NormalizedOrder
from orders.platforms.sandbox import sandbox_encrypt
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, scoped, staff, stock
from tests.orders.platforms.shared import load

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
_seq = count(1)


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


def order(shop, sku, *, phone="13800138000", name="张三", address="人民路 1 号", raw=None, gift=None):
    lines = [NormalizedLine(title=sku.name, quantity=2, unit_price=Decimal("10"), sku_code=sku.code)]
    if gift is not None:
        lines.append(NormalizedLine(title=f"赠品 {gift.name}", quantity=1, sku_code=gift.code, is_gift=True))
    data = NormalizedOrder(
        platform_order_id=f"W{next(_seq)}", paid=True, paid_amount=Decimal("20"), goods_amount=Decimal("20"),
        receiver_name=name, receiver_phone=phone, buyer_phone=phone, province="江苏省", city="苏州市",
        district="姑苏区", address=address, lines=lines, raw=raw or {})
    return services.order_allocate(order=services.order_create(shop=shop, data=data, actor=SYSTEM), actor=SYSTEM)


@pytest.fixture
def world():
    su = WarehouseFactory(code="suzhou", name="苏州仓", priority=1, province="江苏省", city="苏州市", district="吴中区",
                          address="木渎镇 88 号", contact_name="苏州仓发货组", contact_phone="051268880000")
    gz = WarehouseFactory(code="guangzhou", name="广州仓", priority=2, province="广东省", city="广州市",
                          address="黄埔 1 号", contact_name="广州仓", contact_phone="02088880000")
    a, gift = SkuFactory(code="SKU-A", name="杯子"), SkuFactory(code="SKU-G", name="小勺")
    for sku in (a, gift):
        stock(su, sku, 100)
    return {"su": su, "gz": gz, "a": a, "gift": gift, "shop": ShopFactory(code="tmall")}


def batch_with(world, n=1, **kwargs):
    orders_ = [order(world["shop"], world["a"], phone=f"1380013800{i}", name=f"客户{i}", **kwargs) for i in range(n)]
    return batches.batch_build(warehouse=world["su"], actor=SYSTEM), orders_


def person(role, **scope):
    user = staff(role)
    if scope:
        scoped(user, **scope)
    return Actor.of(user, Source.ADMIN)


# --- sandbox numbers, idempotency, shipments, events ----------------------------------------------
def test_sandbox_issues_unique_numbers_and_sets_every_shipment(world):
    batch, (o1, o2) = batch_with(world, 2)
    result = waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    assert len(result.issued) == 2 and not result.failed
    numbers = [w.tracking_number for w in Waybill.objects.order_by("id")]
    assert len(set(numbers)) == 2 and all(n.startswith("SB") and n[2:].isdigit() and len(n) == 14 for n in numbers)
    for o in (o1, o2):
        shipment = Shipment.objects.get(order=o)
        waybill = ParcelOrder.objects.get(order=o).parcel.waybill
        assert (shipment.carrier, shipment.tracking_number) == ("YTO", waybill.tracking_number)
        event = OrderEvent.objects.get(order=o, kind=EventKind.WAYBILL_ISSUED)
        assert event.is_public is False and waybill.tracking_number in event.message
    assert Waybill.objects.first().provider == TrackingProvider.SANDBOX
    assert Waybill.objects.get(parcel__members__order=o1).sort_code == "江苏-苏州"


def test_requesting_again_keeps_the_numbers(world):
    batch, _ = batch_with(world, 2)
    waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    before = dict(Waybill.objects.values_list("parcel_id", "tracking_number"))
    again = waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    assert (len(again.issued), len(again.kept)) == (0, 2)
    assert dict(Waybill.objects.values_list("parcel_id", "tracking_number")) == before
    parcel = Parcel.objects.first()
    assert waybills.waybill_request(parcel=parcel, actor=SYSTEM).tracking_number == before[parcel.pk]
    assert OrderEvent.objects.filter(kind=EventKind.WAYBILL_ISSUED).count() == 2


def test_a_warehouse_without_sender_address_is_a_clear_refusal(world):
    world["su"].contact_phone = ""
    world["su"].save()
    batch, _ = batch_with(world, 1)
    with pytest.raises(InvalidInput, match="发件电话"):
        waybills.waybill_request(parcel=Parcel.objects.get(), actor=SYSTEM)
    result = waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    assert result.failed and "发件地址" in result.failed[0][1] and not Waybill.objects.exists()


# --- KDNiao against a local fake server --------------------------------------------------------------
def kdniao_account(httpserver):
    return CarrierAccount.objects.create(provider=TrackingProvider.KDNIAO, account_id="1237100", app_key="KEY-1",
                                         api_url=httpserver.url_for("/Ebusiness/EbusinessOrderHandle.aspx"),
                                         is_default=True)



def test_a_kdniao_account_not_marked_default_leaves_waybills_to_the_sandbox(world):
    # The demo keeps a KDNiao account only to verify pushes: requesting waybills must not call out.
    CarrierAccount.objects.create(provider=TrackingProvider.KDNIAO, account_id="1109259", app_key="S")
    batch, _ = batch_with(world, 1)
    result = waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    assert not result.failed
    assert Waybill.objects.get().tracking_number.startswith("SB")

def test_kdniao_partial_failure_keeps_the_good_parcels(world, httpserver):
    kdniao_account(httpserver)
    batch, (good, bad) = batch_with(world, 2)
    bad_code = ParcelOrder.objects.get(order=bad).parcel.code
    seen = []

    def answer(request):
        data = json.loads(request.form["RequestData"])
        seen.append(request.form)
        assert request.form["DataSign"] == kdniao.data_sign(request.form["RequestData"], "KEY-1")
        if data["OrderCode"] == bad_code:
            body = {"EBusinessID": "1237100", "Success": False, "ResultCode": "105", "Reason": "收件地址不在服务范围"}
        else:
            body = {"EBusinessID": "1237100", "Success": True, "ResultCode": "100", "Order": {
                "OrderCode": data["OrderCode"], "ShipperCode": "YTO", "LogisticCode": "YT7000000000001",
                "MarkDestination": "300-A1", "PackageName": "苏州转运中心"}}
        return Response(json.dumps(body, ensure_ascii=False), 200, content_type="application/json")

    httpserver.expect_request("/Ebusiness/EbusinessOrderHandle.aspx", method="POST").respond_with_handler(answer)
    result = waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    assert [w.tracking_number for w in result.issued] == ["YT7000000000001"]
    assert result.failed == [(bad_code, "快递鸟电子面单失败(105): 收件地址不在服务范围")]
    assert Shipment.objects.get(order=good).tracking_number == "YT7000000000001"
    assert Shipment.objects.get(order=bad).tracking_number == ""
    w = Waybill.objects.get()
    assert (w.provider, w.sort_code, w.package_center) == ("kdniao", "300-A1", "苏州转运中心")
    request_data = json.loads(seen[0]["RequestData"])
    assert seen[0]["RequestType"] == "1007" and request_data["Sender"]["Mobile"] == "051268880000"
    assert request_data["Receiver"]["Name"].startswith("客户") and request_data["ShipperCode"] == "YTO"


# --- permissions per role (by hand: whoever may print batches) --------------------------------------
ROLES = [("warehouse", True), ("operations", True), ("supervisor", True),
         ("customer_service", False), ("finance", False)]


@pytest.mark.parametrize("role, allowed", ROLES)
def test_who_may_request_and_print_waybills(world, role, allowed):
    batch, _ = batch_with(world, 1)
    actor = person(role)
    if not allowed:
        with pytest.raises(NotPermitted):
            waybills.batch_request_waybills(batch=batch, actor=actor)
    client = Client()
    client.force_login(actor.user)
    response = client.post(reverse("admin:orders_pickbatch_waybills_request", args=[batch.pk]))
    assert response.status_code == (302 if allowed else 403)
    assert Waybill.objects.count() == (1 if allowed else 0)
    labels = client.get(reverse("admin:orders_pickbatch_labels", args=[batch.pk]))
    assert labels.status_code == (200 if allowed else 403)
    if allowed:
        w = Waybill.objects.get()
        assert (w.printed_by, w.print_count) == (role, 1) and w.printed_at is not None


def test_another_warehouses_batch_and_parcel_are_404(world):
    batch, _ = batch_with(world, 1)
    actor = person("warehouse", warehouses=[world["gz"]])
    with pytest.raises(NotFound):
        waybills.batch_request_waybills(batch=batch, actor=actor)
    with pytest.raises(NotFound):
        waybills.parcel_get(pk=Parcel.objects.get().pk, actor=actor)
    client = Client()
    client.force_login(actor.user)
    for name in ("waybills", "labels"):
        assert client.get(reverse(f"admin:orders_pickbatch_{name}", args=[batch.pk])).status_code == 404
    assert client.post(reverse("admin:orders_pickbatch_waybills_request", args=[batch.pk])).status_code == 404
    assert not Waybill.objects.exists()


# --- the label ---------------------------------------------------------------------------------------
def test_label_page_has_the_page_size_the_svg_barcode_and_the_full_receiver(world):
    o = order(world["shop"], world["a"], gift=world["gift"])
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    number = Waybill.objects.get().tracking_number
    client = Client()
    client.force_login(staff("warehouse"))  # no orders.view_pii: the courier's label is still full
    page = client.get(reverse("admin:orders_pickbatch_labels", args=[batch.pk])).content.decode()
    assert "@page { size: 100mm 180mm; margin: 0 }" in page
    assert "<svg" in page and "<?xml" not in page and "<script src" not in page
    assert number in page and "13800138000" in page and "张三" in page and "人民路 1 号" in page
    assert "苏州仓发货组" in page and o.number in page and "杯子 × 2" in page and "含赠品" in page
    assert page.count('class="label"') == 1
    batch.refresh_from_db()
    assert batch.printed_by == "warehouse"
    assert not ReceiverDecryption.objects.exists()  # stored in clear: nothing decrypted


def test_code128_svg_is_bars_only():
    svg = str(waybills.code128_svg("SB000000000042"))
    assert svg.startswith("<svg") and svg.count("<rect") > 20
    with pytest.raises(InvalidInput):
        waybills.code128_svg("<script>")


# --- receiver decryption -----------------------------------------------------------------------------
def sandbox_encrypted_order(world):
    shop = ShopFactory(code="sbx", platform=Platform.SANDBOX)
    raw = {"order_no": "SBX-1", "receiver": {"name": sandbox_encrypt("王小明"), "phone": sandbox_encrypt("13912345678"),
                                             "detail": sandbox_encrypt("幸福路 8 号 3 单元")}}
    return order(shop, world["a"], phone="", name="王**", address="幸**路", raw=raw)


def test_encrypted_receiver_is_decrypted_once_per_print_audited_and_never_stored(world):
    o = sandbox_encrypted_order(world)
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    user = staff("warehouse")
    client = Client()
    client.force_login(user)
    client.post(reverse("admin:orders_pickbatch_waybills_request", args=[batch.pk]))
    assert Waybill.objects.count() == 1 and ReceiverDecryption.objects.count() == 1  # the carrier needs it
    for prints in (1, 2):
        page = client.get(reverse("admin:orders_pickbatch_labels", args=[batch.pk])).content.decode()
        assert "王小明" in page and "13912345678" in page and "幸福路 8 号 3 单元" in page
        assert ReceiverDecryption.objects.count() == 1 + prints
    audit = ReceiverDecryption.objects.order_by("-id").first()
    assert (audit.order_id, audit.actor_id, audit.reason, audit.succeeded) == (o.pk, user.pk, "print_waybill", True)
    assert audit.fields == ["detail", "name", "phone"] and audit.waybill is not None
    o.refresh_from_db()
    assert (o.receiver_name, o.receiver_phone, o.address) == ("王**", "", "幸**路")
    stored = json.dumps(list(Order.objects.values()), default=str, ensure_ascii=False) + json.dumps(
        list(ReceiverDecryption.objects.values()), default=str, ensure_ascii=False) + json.dumps(
        list(OrderEvent.objects.values()), default=str, ensure_ascii=False)
    assert "王小明" not in stored and "13912345678" not in stored and "幸福路 8 号" not in stored


def test_masked_roles_still_see_masked_receiver_elsewhere(world):
    o = order(world["shop"], world["a"])
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    client = Client()
    client.force_login(staff("warehouse"))
    for url in (reverse("admin:orders_pickbatch_waybills", args=[batch.pk]),
                reverse("admin:orders_pickbatch_packing", args=[batch.pk]),
                reverse("admin:orders_order_change", args=[o.pk])):
        page = client.get(url).content.decode()
        assert "13800138000" not in page and "人民路 1 号" not in page, url


def test_taobao_oaid_is_decrypted_through_the_adapter_against_a_fake_top(world, httpserver):
    raw = load("taobao/trade_fullinfo_get.jdp_push_row.json")
    body = copy.deepcopy(json.loads(raw["jdp_response"]) if isinstance(raw.get("jdp_response"), str) else raw)
    body["trade_fullinfo_get_response"]["trade"]["oaid"] = "OAID-1"
    shop = ShopFactory(code="tb", platform=Platform.TAOBAO, app_key="k", app_secret="s", access_token="t",
                       api_base_url=httpserver.url_for("/").rstrip("/"))
    o = order(shop, world["a"], phone="", name="张**", address="幸**路示例小区**园", raw=body)
    httpserver.expect_request("/router/rest", method="POST").respond_with_json({"top_oaid_decrypt_response": {
        "receiver_list": {"receiver": [{"oaid": "OAID-1", "tid": "452790065331038", "name": "张三丰",
                                        "mobile": "13800001234", "address_detail": "幸福路示例小区 6 栋"}]}}})
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    result = waybills.batch_request_waybills(batch=batch, actor=person("supervisor"))
    assert not result.failed, result.failed
    form = httpserver.log[0][0].args  # TOP parameters travel in the query string (as the sync sends them)
    assert form["method"] == "taobao.top.oaid.decrypt"
    # scene 1002 = 4通一达电子面单发货: the default e-waybill carrier is YTO
    assert json.loads(form["query_list"]) == [{"oaid": "OAID-1", "tid": o.platform_order_id, "scene": "1002"}]
    audit = ReceiverDecryption.objects.get()
    assert audit.platform == "taobao" and audit.succeeded


def test_a_refused_decryption_is_audited_and_reported(world):
    o = sandbox_encrypted_order(world)
    o.raw["receiver"]["phone"] = "~SB~***~"
    Order.objects.filter(pk=o.pk).update(raw=o.raw)
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    result = waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    assert result.failed and "解密失败" in result.failed[0][1] and not Waybill.objects.exists()
    audit = ReceiverDecryption.objects.get()
    assert audit.succeeded is False and audit.order_id == o.pk


@pytest.mark.parametrize("role, visible", [("supervisor", True), ("warehouse", False), ("operations", False),
                                           ("customer_service", False), ("finance", False)])
def test_decryption_audit_is_read_only_for_supervisors(world, role, visible):
    sandbox_encrypted_order(world)
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    client = Client()
    client.force_login(staff(role))
    response = client.get(reverse("admin:orders_receiverdecryption_changelist"))
    assert response.status_code == (200 if visible else 403)
    if visible:
        audit = ReceiverDecryption.objects.get()
        assert client.get(reverse("admin:orders_receiverdecryption_change", args=[audit.pk])).status_code == 200
        assert client.post(reverse("admin:orders_receiverdecryption_delete", args=[audit.pk])).status_code == 403
        assert ReceiverDecryption.objects.count() == 1


# --- the order's full chain shows its waybill, its push back and (for supervisors) decryptions -------
@pytest.mark.parametrize("role, sees_decryptions", [("supervisor", True), ("warehouse", False),
                                                    ("customer_service", False)])
def test_full_chain_export_has_the_waybill_and_the_decryptions_for_those_who_may_read_them(
        world, role, sees_decryptions):
    import io

    import openpyxl

    o = sandbox_encrypted_order(world)
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    waybills.batch_request_waybills(batch=batch, actor=SYSTEM)
    waybill = Waybill.objects.get()
    client = Client()
    client.force_login(staff(role))
    response = client.get(reverse("admin:orders_order_chain_export", args=[o.pk]))
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    rows = [list(r) for r in book["面单与回传"].iter_rows(values_only=True)]
    assert rows[1][1:5] == [Parcel.objects.get().code, "YTO", waybill.tracking_number, "沙箱快递"]
    assert rows[1][6] == SYSTEM.label
    decryptions = [list(r) for r in book["解密记录"].iter_rows(values_only=True)][1:]
    if sees_decryptions:
        assert len(decryptions) == 1 and decryptions[0][3] == "detail、name、phone" and decryptions[0][4] == "是"
    else:
        assert decryptions == [["", "", "", "", "", "无权查看解密记录", ""]]
    text = json.dumps([list(r) for s in book.worksheets for r in s.iter_rows(values_only=True)], default=str,
                      ensure_ascii=False)
    assert "王小明" not in text and "13912345678" not in text  # never the clear receiver
