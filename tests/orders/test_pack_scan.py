"""Packing by scan (`/pack/`, issue 15): the flow through the Django test client (plain forms,
no script), every refusal changing nothing, warehouse scoping, and who may use it — the
role table written by hand from the role descriptions: 仓管 (warehouse) and 主管
(supervisor) pack and ship on the floor; 客服, 财务 and 运营 do not."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import pytest
from django.test import Client

from config.actors import Actor, Source
from config.errors import NotFound, NotPermitted
from inventory.audit import audit
from inventory.models import StockLevel, StockMove
from orders import batches, packing, services
from orders.models import Order, OrderEvent, Parcel, ParcelOrder, Shipment
from orders.platforms.base import NormalizedLine, NormalizedOrder
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, scoped, staff, stock

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
_seq = count(1)


def make(shop, lines, *, gifts=(), phone="13800138000", name="张三"):
    data = NormalizedOrder(
        platform_order_id=f"PK{next(_seq)}", paid=True, paid_amount=Decimal("100"), goods_amount=Decimal("100"),
        receiver_name=name, receiver_phone=phone, buyer_phone=phone, province="江苏省", city="苏州市",
        district="姑苏区", address="人民路 1 号",
        lines=[NormalizedLine(title=s.name, quantity=q, unit_price=Decimal("10"), sku_code=s.code) for s, q in lines]
        + [NormalizedLine(title=f"赠品 {s.name}", quantity=q, sku_code=s.code, is_gift=True) for s, q in gifts])
    return services.order_allocate(order=services.order_create(shop=shop, data=data, actor=SYSTEM), actor=SYSTEM)


@pytest.fixture
def world():
    su = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    tj = WarehouseFactory(code="tianjin", name="天津仓", priority=2)
    a = SkuFactory(code="SKU-A", name="杯子", barcode="6901000000011")
    b = SkuFactory(code="SKU-B", name="盘子", barcode="6901000000028")
    g = SkuFactory(code="SKU-G", name="小勺", barcode="6901000000095")
    t = SkuFactory(code="SKU-T", name="天津特产", barcode="6901000000200")
    other = SkuFactory(code="SKU-X", name="别的商品", barcode="6901000000999")
    for sku in (a, b, g, other):
        stock(su, sku, 10)
    stock(tj, t, 10)
    StockLevel.objects.filter(warehouse=su, sku=a).update(location="A-01-02")
    shop = ShopFactory(code="tmall")
    order = make(shop, [(a, 2), (b, 1)], gifts=[(g, 1)])
    tj_order = make(shop, [(t, 1)], phone="13900139000", name="李四")
    batches.batch_build(warehouse=su, actor=SYSTEM)
    batches.batch_build(warehouse=tj, actor=SYSTEM)
    parcel = ParcelOrder.objects.get(order=order).parcel
    tj_parcel = ParcelOrder.objects.get(order=tj_order).parcel
    return {"su": su, "tj": tj, "a": a, "b": b, "g": g, "t": t, "other": other, "shop": shop, "order": order,
            "tj_order": tj_order, "parcel": parcel, "tj_parcel": tj_parcel}


def su_keeper(world, username="su-keeper"):
    return scoped(staff("warehouse", username), warehouses=[world["su"]])


def login(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def snapshot():
    """Everything a refusal must leave as it was."""
    return (sorted(Order.objects.values_list("pk", "status")),
            sorted(Shipment.objects.values_list("pk", "status", "carrier", "tracking_number")),
            sorted(StockLevel.objects.values_list("pk", "on_hand", "reserved")),
            OrderEvent.objects.count(), StockMove.objects.count())


def key(parcel: Parcel) -> str:
    return f"P{parcel.pk}"


def scan(c: Client, k: str, code: str, quantity: str = ""):
    seq = c.session.get("pack_progress", {}).get(k, {}).get("seq", 0)
    return c.post(f"/pack/box/{k}/", {"code": code, "quantity": quantity, "seq": str(seq)})


def scan_all(c: Client, world):
    k = key(world["parcel"])
    for code, qty in (("6901000000011", "2"), ("SKU-B", ""), ("6901000000095", "")):
        assert scan(c, k, code, qty).status_code == 302


# --- the happy path -----------------------------------------------------------------------------
def test_scan_pack_then_ship_moves_order_shipment_and_stock(world):
    c = login(su_keeper(world))
    page = c.get("/pack/")
    assert page.status_code == 200
    html = page.content.decode()
    assert world["parcel"].code in html and world["tj_parcel"].code not in html
    assert 'id="count-to-pack">1<' in html and 'autofocus' in html and "csrfmiddlewaretoken" in html

    opened = c.post("/pack/", {"code": world["order"].number})
    k = key(world["parcel"])
    assert opened.status_code == 302 and opened["Location"] == f"/pack/box/{k}/"
    box = c.get(f"/pack/box/{k}/").content.decode()
    assert "SKU-A" in box and "A-01-02" in box and "赠品" in box and "已扫 0 / 4 件" in box
    assert 'id="confirm-pack" disabled' in box

    scan_all(c, world)
    box = c.get(f"/pack/box/{k}/").content.decode()
    assert "已扫 4 / 4 件" in box and 'id="confirm-pack" disabled' not in box
    assert Order.objects.get(pk=world["order"].pk).status == "allocated"  # scanning changes nothing stored

    packed = c.post(f"/pack/box/{k}/pack/")
    assert packed.status_code == 302
    order = Order.objects.get(pk=world["order"].pk)
    shipment = Shipment.objects.get(order=order)
    assert (order.status, shipment.status) == ("packed", "packed")
    assert OrderEvent.objects.filter(order=order, kind="packed", actor__username="su-keeper", source="admin").exists()
    note = OrderEvent.objects.get(order=order, kind="note", data__via="scan")
    assert note.is_public is False and world["parcel"].code in note.message
    assert StockLevel.objects.get(warehouse=world["su"], sku=world["a"]).reserved == 2

    box = c.get(f"/pack/box/{k}/").content.decode()
    assert 'id="ship-form"' in box and 'name="carrier"' in box  # no tracking number yet: carrier + number
    shipped = c.post(f"/pack/box/{k}/ship/", {"carrier": "SF", "tracking_number": "SF1234567890"})
    assert shipped.status_code == 302 and shipped["Location"] == "/pack/"
    order.refresh_from_db()
    shipment.refresh_from_db()
    assert (order.status, shipment.status, shipment.carrier, shipment.tracking_number) == (
        "shipped", "shipped", "SF", "SF1234567890")
    level = StockLevel.objects.get(warehouse=world["su"], sku=world["a"])
    assert (level.on_hand, level.reserved) == (8, 0)
    assert StockLevel.objects.get(warehouse=world["su"], sku=world["g"]).on_hand == 9  # the gift left too
    assert StockMove.objects.filter(stock_level=level, kind="ship").exists()
    assert OrderEvent.objects.filter(order=order, kind="shipped", data__tracking_number="SF1234567890").exists()
    assert audit() == []
    assert 'id="count-shipped">1<' in c.get("/pack/").content.decode()


def test_a_box_with_a_printed_label_ships_on_its_own_tracking_number_only(world):
    su = world["su"]
    o = make(world["shop"], [(world["b"], 1)], phone="13700137000", name="王五")
    from orders import shipping
    label = shipping.shipment_create(order=o, actor=SYSTEM, warehouse=su, carrier="YTO", tracking_number="YT900")
    c = login(su_keeper(world))
    k = f"S{label.pk}"
    assert c.post("/pack/", {"code": "YT900"})["Location"] == f"/pack/box/{k}/"
    scan(c, k, "SKU-B")
    c.post(f"/pack/box/{k}/pack/")
    before = snapshot()
    wrong = c.post(f"/pack/box/{k}/ship/", {"tracking_number": "YT901"})
    assert wrong.status_code == 400 and "不是本包裹的运单号" in wrong.content.decode()
    assert snapshot() == before
    assert c.post(f"/pack/box/{k}/ship/", {"tracking_number": "yt900"}).status_code == 302
    label.refresh_from_db()
    assert (label.status, label.carrier, Order.objects.get(pk=o.pk).status) == ("shipped", "YTO", "shipped")


def test_scanning_the_same_form_twice_and_confirming_twice_is_harmless(world):
    c = login(su_keeper(world))
    k = key(world["parcel"])
    stale = str(0)
    c.post(f"/pack/box/{k}/", {"code": "SKU-B", "seq": stale})
    again = c.post(f"/pack/box/{k}/", {"code": "SKU-B", "seq": stale})  # the browser re-sent it
    assert again.status_code == 302
    assert c.session["pack_progress"][k]["seq"] == 1  # counted once
    c.post(f"/pack/box/{k}/", {"code": "6901000000011", "quantity": "2", "seq": "1"})
    c.post(f"/pack/box/{k}/", {"code": "SKU-G", "seq": "2"})
    c.post(f"/pack/box/{k}/pack/")
    before = snapshot()
    second = c.post(f"/pack/box/{k}/pack/", follow=True)
    assert second.status_code == 200 and "已装箱,未重复操作" in second.content.decode()
    assert snapshot() == before
    c.post(f"/pack/box/{k}/ship/", {"carrier": "ZTO", "tracking_number": "ZT1"})
    before = snapshot()
    twice = c.post(f"/pack/box/{k}/ship/", {"carrier": "ZTO", "tracking_number": "ZT1"}, follow=True)
    assert "已发货,未重复操作" in twice.content.decode()
    assert snapshot() == before


# --- refusals: a clear message, nothing changed -----------------------------------------------
@pytest.mark.parametrize("code,quantity,message", [
    ("SKU-X", "", "不在本包裹中"),  # a real SKU, not in this box
    ("0000000000000", "", "未知编号"),  # no such barcode
    ("6901000000028", "2", "数量超出"),  # the box wants one SKU-B
    ("SKU-A", "0", "数量必须是"),
    ("SKU-A", "abc", "数量必须是"),
])
def test_a_wrong_scan_is_refused_and_counts_nothing(world, code, quantity, message):
    c = login(su_keeper(world))
    k = key(world["parcel"])
    scan(c, k, "SKU-B") if message != "数量超出" else None
    progress = dict(c.session.get("pack_progress", {}))
    before = snapshot()
    response = scan(c, k, code, quantity)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert dict(c.session.get("pack_progress", {})) == progress
    assert snapshot() == before


def test_confirming_with_a_missing_gift_is_refused(world):
    c = login(su_keeper(world))
    k = key(world["parcel"])
    scan(c, k, "SKU-A", "2")
    scan(c, k, "SKU-B")
    before = snapshot()
    response = c.post(f"/pack/box/{k}/pack/")
    assert response.status_code == 400
    assert "赠品 SKU-G 缺 1 件" in response.content.decode()
    assert snapshot() == before


def test_confirming_with_a_short_quantity_is_refused(world):
    c = login(su_keeper(world))
    k = key(world["parcel"])
    scan(c, k, "SKU-A")
    scan(c, k, "SKU-B")
    scan(c, k, "SKU-G")
    before = snapshot()
    response = c.post(f"/pack/box/{k}/pack/")
    assert response.status_code == 400 and "SKU-A 缺 1 件" in response.content.decode()
    assert snapshot() == before


def test_shipping_before_packing_is_refused(world):
    c = login(su_keeper(world))
    before = snapshot()
    response = c.post(f"/pack/box/{key(world['parcel'])}/ship/", {"carrier": "SF", "tracking_number": "SF1"})
    assert response.status_code == 409 and "还没有装箱" in response.content.decode()
    assert snapshot() == before


def test_a_tracking_number_of_another_parcel_is_refused(world):
    from orders import shipping
    o = make(world["shop"], [(world["b"], 1)], phone="13700137000", name="王五")
    shipping.shipment_create(order=o, actor=SYSTEM, warehouse=world["su"], carrier="SF", tracking_number="SF777")
    c = login(su_keeper(world))
    k = key(world["parcel"])
    scan_all(c, world)
    c.post(f"/pack/box/{k}/pack/")
    before = snapshot()
    response = c.post(f"/pack/box/{k}/ship/", {"carrier": "SF", "tracking_number": "SF777"})
    assert response.status_code == 400 and "已用于其他包裹" in response.content.decode()
    bad = c.post(f"/pack/box/{k}/ship/", {"carrier": "SF", "tracking_number": "SF 1; drop"})
    assert bad.status_code == 400 and "运单号无效" in bad.content.decode()
    none = c.post(f"/pack/box/{k}/ship/", {"carrier": "", "tracking_number": "SF778"})
    assert none.status_code == 400 and "请选择快递公司" in none.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("what", ["hold", "cancel"])
def test_a_parcel_on_hold_or_cancelled_is_refused(world, what):
    c = login(su_keeper(world))
    k = key(world["parcel"])
    scan_all(c, world)
    if what == "hold":
        services.order_hold(order=world["order"], actor=SYSTEM, note="客户要求暂缓")
        wording = "已挂起"
    else:
        services.order_cancel(order=world["order"], actor=SYSTEM, reason="买家取消")
        wording = "已取消"
    before = snapshot()
    response = c.post(f"/pack/box/{k}/pack/")
    assert response.status_code == 409 and wording in response.content.decode()
    more = scan(c, k, "SKU-A")
    assert more.status_code == 409 and wording in more.content.decode()
    assert snapshot() == before


def test_a_shipped_parcel_is_not_packed_again(world):
    services.order_pack(order=world["order"], actor=SYSTEM)
    services.order_ship(order=world["order"], actor=SYSTEM, warehouse=world["su"], carrier="SF", tracking_number="S9")
    c = login(su_keeper(world))
    k = key(world["parcel"])
    before = snapshot()
    response = scan(c, k, "SKU-A")
    assert response.status_code == 409 and "已发货" in response.content.decode()
    assert c.post(f"/pack/box/{k}/pack/", follow=True).status_code == 200
    assert snapshot() == before


# --- scoping ------------------------------------------------------------------------------------
def test_a_suzhou_keeper_never_sees_or_touches_a_tianjin_parcel(world):
    c = login(su_keeper(world))
    html = c.get("/pack/").content.decode()
    assert "苏州仓" in html and world["tj_parcel"].code not in html and world["tj_order"].number not in html
    assert 'name="warehouse"' not in html  # one warehouse: nothing to choose
    before = snapshot()
    for code in (world["tj_order"].number, world["tj_parcel"].code):
        response = c.post("/pack/", {"code": code})
        assert response.status_code == 404
        assert "不是本仓的包裹或编号未知" in response.content.decode()
    tj_key = key(world["tj_parcel"])
    assert c.get(f"/pack/box/{tj_key}/").status_code == 404
    assert scan(c, tj_key, "SKU-T").status_code == 404
    assert c.post(f"/pack/box/{tj_key}/pack/").status_code == 404
    assert c.post(f"/pack/box/{tj_key}/ship/", {"carrier": "SF", "tracking_number": "SF1"}).status_code == 404
    # an unknown number reads the same as another warehouse's
    unknown = c.post("/pack/", {"code": "OH-NO-SUCH"})
    assert unknown.status_code == 404 and "不是本仓的包裹或编号未知" in unknown.content.decode()
    assert snapshot() == before


def test_the_service_refuses_another_warehouse_parcel_too(world):
    actor = Actor.of(su_keeper(world), Source.ADMIN)
    with pytest.raises(NotFound):
        packing.unit_find(code=world["tj_order"].number, actor=actor, warehouse=world["su"])
    with pytest.raises(NotFound):
        packing.unit_pack(key=key(world["tj_parcel"]), actor=actor, warehouse=world["su"], progress={})
    with pytest.raises(NotFound):  # even when the page is asked for a warehouse outside the scope
        packing.pack_board(actor=actor, warehouse=world["tj"])


def test_a_person_with_two_warehouses_picks_one_and_switches(world):
    user = scoped(staff("warehouse", "two-keeper"), warehouses=[world["su"], world["tj"]])
    c = login(user)
    first = c.get("/pack/").content.decode()
    assert "选择仓库" in first and world["parcel"].code not in first
    c.post("/pack/warehouse/", {"warehouse": str(world["tj"].pk)})
    html = c.get("/pack/").content.decode()
    assert world["tj_parcel"].code in html and world["parcel"].code not in html
    # the Suzhou parcel is in scope but not the chosen warehouse: a clear message
    response = c.post("/pack/", {"code": world["order"].number})
    assert response.status_code == 400 and "属于 苏州仓" in response.content.decode()
    # a warehouse outside the scope cannot be chosen
    elsewhere = WarehouseFactory(code="shenzhen", name="深圳仓")
    assert c.post("/pack/warehouse/", {"warehouse": str(elsewhere.pk)}).status_code == 400
    assert c.session["pack_warehouse"] == world["tj"].pk


# --- roles (hand-written: 仓管 and 主管 may; 客服, 财务, 运营 may not) ----------------------------
@pytest.mark.parametrize("role,allowed", [
    ("warehouse", True), ("supervisor", True),
    ("customer_service", False), ("finance", False), ("operations", False),
])
def test_who_may_pack_by_scan(world, role, allowed):
    c = login(staff(role))
    if not allowed:
        before = snapshot()
        for response in (c.get("/pack/"), c.post("/pack/", {"code": world["order"].number}),
                         c.get(f"/pack/box/{key(world['parcel'])}/"),
                         c.post(f"/pack/box/{key(world['parcel'])}/pack/")):
            assert response.status_code == 403
            assert "没有权限" in response.content.decode()
        assert snapshot() == before
        with pytest.raises(NotPermitted):
            packing.unit_pack(key=key(world["parcel"]), actor=Actor.of(staff(role), Source.ADMIN),
                              warehouse=world["su"], progress={})
        return
    c.post("/pack/warehouse/", {"warehouse": str(world["su"].pk)})  # unlimited: choose first
    k = key(world["parcel"])
    scan_all(c, world)
    assert c.post(f"/pack/box/{k}/pack/").status_code == 302
    assert c.post(f"/pack/box/{k}/ship/", {"carrier": "SF", "tracking_number": f"SF{role[:3]}1"}).status_code == 302
    assert Order.objects.get(pk=world["order"].pk).status == "shipped"


def test_the_role_table_agrees_with_config_roles():
    from config.roles import role_permissions

    for role, allowed in [("warehouse", True), ("supervisor", True), ("customer_service", False),
                          ("finance", False), ("operations", False)]:
        perms = role_permissions(role)
        assert (packing.PACK_PERMISSION in perms) is allowed, role
        assert (packing.SHIP_PERMISSION in perms) is allowed, role


def test_anonymous_goes_to_the_admin_login_and_back(world):
    response = Client().get("/pack/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/") and "next=/pack/" in response["Location"]


def test_every_form_needs_its_csrf_token(world):
    c = Client(enforce_csrf_checks=True)
    c.force_login(su_keeper(world))
    before = snapshot()
    assert c.post("/pack/", {"code": world["order"].number}).status_code == 403
    assert c.post(f"/pack/box/{key(world['parcel'])}/pack/").status_code == 403
    assert snapshot() == before


def test_the_page_reads_in_english(world):
    c = login(su_keeper(world))
    html = c.get(f"/pack/box/{key(world['parcel'])}/", headers={"accept-language": "en"}).content.decode()
    assert 'lang="en"' in html and "Confirm packing" in html and "确认装箱" not in html
    refused = scan(c, key(world["parcel"]), "SKU-X")
    assert refused.status_code == 400


def test_the_list_reads_in_a_fixed_number_of_queries(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = login(su_keeper(world))
    c.get("/pack/")
    with CaptureQueriesContext(connection) as few:
        assert c.get("/pack/").status_code == 200
    for i in range(8):
        make(world["shop"], [(world["b"], 1)], phone=f"1370013{i:04d}", name=f"买家{i}")
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    with CaptureQueriesContext(connection) as many:
        html = c.get("/pack/").content.decode()
    assert 'id="count-to-pack">9<' in html
    assert len(many) == len(few)
