"""The bulk path of `ingest_payloads`: the same rows as the per-order path, in a few statements."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from django.db import transaction

from inventory.models import Reservation
from orders import ingest
from orders.ingest import ingest_payloads, platform_actor
from orders.models import Customer, CustomerIdentity, EventKind, HoldReason, Order, OrderEvent, OrderLine, OrderStatus, Platform
from tests.factories import RoutingRuleFactory, ShopFactory, SkuFactory, WarehouseFactory, stock

pytestmark = pytest.mark.django_db
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 11, 10, 0, tzinfo=CST)


def sbx(n: int, *, phone: str | None = None, buyer: str | None = None, items=None, paid: bool = True,
        version: int = 1, refund: bool = False, presale: bool = False, province: str = "江苏省",
        city: str = "苏州市", district: str = "姑苏区", detail: str = "人民路 12 号") -> dict:
    """A sandbox platform order (the raw shape documented in orders/platforms/sandbox.py)."""
    no = f"SBX{n:06d}"
    placed = T0 + timedelta(minutes=n)
    if items is None:
        items = [(f"SKU-{1 + (n + k) % 3}", 1 + k % 2) for k in range(3)]
    return {
        "order_no": no, "version": version, "status": "paid" if paid else "pending_payment",
        "refund": {"status": "requested", "reason": "不想要了"} if refund else None,
        "created_at": placed.isoformat(), "paid_at": (placed + timedelta(minutes=1)).isoformat() if paid else None,
        "updated_at": (placed + timedelta(minutes=version)).isoformat(),
        "buyer": {"id": buyer if buyer is not None else f"sbx-u-{n}", "nick": f"买家{n}"},
        "receiver": {"name": f"收件人{n}", "phone": phone if phone is not None else f"138{n:08d}",
                     "province": province, "city": city, "district": district, "detail": detail},
        "items": [{"line_id": f"{no}-{k}", "sku_id": sku, "title": f"商品 {sku}", "quantity": qty,
                   "price": "19.90", "gift": False} for k, (sku, qty) in enumerate(items, start=1)],
        "shipping_fee": "6.00", "discount": "1.00", "total": "100.00",
        "presale": {"ship_by": (placed + timedelta(days=7)).isoformat()} if presale else None, "buyer_memo": "",
    }


@pytest.fixture
def world():
    shop = ShopFactory(code="sbx", platform=Platform.SANDBOX)
    suzhou = WarehouseFactory(code="suzhou", priority=10)
    tianjin = WarehouseFactory(code="tianjin", priority=20)
    for code in ("SKU-1", "SKU-2", "SKU-3"):
        sku = SkuFactory(code=code)
        stock(suzhou, sku, 50)
        stock(tianjin, sku, 50)
    short = SkuFactory(code="SKU-SHORT")
    stock(suzhou, short, 1)
    RoutingRuleFactory(name="江浙沪走苏州", position=1, warehouse=suzhou,
                       conditions={"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]})
    return shop


def mixed_batch() -> list:
    existing_v2 = sbx(1, version=2, detail="人民路 99 号")  # stored before: address changed
    existing_v2["receiver"]["phone"] = "13800000001"
    return [
        sbx(10, phone="13900000010", buyer="u-10"),
        sbx(11, phone="13900000010", buyer="u-10"),  # repeat customer, same batch
        sbx(12, phone="13800000001", buyer="u-old"),  # repeat of a customer stored before
        sbx(13, items=[("SKU-1", 1), ("NOPE-1", 2)]),  # unmapped SKU → held
        sbx(14, items=[]),  # no lines → held
        sbx(15, paid=False),  # unpaid: pending payment
        sbx(16, items=[("SKU-1", -1)]),  # bad quantity: fails alone
        "garbage",  # not an order object
        existing_v2,
        sbx(17, refund=True),  # refund requested at once
        sbx(18, presale=True, province="北京市", city="北京市", district="朝阳区"),
        sbx(19, phone="", buyer="u-19"),  # phone-less: known by the buyer id
        sbx(20, items=[("SKU-SHORT", 1)]),
        sbx(21, items=[("SKU-SHORT", 1)]),  # stock short for the second one
        sbx(10, phone="13900000010", buyer="u-10"),  # the same order twice in one batch
        sbx(22, phone="13900000022", buyer="u-10"),  # u-10's identity is already someone's
    ]


def snapshot(shop) -> dict:
    """Everything the two paths must agree on, without ids, numbers and write times."""
    skip = {"id", "number", "customer", "created_at", "updated_at", "shop"}
    orders = {}
    for order in Order.objects.filter(shop=shop).select_related("customer").order_by("platform_order_id"):
        row = {f.name: getattr(order, f.attname) for f in Order._meta.concrete_fields if f.name not in skip}
        row["customer"] = _customer_key(order.customer)
        assert re.fullmatch(r"OH\d{6}\d{8,}", order.number)
        row["lines"] = list(OrderLine.objects.filter(order=order).order_by("id").values_list(
            "platform_line_id", "platform_sku_id", "sku__code", "title", "quantity", "unit_price", "discount_amount",
            "is_gift"))
        keys = dict(OrderLine.objects.filter(order=order).values_list("id", "platform_line_id"))
        row["events"] = [
            (e.kind, e.from_status, e.to_status, e.message, _by_line_key(e.data, keys), e.actor_label, e.source,
             e.is_public,
             e.occurred_at if _dated(e) else None)
            for e in OrderEvent.objects.filter(order=order).order_by("id")]
        row["reservations"] = sorted(Reservation.objects.filter(order_line__order=order).values_list(
            "order_line__platform_line_id", "stock_level__warehouse__code", "quantity", "status"))
        orders[order.platform_order_id] = row
    customers = sorted((_customer_key(c), c.name, sorted(c.tags)) for c in Customer.objects.all())
    identities = sorted((i.platform, i.kind, i.value, _customer_key(i.customer)) for i in CustomerIdentity.objects.all())
    return {"orders": orders, "customers": customers, "identities": identities}


def _by_line_key(data: dict, keys: dict) -> dict:
    """An allocation event's data with line ids replaced by the lines' platform ids."""
    data = dict(data)
    if "reservations" in data:
        data["reservations"] = [[keys[line_id], *rest] for line_id, *rest in data["reservations"]]
    if "rules" in data:
        data["rules"] = {keys[int(k)]: v for k, v in data["rules"].items()}
    return data


def _dated(event) -> bool:
    """Events dated from the payload (created, paid, data holds); the others are stamped now."""
    return event.kind in (EventKind.CREATED, EventKind.PAID) or (
        event.kind == EventKind.HELD and event.data.get("reason") in (HoldReason.NO_LINES, HoldReason.SKU_UNMAPPED))


def _customer_key(customer):
    if customer is None:
        return None
    if customer.phone:
        return customer.phone
    return "identity:" + ",".join(sorted(customer.identities.values_list("value", flat=True)))


def run(shop, payloads, *, bulk: bool):
    report = ingest_payloads(shop=shop, payloads=payloads, actor=platform_actor(shop), bulk=bulk)
    return (report.summary(), report.failures, len(report.order_ids), report.allocation_errors)


class _Rollback(Exception):
    pass


def per_order_then_rollback(shop, payloads):
    """The per-order path's outcome on the same starting state, then undone."""
    try:
        with transaction.atomic():
            outcome = run(shop, payloads, bulk=False)
            snap = snapshot(shop)
            raise _Rollback
    except _Rollback:
        pass
    return outcome, snap


