"""Shipments: one per warehouse parcel; the order's status follows them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from config.actors import Actor, Source
from config.errors import NotPermitted, TransitionNotAllowed
from orders import services, shipping
from orders.carriers.base import Scan, TrackingUpdate
from orders.models import Order, OrderEvent, Shipment, ShipmentLine
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def scan(minutes: int, state: str, text: str = "") -> Scan:
    return Scan(occurred_at=T0 + timedelta(minutes=minutes), description=text or f"{state} {minutes}", state=state)


def update(number: str, *scans: Scan, state: str | None = None, carrier: str = "") -> TrackingUpdate:
    return TrackingUpdate(carrier=carrier, tracking_number=number, state=state, scans=tuple(scans))


@pytest.fixture
def split(system):
    """An order of 3 × one SKU that no one warehouse holds: 2 reserved in 甲仓, 1 in 乙仓; packed."""
    sku = SkuFactory(code="SKU-S")
    a = WarehouseFactory(code="wa", name="甲仓", priority=1)
    b = WarehouseFactory(code="wb", name="乙仓", priority=2)
    stock(a, sku, 2)
    stock(b, sku, 1)
    order = services.order_allocate(order=make_order(lines=[(sku, 3)]), actor=system)
    order = services.order_pack(order=order, actor=system)
    return {"order": order, "a": a, "b": b, "sku": sku}


def parcels(order: Order) -> list[tuple]:
    return [(s.warehouse.code if s.warehouse else None, s.carrier, s.tracking_number, s.status,
             [(l.order_line.sku.code, l.quantity) for l in s.lines.select_related("order_line__sku")])
            for s in Shipment.objects.filter(order=order).order_by("id")]


def test_a_split_order_ships_in_two_parcels_and_is_delivered_only_when_both_are(split, system):
    order, a, b = split["order"], split["a"], split["b"]
    assert order.status == "packed" and parcels(order) == []

    order = services.order_ship(order=order, actor=system, warehouse=a, carrier="sf", tracking_number="SF100")
    assert order.status == "partially_shipped"
    assert parcels(order) == [("wa", "SF", "SF100", "shipped", [("SKU-S", 2)])]

    order = services.order_ship(order=order, actor=system, warehouse=b, carrier="YTO", tracking_number="YT200")
    assert order.status == "shipped"
    assert parcels(order) == [("wa", "SF", "SF100", "shipped", [("SKU-S", 2)]),
                              ("wb", "YTO", "YT200", "shipped", [("SKU-S", 1)])]
    ship_events = OrderEvent.objects.filter(order=order, kind__in=["shipped", "partially_shipped"]).order_by("id")
    assert [e.data["shipments"] for e in ship_events] == [[s.pk] for s in Shipment.objects.filter(order=order).order_by("id")]

    shipping.record_tracking(updates=[update("SF100", scan(0, "picked_up"), scan(60, "delivered"))], actor=system)
    order.refresh_from_db()
    assert order.status == "shipped"  # the second parcel is still on its way
    assert [s[3] for s in parcels(order)] == ["delivered", "shipped"]

    shipping.record_tracking(updates=[update("YT200", scan(10, "in_transit"))], actor=system)
    order.refresh_from_db()
    assert order.status == "shipped" and [s[3] for s in parcels(order)] == ["delivered", "in_transit"]

    shipping.record_tracking(updates=[update("YT200", scan(120, "delivered", "已签收"))], actor=system)
    order.refresh_from_db()
    assert order.status == "delivered"
    assert [s[3] for s in parcels(order)] == ["delivered", "delivered"]
    delivered = OrderEvent.objects.get(order=order, kind="delivered")
    assert delivered.occurred_at == T0 + timedelta(minutes=120) and delivered.actor_label == "tests"
    assert Shipment.objects.get(tracking_number="YT200").delivered_at == T0 + timedelta(minutes=120)


def test_a_parcel_delivered_before_the_other_ships_leaves_the_order_partially_shipped(split, system):
    order = services.order_ship(order=split["order"], actor=system, warehouse=split["a"], carrier="SF",
                                tracking_number="SF1")
    shipping.record_tracking(updates=[update("SF1", scan(5, "delivered"))], actor=system)
    order.refresh_from_db()
    assert order.status == "partially_shipped"
    order = services.order_ship(order=order, actor=system, warehouse=split["b"], carrier="SF", tracking_number="SF2")
    assert order.status == "shipped"
    shipping.record_tracking(updates=[update("SF2", scan(50, "delivered"))], actor=system)
    order.refresh_from_db()
    assert order.status == "delivered"


def test_shipping_every_warehouse_at_once_makes_one_parcel_each(split, system):
    order = services.order_ship(order=split["order"], actor=system, carrier="ZTO", tracking_number="ZT9")
    assert order.status == "shipped"
    assert [(p[0], p[3], p[4]) for p in parcels(order)] == [("wa", "shipped", [("SKU-S", 2)]),
                                                           ("wb", "shipped", [("SKU-S", 1)])]


def test_staff_confirming_delivery_delivers_every_parcel(split, system):
    order = services.order_ship(order=split["order"], actor=system, carrier="SF", tracking_number="SF3")
    boss = Actor.of(staff("supervisor"), Source.ADMIN)
    order = services.order_deliver(order=order, actor=boss)
    assert order.status == "delivered" and [p[3] for p in parcels(order)] == ["delivered", "delivered"]


def test_the_shipment_status_is_protected(split, system):
    services.order_ship(order=split["order"], actor=system, carrier="SF", tracking_number="SF4")
    shipment = Shipment.objects.first()
    with pytest.raises(AttributeError):
        shipment.status = "delivered"


def test_a_prepared_parcel_is_picked_packed_and_shipped_by_the_carriers_first_scan(split, system):
    order, a = split["order"], split["a"]
    warehouse = Actor.of(staff("warehouse"), Source.ADMIN)
    finance = Actor.of(staff("finance"), Source.ADMIN)
    with pytest.raises(NotPermitted):
        shipping.shipment_create(order=order, actor=finance, warehouse=a, carrier="SF", tracking_number="SF77")
    shipment = shipping.shipment_create(order=order, actor=warehouse, warehouse=a, carrier="SF", tracking_number="SF77")
    with pytest.raises(NotPermitted):
        shipping.shipment_transition(shipment=shipment, name="pick", actor=finance)
    shipment = shipping.shipment_transition(shipment=shipment, name="pick", actor=warehouse)
    shipment = shipping.shipment_transition(shipment=shipment, name="pack", actor=warehouse)
    with pytest.raises(TransitionNotAllowed):
        shipping.shipment_transition(shipment=shipment, name="pick", actor=warehouse)
    assert shipment.status == "packed"
    assert Order.objects.get(pk=order.pk).status == "packed"

    shipping.record_tracking(updates=[update("SF77", scan(0, "picked_up", "已收件"), carrier="SF")], actor=system)
    order.refresh_from_db()
    assert order.status == "partially_shipped"  # 乙仓 has not shipped
    assert parcels(order) == [("wa", "SF", "SF77", "shipped", [("SKU-S", 2)])]
    shipment.refresh_from_db()
    assert shipment.shipped_at == T0
    shipped = OrderEvent.objects.get(order=order, kind="partially_shipped")
    assert shipped.occurred_at == T0 and shipped.data["tracking_number"] == "SF77"


# --- the API ---------------------------------------------------------------------------------------
def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_shipping_through_the_api_creates_the_shipment_and_the_order_reads_with_it(system):
    sku = SkuFactory(code="SKU-API")
    wh = WarehouseFactory(code="wh-suzhou", name="苏州仓")
    stock(wh, sku, 5)
    order = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 2)]), actor=system),
                                actor=system)
    user = staff("warehouse")
    response = client_for(user).post(f"/api/v1/orders/{order.number}/transitions/ship/",
                                     {"carrier": "SF", "tracking_number": "SF1234567890"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "shipped"
    assert [{k: s[k] for k in ("warehouse", "carrier", "tracking_number", "status", "events")}
            for s in body["shipments"]] == [
        {"warehouse": "wh-suzhou", "carrier": "SF", "tracking_number": "SF1234567890", "status": "shipped",
         "events": []}]
    # Scans arrive out of order; the API lists them oldest first, phone numbers masked.
    shipping.record_tracking(updates=[update(
        "SF1234567890", scan(90, "out_for_delivery", "正在派件(派件人:张三,电话:13800000000)"),
        scan(0, "picked_up", "已收件"), scan(30, "in_transit", "到达深圳集散中心"))], actor=system)
    shipments = client_for(user).get(f"/api/v1/orders/{order.number}/").json()["shipments"]
    assert shipments[0]["status"] == "in_transit"
    assert [(e["time"], e["description"], e["state"]) for e in shipments[0]["events"]] == [
        ("2026-03-01T16:00:00+08:00", "已收件", "picked_up"),
        ("2026-03-01T16:30:00+08:00", "到达深圳集散中心", "in_transit"),
        ("2026-03-01T17:30:00+08:00", "正在派件(派件人:张三,电话:138****0000)", "out_for_delivery"),
    ]


def test_shipping_a_split_order_through_the_api_per_warehouse(split):
    order, user = split["order"], staff("warehouse")
    url = f"/api/v1/orders/{order.number}/transitions/ship/"
    body = client_for(user).post(url, {"carrier": "SF", "tracking_number": "SF1", "warehouse": "wa"},
                                 format="json").json()
    assert body["status"] == "partially_shipped"
    assert [(s["warehouse"], s["status"]) for s in body["shipments"]] == [("wa", "shipped")]
    body = client_for(user).post(url, {"carrier": "YTO", "tracking_number": "YT2", "warehouse": "wb"},
                                 format="json").json()
    assert body["status"] == "shipped"
    assert [(s["warehouse"], s["carrier"], s["tracking_number"]) for s in body["shipments"]] == [
        ("wa", "SF", "SF1"), ("wb", "YTO", "YT2")]


# --- the data migration ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_carrier_and_tracking_numbers_from_ship_events_into_shipments():
    executor = MigrationExecutor(connection)
    # Everything applied except the data migration and what depends on it (sibling branches
    # of the graph, e.g. the sync state migration, stay applied).
    graph = executor.loader.graph
    remaining = set(graph.nodes) - set(graph.backwards_plan(("orders", "0007_shipments_from_ship_events")))
    before = [n for n in remaining if not any(c.key in remaining for c in graph.node_map[n].children)]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    try:
        Shop, Order_, Event = (apps.get_model("orders", n) for n in ("Shop", "Order", "OrderEvent"))
        Line, Warehouse = apps.get_model("orders", "OrderLine"), apps.get_model("inventory", "Warehouse")
        shop = Shop.objects.create(code="old", platform="taobao", name="老店")
        wa = Warehouse.objects.create(code="old-a", name="甲")
        wb = Warehouse.objects.create(code="old-b", name="乙")
        split = Order_.objects.create(number="OHOLD1", shop=shop, platform_order_id="1", status="delivered")
        single = Order_.objects.create(number="OHOLD2", shop=shop, platform_order_id="2", status="shipped")
        Line.objects.create(order=single, title="x", quantity=3)
        for order, kind, data, minutes in (
                (split, "partially_shipped", {"warehouse": "old-a", "carrier": "SF", "tracking_number": "SF1"}, 0),
                (split, "shipped", {"warehouse": "old-b", "carrier": "YTO", "tracking_number": "YT2"}, 5),
                (split, "delivered", {}, 60),
                (single, "shipped", {"warehouse": None, "carrier": "EMS", "tracking_number": "E3"}, 0)):
            Event.objects.create(order=order, kind=kind, data=data, occurred_at=T0 + timedelta(minutes=minutes))
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        got = [(s.order.number, s.warehouse.code if s.warehouse else None, s.carrier, s.tracking_number, s.status,
                s.shipped_at, s.delivered_at, [(l.quantity) for l in ShipmentLine.objects.filter(shipment=s)])
               for s in Shipment.objects.select_related("order", "warehouse").order_by("id")]
        assert got == [
            ("OHOLD1", "old-a", "SF", "SF1", "delivered", T0, T0 + timedelta(minutes=60), []),
            ("OHOLD1", "old-b", "YTO", "YT2", "delivered", T0 + timedelta(minutes=5), T0 + timedelta(minutes=60), []),
            ("OHOLD2", None, "EMS", "E3", "shipped", T0, None, [3]),
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


# --- the admin -------------------------------------------------------------------------------------
def test_the_admin_lists_shipments_in_scope_and_the_push_inbox(client, split, system):
    from tests.factories import scoped

    services.order_ship(order=split["order"], actor=system, warehouse=split["a"], carrier="SF", tracking_number="SF55")
    client.force_login(staff("supervisor"))
    page = client.get("/admin/orders/shipment/")
    assert page.status_code == 200 and "SF55" in page.content.decode()
    shipment = Shipment.objects.get()
    assert client.get(f"/admin/orders/shipment/{shipment.pk}/change/").status_code == 200
    assert client.get("/admin/orders/carrierpush/").status_code == 200
    # A warehouse clerk limited to another shop's orders sees nothing of this one.
    from tests.factories import ShopFactory

    other = scoped(staff("warehouse", username="clerk"), shops=[ShopFactory()])
    client.force_login(other)
    assert "SF55" not in client.get("/admin/orders/shipment/").content.decode()
    assert client.get(f"/admin/orders/shipment/{shipment.pk}/change/").status_code == 404
