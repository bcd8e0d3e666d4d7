"""Warehouse routing and reservation: rules, order of rules, splits, shortages, release."""

import pytest

from inventory.audit import audit
from inventory.models import Reservation, StockLevel, StockMove
from orders import services
from orders.models import OrderStatus as S
from tests.factories import RoutingRuleFactory, SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db

JZS_NOT_BASIN = {"all": [
    {"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},
    {"not": {"field": "sku_category", "op": "eq", "value": "折叠盆"}},
]}
BASIN = {"field": "sku_category", "op": "eq", "value": "折叠盆"}
NORTH = {"field": "region", "op": "eq", "value": "华北"}


@pytest.fixture
def seller():
    """The seeds' seller: three warehouses, three rules, stock everywhere."""
    tianjin = WarehouseFactory(code="tianjin", name="天津仓", priority=1)  # highest priority on purpose
    suzhou = WarehouseFactory(code="suzhou", name="苏州仓", priority=2)
    shenzhen = WarehouseFactory(code="shenzhen", name="深圳仓", priority=3)
    RoutingRuleFactory(name="江浙沪非折叠盆", position=10, conditions=JZS_NOT_BASIN, warehouse=suzhou)
    RoutingRuleFactory(name="折叠盆", position=20, conditions=BASIN, warehouse=shenzhen)
    RoutingRuleFactory(name="华北", position=30, conditions=NORTH, warehouse=tianjin)
    cup = SkuFactory(code="CUP", category="厨具")
    basin = SkuFactory(code="BASIN", category="折叠盆")
    for wh in (tianjin, suzhou, shenzhen):
        stock(wh, cup, 20)
        stock(wh, basin, 20)
    return {"tianjin": tianjin, "suzhou": suzhou, "shenzhen": shenzhen, "cup": cup, "basin": basin}


def warehouses_of(order):
    return sorted(
        Reservation.objects.filter(order_line__order=order, status="active")
        .values_list("stock_level__warehouse__code", flat=True)
        .distinct()
    )


@pytest.mark.parametrize(
    "province,city,sku,expected",
    [
        ("江苏省", "苏州市", "cup", "suzhou"),
        ("浙江省", "杭州市", "cup", "suzhou"),
        ("上海市", "上海市", "cup", "suzhou"),
        ("江苏省", "南京市", "basin", "shenzhen"),
        ("北京市", "北京市", "basin", "shenzhen"),
        ("北京市", "北京市", "cup", "tianjin"),
        ("河北省", "石家庄市", "cup", "tianjin"),
    ],
)
def test_seed_rules_pick_the_right_warehouse(seller, system, province, city, sku, expected):
    order = make_order(lines=[(seller[sku], 2)], province=province, city=city)
    order = services.order_allocate(order=order, actor=system)
    assert order.status == S.ALLOCATED
    assert warehouses_of(order) == [expected]
    assert audit() == []


def test_without_a_matching_rule_the_highest_priority_warehouse_serves(seller, system):
    order = make_order(lines=[(seller["cup"], 1)], province="四川省", city="成都市")
    order = services.order_allocate(order=order, actor=system)
    assert warehouses_of(order) == ["tianjin"]


def test_rule_order_matters(seller, system):
    # A rule placed before the Jiangsu rule wins for Jiangsu orders.
    RoutingRuleFactory(name="全部走天津", position=5, conditions={"field": "country", "op": "eq", "value": "CN"},
                       warehouse=seller["tianjin"])
    order = make_order(lines=[(seller["cup"], 1)], province="江苏省")
    services.order_allocate(order=order, actor=system)
    assert warehouses_of(order) == ["tianjin"]


def test_inactive_rule_is_ignored(seller, system):
    seller_rule = seller["suzhou"].routing_rules.get()
    seller_rule.is_active = False
    seller_rule.save()
    order = make_order(lines=[(seller["cup"], 1)], province="江苏省")
    services.order_allocate(order=order, actor=system)
    assert warehouses_of(order) == ["tianjin"]


def test_mixed_order_splits_by_rule_into_two_reservations(seller, system):
    order = make_order(lines=[(seller["cup"], 1), (seller["basin"], 1)], province="江苏省")
    order = services.order_allocate(order=order, actor=system)
    assert order.status == S.ALLOCATED
    reservations = Reservation.objects.filter(order_line__order=order)
    assert reservations.count() == 2
    assert warehouses_of(order) == ["shenzhen", "suzhou"]
    assert "拆单" in order.events.get(kind="allocated").message
    assert audit() == []


def test_rule_warehouse_out_of_stock_falls_back_to_another_warehouse(system):
    near = WarehouseFactory(code="near", priority=50)
    far = WarehouseFactory(code="far", priority=60)
    sku = SkuFactory()
    stock(far, sku, 5)
    RoutingRuleFactory(conditions={"field": "province", "op": "eq", "value": "江苏"}, warehouse=near)
    order = services.order_allocate(order=make_order(lines=[(sku, 2)]), actor=system)
    assert warehouses_of(order) == ["far"]


def test_order_no_single_warehouse_can_serve_is_split(system):
    a = WarehouseFactory(code="a", priority=1)
    b = WarehouseFactory(code="b", priority=2)
    sku1, sku2 = SkuFactory(), SkuFactory()
    stock(a, sku1, 3)
    stock(b, sku2, 3)
    order = services.order_allocate(order=make_order(lines=[(sku1, 2), (sku2, 2)]), actor=system)
    assert order.status == S.ALLOCATED
    assert Reservation.objects.filter(order_line__order=order).count() == 2
    assert warehouses_of(order) == ["a", "b"]


def test_one_warehouse_is_preferred_over_a_split(system):
    a = WarehouseFactory(code="a", priority=1)
    b = WarehouseFactory(code="b", priority=2)
    sku1, sku2 = SkuFactory(), SkuFactory()
    stock(a, sku1, 3)  # a has only one of the two SKUs
    stock(b, sku1, 3)
    stock(b, sku2, 3)
    order = services.order_allocate(order=make_order(lines=[(sku1, 1), (sku2, 1)]), actor=system)
    assert warehouses_of(order) == ["b"]


def test_a_line_larger_than_any_pool_is_split_across_pools(system):
    a = WarehouseFactory(code="a", priority=1)
    b = WarehouseFactory(code="b", priority=2)
    sku = SkuFactory()
    stock(a, sku, 3)
    stock(b, sku, 3)
    order = services.order_allocate(order=make_order(lines=[(sku, 5)]), actor=system)
    assert order.status == S.ALLOCATED
    assert sorted(Reservation.objects.filter(order_line__order=order).values_list("quantity", flat=True)) == [2, 3]


def test_short_order_goes_on_hold_and_reserves_nothing(system):
    wh = WarehouseFactory()
    plenty, scarce = SkuFactory(), SkuFactory()
    stock(wh, plenty, 10)
    stock(wh, scarce, 1)
    moves_before = StockMove.objects.count()
    order = services.order_allocate(order=make_order(lines=[(plenty, 1), (scarce, 2)]), actor=system)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, "stock_short")
    assert scarce.code in order.hold_note
    assert Reservation.objects.filter(order_line__order=order).count() == 0
    assert StockMove.objects.count() == moves_before
    assert list(StockLevel.objects.values_list("reserved", flat=True)) == [0, 0]
    assert audit() == []