def test_bulk_and_per_order_paths_store_identical_rows(world, django_assert_max_num_queries):
    shop = world
    run(shop, [sbx(1, phone="13800000001", buyer="u-old")], bulk=False)  # stored before the batch
    expected_outcome, expected = per_order_then_rollback(shop, mixed_batch())
    assert Order.objects.filter(shop=shop).count() == 1  # rolled back

    outcome = run(shop, mixed_batch(), bulk=True)
    assert outcome == expected_outcome
    summary, failures, _n, _errors = outcome
    assert summary == "created=12 updated=1 unchanged=1 failed=2"
    assert [position for position, _reason in failures] == [7, 8]
    assert "数量必须是正整数" in failures[0][1]
    got = snapshot(shop)
    assert got["customers"] == expected["customers"]
    assert got["identities"] == expected["identities"]
    assert got["orders"].keys() == expected["orders"].keys()
    for pid in expected["orders"]:
        assert got["orders"][pid] == expected["orders"][pid], pid

    # The outcomes themselves, written by hand.
    orders = {o.platform_order_id: o for o in Order.objects.filter(shop=shop)}
    assert orders["SBX000010"].status == OrderStatus.ALLOCATED
    assert orders["SBX000010"].customer == orders["SBX000011"].customer
    assert orders["SBX000012"].customer == orders["SBX000001"].customer
    assert (orders["SBX000013"].status, orders["SBX000013"].hold_reason) == (OrderStatus.ON_HOLD, HoldReason.SKU_UNMAPPED)
    assert orders["SBX000013"].hold_note == "未映射的平台 SKU: NOPE-1"
    assert (orders["SBX000014"].status, orders["SBX000014"].hold_reason) == (OrderStatus.ON_HOLD, HoldReason.NO_LINES)
    assert orders["SBX000015"].status == OrderStatus.PENDING_PAYMENT and orders["SBX000015"].paid_at is None
    assert "SBX000016" not in orders
    assert orders["SBX000017"].refund_requested is True
    assert orders["SBX000001"].address.endswith("99 号")
    assert (orders["SBX000020"].status, orders["SBX000021"].status) == (OrderStatus.ALLOCATED, OrderStatus.ON_HOLD)
    assert orders["SBX000021"].hold_reason == HoldReason.STOCK_SHORT
    assert orders["SBX000019"].customer.phone == "" and orders["SBX000019"].customer.identities.get().value == "u-19"
    # u-10 stays with the first buyer who used it; the other phone is a customer of its own.
    assert orders["SBX000022"].customer.phone == "+8613900000022"
    assert CustomerIdentity.objects.get(value="u-10").customer.phone == "+8613900000010"
    assert len({o.number for o in orders.values()}) == len(orders)


