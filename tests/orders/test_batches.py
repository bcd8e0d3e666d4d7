"""Pick batches: merge rules, undo, pick and packing lists, no double picking, priority,
warehouse scoping and permissions (expectations written from the role descriptions)."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import pytest
from django.test import Client
from django.urls import reverse

from config.actors import Actor, Source
from config.errors import NotFound, NotPermitted, TransitionNotAllowed
from orders import batches, services, shipping
from orders.models import Order, Parcel, ParcelOrder, PickBatch, Shipment
from orders.platforms.base import NormalizedLine, NormalizedOrder
from inventory.models import StockLevel
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, scoped, staff, stock

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
_seq = count(1)


def order(shop, lines, *, phone="13800138000", name="张三", address="人民路 1 号", presale=False, tags=(),
          gifts=(), note=""):
    data = NormalizedOrder(
        platform_order_id=f"B{next(_seq)}", paid=True, paid_amount=Decimal("100"), goods_amount=Decimal("100"),
        receiver_name=name, receiver_phone=phone, buyer_phone=phone, province="江苏省", city="苏州市",
        district="姑苏区", address=address, is_presale=presale, tags=list(tags), buyer_note=note,
        lines=[NormalizedLine(title=s.name, quantity=q, unit_price=Decimal("10"), sku_code=s.code) for s, q in lines]
        + [NormalizedLine(title=f"赠品 {s.name}", quantity=q, sku_code=s.code, is_gift=True) for s, q in gifts])
    created = services.order_create(shop=shop, data=data, actor=SYSTEM)
    return services.order_allocate(order=created, actor=SYSTEM)


@pytest.fixture
def world():
    su = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    gz = WarehouseFactory(code="guangzhou", name="广州仓", priority=2)
    a, b, gift = SkuFactory(code="SKU-A", name="杯子"), SkuFactory(code="SKU-B", name="盘子"), SkuFactory(
        code="SKU-G", name="小勺")
    for sku in (a, b, gift):
        stock(su, sku, 100)
    StockLevel.objects.filter(warehouse=su, sku=a).update(location="A-01-02")
    StockLevel.objects.filter(warehouse=su, sku=b).update(location="B-03-01")
    return {"su": su, "gz": gz, "a": a, "b": b, "gift": gift, "shop": ShopFactory(code="tmall")}


def parcel_of(o: Order) -> Parcel:
    return ParcelOrder.objects.get(order=o).parcel


def together(x: Order, y: Order) -> bool:
    return parcel_of(x).pk == parcel_of(y).pk


# --- merge rules -------------------------------------------------------------------------------
def test_same_customer_same_address_same_warehouse_merge_into_one_parcel(world):
    x = order(world["shop"], [(world["a"], 1)])
    y = order(world["shop"], [(world["b"], 2)])
    other = order(world["shop"], [(world["a"], 1)], phone="13900139000", name="李四")
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert together(x, y) and not together(x, other)
    assert (batch.order_count, batch.parcel_count) == (3, 2)
    assert Parcel.objects.filter(batch=batch).count() == 2
    # every order has its open shipment in the warehouse, with the reserved lines
    assert [(s.status, s.warehouse.code, [(line.order_line.sku.code, line.quantity) for line in s.lines.all()])
            for s in Shipment.objects.filter(order=y)] == [("created", "suzhou", [("SKU-B", 2)])]


def test_a_held_order_is_never_in_a_batch(world):
    x = order(world["shop"], [(world["a"], 1)])
    held = order(world["shop"], [(world["a"], 1)])
    services.order_hold(order=held, actor=SYSTEM, note="客户要求暂缓")
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert ParcelOrder.objects.filter(order=held).count() == 0
    assert parcel_of(x).members.count() == 1


@pytest.mark.parametrize("change", [{"name": "王五"}, {"address": "人民路 2 号"}, {"phone": "13700137000"}])
def test_a_different_receiver_or_address_never_merges(world, change):
    x = order(world["shop"], [(world["a"], 1)])
    y = order(world["shop"], [(world["a"], 1)], **change)
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert not together(x, y)


def test_a_shop_that_forbids_merging_keeps_its_orders_apart(world):
    strict = ShopFactory(code="jd-strict", allow_merge=False)
    x = order(strict, [(world["a"], 1)])
    y = order(strict, [(world["a"], 1)])
    z = order(world["shop"], [(world["a"], 1)])
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert not together(x, y) and not together(x, z) and not together(y, z)


def test_presale_and_normal_orders_never_share_a_parcel(world):
    normal = order(world["shop"], [(world["a"], 1)])
    presale = order(world["shop"], [(world["a"], 1)], presale=True)
    presale2 = order(world["shop"], [(world["b"], 1)], presale=True)
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert not together(normal, presale)
    assert together(presale, presale2)


def test_orders_from_different_warehouses_never_merge(world):
    gz, c = world["gz"], SkuFactory(code="SKU-C")
    stock(gz, c, 10)  # only 广州仓 holds SKU-C
    x = order(world["shop"], [(world["a"], 1)])
    y = order(world["shop"], [(c, 1)])
    su_batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    gz_batch = batches.batch_build(warehouse=gz, actor=SYSTEM)
    assert parcel_of(x).batch == su_batch and parcel_of(y).batch == gz_batch
    assert parcel_of(x).members.count() == parcel_of(y).members.count() == 1


# --- undo ----------------------------------------------------------------------------------------
def test_a_merge_is_undone_before_packing_and_refused_after(world):
    x = order(world["shop"], [(world["a"], 1)])
    y = order(world["shop"], [(world["b"], 1)])
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    merged = parcel_of(x)
    split = batches.parcel_unmerge(parcel=merged, actor=Actor.of(staff("warehouse"), Source.ADMIN))
    assert len(split) == 2 and not together(x, y)
    batch.refresh_from_db()
    assert batch.parcel_count == 2 and batch.order_count == 2

    # merged again in another batch is not possible (they are in this one): build a fresh pair and pack one
    p = order(world["shop"], [(world["a"], 1)], phone="13600136000", name="赵六")
    q = order(world["shop"], [(world["b"], 1)], phone="13600136000", name="赵六")
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert together(p, q)
    shipping.shipment_transition(shipment=ParcelOrder.objects.get(order=p).shipment, name="pack", actor=SYSTEM)
    with pytest.raises(TransitionNotAllowed):
        batches.parcel_unmerge(parcel=parcel_of(p), actor=SYSTEM)
    assert together(p, q)


def test_undo_needs_the_permission(world):
    x = order(world["shop"], [(world["a"], 1)])
    order(world["shop"], [(world["b"], 1)])
    batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    with pytest.raises(NotPermitted):
        batches.parcel_unmerge(parcel=parcel_of(x), actor=Actor.of(staff("customer_service"), Source.ADMIN))
    assert parcel_of(x).members.count() == 2


# --- pick and packing lists ----------------------------------------------------------------------
def test_the_pick_list_sums_each_sku_across_orders_by_location(world):
    order(world["shop"], [(world["a"], 2), (world["b"], 1)])
    order(world["shop"], [(world["a"], 3)], phone="13900139000", name="李四")
    order(world["shop"], [(world["b"], 4)], phone="13700137000", name="王五")
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    rows = [(r.location, r.sku_code, r.sku_name, r.quantity, r.orders) for r in
            batches.pick_list(batch=batch, actor=SYSTEM)]
    assert rows == [("A-01-02", "SKU-A", "杯子", 5, 2), ("B-03-01", "SKU-B", "盘子", 5, 2)]


def test_the_packing_list_shows_gift_lines(world):
    x = order(world["shop"], [(world["a"], 1)], gifts=[(world["gift"], 1)])
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    [slip] = batches.packing_lists(batch=batch, actor=SYSTEM)
    assert slip.order_numbers == [x.number]
    assert [(line.sku_code, line.quantity, line.is_gift) for line in slip.lines] == [("SKU-A", 1, False),
                                                                                    ("SKU-G", 1, True)]
    assert slip.gift_count == 1
    c = Client()
    c.force_login(staff("warehouse"))
    html = c.get(reverse("admin:orders_pickbatch_packing", args=[batch.pk])).content.decode()
    assert "赠品" in html and "SKU-G" in html and x.number in html
    # the pick list picks the gift too
    assert {r.sku_code: r.quantity for r in batches.pick_list(batch=batch, actor=SYSTEM)} == {"SKU-A": 1, "SKU-G": 1}


def test_a_batched_order_is_not_picked_again_by_the_next_batch(world):
    x = order(world["shop"], [(world["a"], 1)])
    first = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    batches.batch_mark_printed(batch=first, actor=SYSTEM)
    y = order(world["shop"], [(world["b"], 1)], phone="13900139000", name="李四")
    second = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    assert [m.order for m in ParcelOrder.objects.filter(parcel__batch=second)] == [y]
    assert ParcelOrder.objects.filter(order=x).count() == 1
    assert Shipment.objects.filter(order=x).count() == 1
    assert batches.batch_build(warehouse=world["su"], actor=SYSTEM) is None  # nothing left to pick
    first.refresh_from_db()
    assert first.printed_at is not None and first.printed_by == "tests"


def test_presale_orders_flagged_for_priority_are_picked_first(world):
    plain = order(world["shop"], [(world["a"], 1)])
    presale = order(world["shop"], [(world["b"], 1)], presale=True, phone="13900139000", name="李四")
    urgent = order(world["shop"], [(world["gift"], 2)], presale=True, tags=["优先发货"], phone="13700137000",
                   name="王五")
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    slips = batches.packing_lists(batch=batch, actor=SYSTEM)
    assert slips[0].order_numbers == [urgent.number] and slips[0].priority
    assert {s.order_numbers[0] for s in slips[1:]} == {plain.number, presale.number}
    rows = batches.pick_list(batch=batch, actor=SYSTEM)
    assert (rows[0].sku_code, rows[0].quantity, rows[0].priority) == ("SKU-G", 2, True)
    assert not any(r.priority for r in rows[1:])


def test_the_excel_download_has_the_pick_list_and_the_packing_lists(world):
    from io import BytesIO

    from openpyxl import load_workbook

    order(world["shop"], [(world["a"], 2)], gifts=[(world["gift"], 1)])
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    c = Client()
    c.force_login(staff("operations"))
    response = c.get(reverse("admin:orders_pickbatch_excel", args=[batch.pk]))
    assert response.status_code == 200
    wb = load_workbook(BytesIO(response.content))
    picks = list(wb["拣货单"].iter_rows(min_row=3, values_only=True))
    assert [(r[1], r[2], r[5]) for r in picks] == [("A-01-02", "SKU-A", 2), (None, "SKU-G", 1)]  # an empty cell reads back as None
    slips = list(wb["装箱单"].iter_rows(min_row=2, values_only=True))
    assert [(r[7], r[9], r[10]) for r in slips] == [("SKU-A", 2, None), ("SKU-G", 1, "赠品")]
    batch.refresh_from_db()
    assert batch.printed_at is not None


# --- scope and permissions -----------------------------------------------------------------------
def test_a_suzhou_user_sees_and_prints_only_suzhou_batches(world):
    gz, c = world["gz"], SkuFactory(code="SKU-C")
    stock(gz, c, 10)
    order(world["shop"], [(world["a"], 1)])
    order(world["shop"], [(c, 1)], phone="13900139000")
    su_batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    gz_batch = batches.batch_build(warehouse=gz, actor=SYSTEM)
    user = scoped(staff("warehouse"), warehouses=[world["su"]])
    actor = Actor.of(user, Source.ADMIN)
    assert list(batches.batch_list(actor=actor)) == [su_batch]
    with pytest.raises(NotFound):
        batches.batch_get(pk=gz_batch.pk, actor=actor)
    with pytest.raises(NotFound):
        batches.batch_build(warehouse=gz, actor=actor)
    client = Client()
    client.force_login(user)
    for name in ("pick", "packing", "excel"):
        assert client.get(reverse(f"admin:orders_pickbatch_{name}", args=[gz_batch.pk])).status_code == 404
        assert client.get(reverse(f"admin:orders_pickbatch_{name}", args=[su_batch.pk])).status_code == 200
    listing = client.get(reverse("admin:orders_pickbatch_changelist")).content.decode()
    assert su_batch.number in listing and gz_batch.number not in listing
    gz_batch.refresh_from_db()
    assert gz_batch.printed_at is None


@pytest.mark.parametrize("role, allowed", [("warehouse", True), ("operations", True), ("supervisor", True),
                                           ("customer_service", False), ("finance", False)])
def test_who_may_build_and_print_batches(world, role, allowed):
    order(world["shop"], [(world["a"], 1)])
    client = Client()
    client.force_login(staff(role))
    response = client.post(reverse("admin:orders_pickbatch_build"), {"warehouse": world["su"].pk})
    assert (response.status_code == 302) is allowed, response.status_code
    assert PickBatch.objects.count() == (1 if allowed else 0)
    if not allowed:
        assert response.status_code == 403
        batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    else:
        batch = PickBatch.objects.get()
    for name in ("pick", "packing", "excel"):
        status = client.get(reverse(f"admin:orders_pickbatch_{name}", args=[batch.pk])).status_code
        assert status == (200 if allowed else 403), (name, status)
    batch.refresh_from_db()
    assert (batch.printed_at is not None) is allowed


def test_an_order_cancelled_after_the_batch_is_left_off_the_lists(world):
    keep = order(world["shop"], [(world["a"], 1)])
    gone = order(world["shop"], [(world["b"], 2)], phone="13900139000", name="李四")
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    services.order_cancel(order=gone, actor=SYSTEM, reason="买家取消")
    assert [s.order_numbers for s in batches.packing_lists(batch=batch, actor=SYSTEM)] == [[keep.number]]
    assert [(r.sku_code, r.quantity) for r in batches.pick_list(batch=batch, actor=SYSTEM)] == [("SKU-A", 1)]


def test_a_person_without_personal_data_rights_gets_masked_receivers_on_the_slips(world):
    order(world["shop"], [(world["a"], 1)], phone="13812345678", name="张三丰")
    batch = batches.batch_build(warehouse=world["su"], actor=SYSTEM)
    [masked] = batches.packing_lists(batch=batch, actor=Actor.of(staff("warehouse"), Source.ADMIN))
    [clear] = batches.packing_lists(batch=batch, actor=Actor.of(staff("supervisor"), Source.ADMIN))
    assert clear.phone == "13812345678" and clear.receiver == "张三丰"
    assert "13812345678" not in masked.phone and masked.receiver != "张三丰"