def test_unmapped_sku_holds_the_order_on_payment(system):
    from decimal import Decimal

    from orders.platforms.base import NormalizedLine, NormalizedOrder
    from tests.factories import ShopFactory

    data = NormalizedOrder(platform_order_id="X1", paid=True, paid_amount=Decimal("9.90"),
                           lines=[NormalizedLine(title="未知商品", quantity=1, platform_sku_id="unknown-99")])
    order = services.order_create(shop=ShopFactory(), data=data, actor=system)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, "sku_unmapped")
    assert "unknown-99" in order.hold_note


def test_order_without_lines_is_stored_and_held(system):
    order = make_order(lines=[])
    assert (order.status, order.hold_reason) == (S.ON_HOLD, "no_lines")


def test_cancel_releases_every_reservation(seller, system):
    order = make_order(lines=[(seller["cup"], 2), (seller["basin"], 3)], province="江苏省")
    order = services.order_allocate(order=order, actor=system)
    assert sum(StockLevel.objects.values_list("reserved", flat=True)) == 5
    order = services.order_cancel(order=order, actor=system, reason="买家取消")
    assert order.status == S.CANCELLED
    assert sum(StockLevel.objects.values_list("reserved", flat=True)) == 0
    assert set(Reservation.objects.filter(order_line__order=order).values_list("status", flat=True)) == {"released"}
    assert StockMove.objects.filter(order=order, kind="release").count() == 2
    assert audit() == []


def test_partial_ship_by_warehouse(seller, system):
    order = make_order(lines=[(seller["cup"], 1), (seller["basin"], 1)], province="江苏省")
    order = services.order_allocate(order=order, actor=system)
    order = services.order_pack(order=order, actor=system)
    order = services.order_ship(order=order, actor=system, warehouse=seller["suzhou"], carrier="SF", tracking_number="SF1")
    assert order.status == S.PARTIALLY_SHIPPED
    order = services.order_ship(order=order, actor=system, warehouse=seller["shenzhen"])
    assert order.status == S.SHIPPED
    suzhou_cup = StockLevel.objects.get(warehouse=seller["suzhou"], sku=seller["cup"])
    assert (suzhou_cup.on_hand, suzhou_cup.reserved) == (19, 0)
    assert audit() == []


def test_lead_time_reservation_expires_after_24h_unless_packed(system):
    import datetime as dt

    from django.utils import timezone

    overseas = WarehouseFactory(code="transfer", lead_time_days=2)
    sku = SkuFactory()
    stock(overseas, sku, 5)
    waiting = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system)
    packed = services.order_allocate(order=make_order(lines=[(sku, 2)]), actor=system)
    assert Reservation.objects.get(order_line__order=packed).expires_at is not None
    packed = services.order_pack(order=packed, actor=system)
    assert packed.status == S.PACKED
    assert Reservation.objects.get(order_line__order=packed).expires_at is None  # goods in hand: no expiry
    assert Reservation.objects.get(order_line__order=waiting).expires_at is not None
    later = timezone.now() + dt.timedelta(hours=25)
    waiting = services.order_expire_reservations(order=waiting, actor=system, at=later)
    packed = services.order_expire_reservations(order=packed, actor=system, at=later)
    # Not packed: the reservation is given back and the order waits on hold.
    assert (waiting.status, waiting.hold_reason) == (S.ON_HOLD, "reservation_expired")
    assert Reservation.objects.get(order_line__order=waiting).status == "released"
    # Packed: untouched — still packed, still reserved, no expiry event.
    assert (packed.status, packed.hold_reason) == (S.PACKED, "")
    assert Reservation.objects.get(order_line__order=packed).status == "active"
    assert not packed.events.filter(kind="reservations_expired").exists()
    assert StockLevel.objects.get().reserved == 2
    assert audit() == []