def test_bulk_path_really_is_bulk(world, django_assert_max_num_queries):
    shop = world
    payloads = [sbx(100 + i, phone=f"139{i % 7:08d}") for i in range(40)]  # 40 orders, 7 customers
    with django_assert_max_num_queries(60):
        report = ingest_payloads(shop=shop, payloads=payloads, actor=platform_actor(shop))
    assert report.summary() == "created=40 updated=0 unchanged=0 failed=0"
    assert Order.objects.filter(shop=shop, status=OrderStatus.ALLOCATED).count() == 40
    assert Customer.objects.count() == 7
    assert OrderLine.objects.filter(order__shop=shop).count() == 120
    assert OrderEvent.objects.filter(order__shop=shop, kind=EventKind.CREATED).count() == 40


def test_rerun_is_idempotent(world):
    shop = world
    run(shop, [sbx(1, phone="13800000001", buyer="u-old")], bulk=True)
    run(shop, mixed_batch(), bulk=True)
    before = snapshot(shop)
    summary, failures, n, errors = run(shop, mixed_batch(), bulk=True)
    assert summary == "created=0 updated=0 unchanged=14 failed=2"
    assert [p for p, _r in failures] == [7, 8] and n == 0 and errors == []
    assert snapshot(shop) == before


def test_a_failing_bulk_write_falls_back_order_by_order(world, monkeypatch):
    shop = world

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingest, "_bulk_create", broken)
    summary, failures, n, _errors = run(shop, [sbx(30), sbx(31), sbx(32, items=[("SKU-1", 0)])], bulk=True)
    assert summary == "created=2 updated=0 unchanged=0 failed=1" and [p for p, _r in failures] == [3]
    assert set(Order.objects.filter(shop=shop).values_list("status", flat=True)) == {OrderStatus.ALLOCATED}


def test_new_order_numbers_are_a_collision_free_block(world):
    from orders.models import new_order_number, new_order_numbers

    at = datetime(2026, 12, 31, 17, 0, tzinfo=timezone.utc)  # 2027-01-01 01:00 in Shanghai
    block = new_order_numbers(zone="Asia/Shanghai", at=[at, at - timedelta(hours=10)], count=2)
    single = new_order_number(zone="Asia/Shanghai", at=at)
    assert block[0].startswith("OH270101") and block[1].startswith("OH261231")
    assert len({block[0][8:], block[1][8:], single[8:]}) == 3
    assert int(block[0][8:]) < int(block[1][8:]) < int(single[8:])
    assert new_order_numbers(count=0) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_bulk_ingests_of_overlapping_batches_at_once():
    from tests.concurrency import run_together

    shop = ShopFactory(code="sbx-race", platform=Platform.SANDBOX)
    wh = WarehouseFactory(code="race-wh")
    for code in ("SKU-1", "SKU-2", "SKU-3"):
        stock(wh, SkuFactory(code=code), 1000)
    first = [sbx(i, phone=f"139{i % 13:08d}") for i in range(0, 60)]
    second = [sbx(i, phone=f"139{i % 13:08d}") for i in range(30, 90)]

    def go(payloads):
        return lambda: ingest_payloads(shop=shop, payloads=payloads, actor=platform_actor(shop))

    outcomes = run_together([go(first), go(second)])
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    reports = [value for _k, value in outcomes]
    assert all(r.failed == 0 for r in reports), [r.failures for r in reports]
    assert sum(r.created for r in reports) == 90
    assert Order.objects.filter(shop=shop).count() == 90
    assert Order.objects.filter(shop=shop).exclude(status=OrderStatus.ALLOCATED).count() == 0
    assert Customer.objects.count() == 13
    assert sorted(Customer.objects.values_list("phone", flat=True)) == sorted(f"+86139{i:08d}" for i in range(13))
    assert OrderEvent.objects.filter(order__shop=shop, kind=EventKind.CREATED).count() == 90
    assert Reservation.objects.filter(order_line__order__shop=shop).count() == 270


def test_an_older_version_in_a_batch_is_unchanged(world):
    shop = world
    run(shop, [sbx(40, version=3, detail="新地址 1 号"), sbx(41)], bulk=True)
    summary, failures, n, _errors = run(shop, [sbx(40, version=2, detail="旧地址"), sbx(42)], bulk=True)
    assert (summary, failures, n) == ("created=1 updated=0 unchanged=1 failed=0", [], 1)
    assert Order.objects.get(platform_order_id="SBX000040").address.startswith("新地址")
