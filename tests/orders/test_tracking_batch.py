"""Scans applied in batches (`orders.shipping.record_tracking` → `apply_updates`): the same
rows and states as the per-scan path, a fixed number of statements per batch, unknown
numbers counted, duplicates dropped within a batch and across concurrent pushes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from config.actors import Actor, Source
from config.errors import NotPermitted
from orders import services, shipping
from orders.carriers.base import Scan, TrackingUpdate
from orders.models import Order, OrderEvent, Shipment, TrackingEvent
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock
from tests.orders.tracking_reference import record_tracking_per_scan

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def scan(minutes: int, state: str, text: str = "") -> Scan:
    return Scan(occurred_at=T0 + timedelta(minutes=minutes), description=text or f"{state} +{minutes}", state=state)


def up(number: str, *scans: Scan, state: str | None = None, carrier: str = "SF", note: str = "") -> TrackingUpdate:
    return TrackingUpdate(carrier=carrier, tracking_number=number, state=state, scans=tuple(scans), note=note)


def packed_order(system, warehouses=1):
    sku = SkuFactory()
    whs = [WarehouseFactory() for _ in range(warehouses)]
    for wh in whs:
        stock(wh, sku, 1)
    order = services.order_allocate(order=make_order(lines=[(sku, warehouses)]), actor=system)
    return services.order_pack(order=order, actor=system), whs


def shipped(system, number: str, carrier: str = "SF") -> Order:
    order, _whs = packed_order(system)
    return services.order_ship(order=order, actor=system, carrier=carrier, tracking_number=number, at=T0)


def world(system) -> list[Order]:
    """Parcels in every situation the rules know."""
    orders = [shipped(system, n) for n in ("A1", "D1", "E1", "F1", "H1")]
    prepared, whs = packed_order(system)  # a parcel prepared before it ships: its first scan ships it
    shipping.shipment_create(order=prepared, actor=system, warehouse=whs[0], carrier="SF", tracking_number="B1")
    split, (a, b) = packed_order(system, warehouses=2)  # two parcels: delivered when both are
    split = services.order_ship(order=split, actor=system, warehouse=a, carrier="SF", tracking_number="C1", at=T0)
    split = services.order_ship(order=split, actor=system, warehouse=b, carrier="SF", tracking_number="C2", at=T0)
    # Two parcels, one with the carrier (G1) and one prepared (G2): in one batch G1's delivery
    # is written with the batch's rows, and G2's first scan ships it (rows read and saved on
    # the spot) before G2 is delivered and the order with it.
    half, (g1, g2) = packed_order(system, warehouses=2)
    half = services.order_ship(order=half, actor=system, warehouse=g1, carrier="SF", tracking_number="G1", at=T0)
    shipping.shipment_create(order=half, actor=system, warehouse=g2, carrier="SF", tracking_number="G2")
    return [*orders, Order.objects.get(pk=prepared.pk), split, Order.objects.get(pk=half.pk)]


def updates() -> list[TrackingUpdate]:
    return [
        up("A1", scan(30, "in_transit"), scan(0, "picked_up")),
        up("B1", scan(5, "picked_up", "已收件")),
        up("C1", scan(100, "delivered", "已签收")),
        up("A1", scan(90, "out_for_delivery"), scan(30, "in_transit")),  # a duplicate of the first push
        up("D1", scan(10, "exception", "快件滞留"), scan(10, "exception", "快件滞留")),  # duplicate within the update
        up("ZZ404", scan(1, "picked_up")),  # no such parcel
        up("E1", scan(40, "returned", "退回"), state="returned"),
        up("A1", scan(120, "delivered", "已签收"), state="delivered"),
        up("B1", scan(60, "in_transit"), scan(5, "picked_up", "已收件")),
        up("D1", scan(20, "in_transit")),
        up("A1", scan(50, "in_transit", "迟到的轨迹"), state="in_transit"),  # late and older: never moves it back
        up("F1", state="exception", note="快递100 停止跟踪: 60天无变化"),  # no scans, the provider's state
        up("C2", scan(110, "delivered", "已签收")),
        up("H1", scan(15, "in_transit"), carrier="YTO"),  # another carrier's parcel with the same number
        up("C1", scan(100, "delivered", "已签收")),  # pushed again
        up("H1", scan(15, "in_transit"), scan(14, "picked_up"), carrier=""),  # carrier unknown: the number decides
        up("G1", scan(80, "delivered", "已签收"), state="delivered"),
        up("G2", scan(20, "picked_up", "已收件")),
        up("G2", scan(95, "delivered", "已签收"), state="delivered"),
    ]


def snapshot(orders: list[Order], result) -> dict:
    """Every row the scans wrote, with ids replaced by what they stand for."""
    ships = {s.pk: i for i, s in enumerate(Shipment.objects.filter(order__in=orders).order_by("id"))}
    scans = {e.pk: (ships[e.shipment_id], e.key) for e in TrackingEvent.objects.filter(shipment_id__in=ships)}
    order_index = {o.pk: i for i, o in enumerate(orders)}

    def data(d: dict) -> dict:
        d = dict(d)
        if "shipment" in d:
            d["shipment"] = ships.get(d["shipment"])
        if "scan" in d:
            d["scan"] = scans.get(d["scan"])
        if "shipments" in d:
            d["shipments"] = [ships.get(x) for x in d["shipments"]]
        return d

    def when(at):  # a step with no scan time happens "now", which differs from one run to the other
        return at if at is None or at < T0 + timedelta(days=1) else "now"

    def transition(t: str) -> str:
        head, _sep, tail = t.partition(":")
        return t if head == "order" else f"{ships[int(head)]}:{tail}"

    return {
        "result": (result.shipments, result.scans_added, result.duplicates, [transition(t) for t in result.transitions],
                   result.unmatched),
        "scans": sorted((ships[e.shipment_id], e.occurred_at, e.key, e.state, e.description, e.location)
                        for e in TrackingEvent.objects.filter(shipment_id__in=ships)),
        "scan_order": [(ships[e.shipment_id], e.key) for e in TrackingEvent.objects.filter(
            shipment_id__in=ships).order_by("shipment_id", "occurred_at", "id")],
        "events": sorted((order_index[e.order_id], str(when(e.occurred_at)), e.kind, e.message, e.is_public, e.from_status,
                          e.to_status, e.source, sorted(data(e.data).items(), key=str))
                         for e in OrderEvent.objects.filter(order__in=orders)),
        "shipments": [(s.status, s.exception_flag, s.exception_note, s.shipped_at, s.delivered_at, s.last_scan_at,
                       when(s.next_poll_at), s.carrier, s.tracking_number)
                      for s in Shipment.objects.filter(order__in=orders).order_by("id")],
        "orders": [Order.objects.get(pk=o.pk).status for o in orders],
    }


def run(path, orders, feed, system, capture) -> tuple[dict, int]:
    sid = transaction.savepoint()
    with capture() as callbacks:
        result = path(updates=feed, actor=system)
    snap = snapshot(orders, result)
    transaction.savepoint_rollback(sid)
    return snap, len(callbacks)


@pytest.mark.parametrize("batch_scans", [500, 3])
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_batched_scans_give_exactly_what_the_per_scan_path_gives(system, monkeypatch, seed, batch_scans,
                                                                   django_capture_on_commit_callbacks):
    monkeypatch.setattr(shipping, "BATCH_SCANS", batch_scans)  # 3: many small batches, a parcel across several
    orders = world(system)
    feed = updates()
    if seed is not None:
        random.Random(seed).shuffle(feed)
    reference, ref_callbacks = run(record_tracking_per_scan, orders, feed, system, django_capture_on_commit_callbacks)
    batched, callbacks = run(shipping.record_tracking, orders, feed, system, django_capture_on_commit_callbacks)
    for part in reference:  # part by part, so a failure names what differs
        if part in ("events", "scans"):
            extra = [x for x in batched[part] if x not in reference[part]]
            missing = [x for x in reference[part] if x not in batched[part]]
            assert (extra, missing) == ([], []), part
        assert batched[part] == reference[part], part
    assert callbacks == ref_callbacks  # the same notifications (and order follow-ups) after commit
    if seed is None:  # the story itself, read once
        shipments, states = reference["shipments"], reference["orders"]
        # A1 D1 E1 F1 H1 B1 C1 C2 G1 G2
        assert [s[0] for s in shipments] == ["delivered", "in_transit", "returned", "exception", "in_transit",
                                             "in_transit", "delivered", "delivered", "delivered", "delivered"]
        assert shipments[1][1:3] == (True, "快件滞留")  # the exception cleared, the flag stays
        assert states == ["delivered", "shipped", "shipped", "shipped", "shipped", "shipped", "delivered",
                          "delivered"]
        assert shipments[9][3] == T0 + timedelta(minutes=20)  # G2 shipped at its first scan
        assert reference["result"][4] == ["ZZ404", "H1"]


def test_a_batch_with_an_unknown_number_and_duplicates_within_itself(system):
    order = shipped(system, "SF1")
    result = shipping.record_tracking(updates=[
        up("SF1", scan(0, "picked_up"), scan(30, "in_transit"), scan(0, "picked_up")),
        up("NOPE", scan(5, "in_transit")),
        up("SF1", scan(30, "in_transit"), scan(60, "out_for_delivery")),
        up("NOPE2"),
    ], actor=system)
    assert (result.scans_added, result.duplicates, result.unmatched) == (3, 2, ["NOPE", "NOPE2"])
    assert result.transitions == [f"{order.shipments.get().pk}:in_transit"]
    assert TrackingEvent.objects.count() == 3
    assert OrderEvent.objects.filter(order=order, kind__startswith="tracking_").count() == 3
    # The same batch again: nothing new.
    again = shipping.record_tracking(updates=[up("SF1", scan(0, "picked_up"), scan(60, "out_for_delivery"))],
                                     actor=system)
    assert (again.scans_added, again.duplicates, again.transitions) == (0, 2, [])


def test_a_batch_costs_a_fixed_number_of_statements_when_no_parcel_changes_state(system):
    numbers = [f"SF{i}" for i in range(30)]
    for n in numbers:
        shipped(system, n)
    shipping.record_tracking(updates=[up(n, scan(0, "in_transit")) for n in numbers], actor=system)  # all move
    with CaptureQueriesContext(connection) as queries:
        result = shipping.record_tracking(updates=[up(n, scan(10 + i, "in_transit"), scan(0, "in_transit"))
                                                   for i, n in enumerate(numbers)], actor=system)
    assert (result.scans_added, result.duplicates, result.transitions) == (30, 30, [])
    # match, shipments→orders, lock orders, lock shipments, stored scans, insert scans, read their ids,
    # insert events, last_scan_at (+ savepoint statements)
    assert len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]) <= 10
    assert Shipment.objects.get(tracking_number="SF7").last_scan_at == T0 + timedelta(minutes=17)


def test_a_batch_that_delivers_every_parcel_costs_a_fixed_number_of_statements_too(system):
    numbers = [f"SF{i}" for i in range(30)]
    orders = [shipped(system, n) for n in numbers]
    with CaptureQueriesContext(connection) as queries:
        result = shipping.record_tracking(updates=[up(n, scan(60 + i, "delivered", "已签收"), state="delivered")
                                                   for i, n in enumerate(numbers)], actor=system)
    assert (result.scans_added, len(result.transitions)) == (30, 60)  # each parcel, and its order
    # match, lock orders, lock their parcels, stored scans, insert scans (+ read their ids when not
    # PostgreSQL), the parcels' rows, the orders' rows, insert events (+ savepoint statements)
    assert len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]) <= 10
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {"delivered"}
    assert OrderEvent.objects.filter(order__in=orders, kind="delivered").count() == 30
    assert Shipment.objects.filter(order__in=orders, status="delivered", next_poll_at=None).count() == 30


def test_only_staff_who_may_ship_record_scans(system):
    shipped(system, "SF1")
    with pytest.raises(NotPermitted):
        shipping.record_tracking(updates=[up("SF1", scan(0, "picked_up"))],
                                 actor=Actor.of(staff("finance"), Source.ADMIN))
    assert TrackingEvent.objects.count() == 0
    # An unknown number alone asks nothing of anyone.
    assert shipping.record_tracking(updates=[up("NOPE", scan(0, "picked_up"))],
                                    actor=Actor.of(staff("finance"), Source.ADMIN)).unmatched == ["NOPE"]


def test_apply_tracking_on_one_shipment_still_works_and_refuses_a_missing_one(system):
    from config.errors import NotFound

    order = shipped(system, "SF1")
    shipment = order.shipments.get()
    result = shipping.apply_tracking(shipment_id=shipment.pk, update=up("SF1", scan(0, "delivered")), actor=system)
    assert result.transitions == [f"{shipment.pk}:delivered", f"order:{order.number}:delivered"]
    with pytest.raises(NotFound):
        shipping.apply_tracking(shipment_id=shipment.pk + 999, update=up("SF1"), actor=system)


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_pushes_for_the_same_parcel_at_once_store_each_scan_once_and_move_it_once():
    from tests.concurrency import run_together

    system = Actor.system("concurrency-test")
    for i in range(3):
        number = f"SFC{i}"
        order = shipped(system, number)
        shipment = order.shipments.get()
        push = [up(number, scan(0, "picked_up"), scan(30, "in_transit"), scan(90, "delivered", "已签收"),
                   state="delivered")]
        outcomes = run_together([lambda: shipping.record_tracking(updates=push, actor=system),
                                 lambda: shipping.record_tracking(updates=push, actor=system)])
        assert [kind for kind, _v in outcomes] == ["ok", "ok"], outcomes
        results = [value for _k, value in outcomes]
        assert sorted(r.scans_added for r in results) == [0, 3]
        assert sorted(r.duplicates for r in results) == [0, 3]
        assert sorted(len(r.transitions) for r in results) == [0, 2]  # delivered, and the order with it
        assert TrackingEvent.objects.filter(shipment=shipment).count() == 3
        assert OrderEvent.objects.filter(order=order, kind__startswith="tracking_").count() == 3
        assert OrderEvent.objects.filter(order=order, kind="delivered").count() == 1
        shipment.refresh_from_db()
        order.refresh_from_db()
        assert (shipment.status, order.status) == ("delivered", "delivered")


def test_rows_written_by_a_batch_keep_the_optimistic_concurrency_check(system):
    """`batch_writes.Writes` saves transitioned rows together, but only where their status is
    still the one they were read with, as `ConcurrentTransitionMixin.save()` would."""
    from django_fsm import ConcurrentTransition

    from orders.batch_writes import Writes

    first, second = shipped(system, "SF1").shipments.get(), shipped(system, "SF2").shipments.get()
    before = first.updated_at
    first.deliver()
    second.deliver()
    writes = Writes()
    writes.save(first, ["status", "updated_at"])
    writes.save(second, ["status", "updated_at"])
    Shipment.objects.filter(pk=second.pk).update(status="exception")  # someone else moved it meanwhile
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        writes.flush()
    first.refresh_from_db()
    assert first.status == "shipped"  # the batch rolled back as a whole
    first.deliver()
    writes.save(first, ["status", "updated_at"])
    writes.flush()
    first.refresh_from_db()
    assert first.status == "delivered" and first.updated_at > before
    first.last_scan_at = T0  # the row's next save checks against the state just written, not the one read
    first.save(update_fields=["last_scan_at"])
    assert Shipment.objects.get(pk=first.pk).last_scan_at == T0
