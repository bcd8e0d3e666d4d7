"""Tracking: scans deduplicated and ordered by their own time; polling (sandbox and HTTP)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from orders import services, shipping, tracking_tasks
from orders.carriers import kdniao, sandbox
from orders.carriers.base import Scan, TrackingUpdate
from orders.management.commands.setup_schedules import SCHEDULES
from orders.models import CarrierAccount, OrderEvent, Shipment, TrackingEvent
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock
from tests.orders.platforms.shared import load_text

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def scan(minutes: int, state: str, text: str = "") -> Scan:
    return Scan(occurred_at=T0 + timedelta(minutes=minutes), description=text or f"{state} +{minutes}", state=state)


def shipped(system, carrier="SF", number="SF1", at=T0):
    sku = SkuFactory()
    wh = WarehouseFactory()
    stock(wh, sku, 1)
    order = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=system),
                                actor=system)
    order = services.order_ship(order=order, actor=system, carrier=carrier, tracking_number=number, at=at)
    return order, Shipment.objects.get(order=order)


def states(shipment) -> list[tuple[int, str]]:
    return [(int((e.occurred_at - T0).total_seconds() // 60), e.state) for e in shipment.tracking_events.all()]


def test_unordered_and_duplicate_scans_are_stored_once_in_their_own_time_order(system):
    from orders.models import OrderNumberSequence

    order, shipment = shipped(system)
    serials = OrderNumberSequence.objects.count()
    pushes = [
        [scan(30, "in_transit"), scan(0, "picked_up")],
        [scan(90, "out_for_delivery"), scan(30, "in_transit")],  # one duplicate
        [scan(60, "in_transit"), scan(0, "picked_up"), scan(0, "picked_up")],  # two duplicates
    ]
    results = [shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", None, tuple(p))], actor=system)
               for p in pushes]
    assert [(r.scans_added, r.duplicates) for r in results] == [(2, 0), (1, 1), (1, 2)]
    assert OrderNumberSequence.objects.count() == serials  # applying scans never hands out order numbers
    assert states(shipment) == [(0, "picked_up"), (30, "in_transit"), (60, "in_transit"), (90, "out_for_delivery")]
    timeline = OrderEvent.objects.filter(order=order, kind__startswith="tracking_").order_by("occurred_at", "id")
    assert [e.data["state"] for e in timeline] == ["picked_up", "in_transit", "in_transit", "out_for_delivery"]
    assert [e.data["scan"] for e in timeline] == [t.pk for t in shipment.tracking_events.all()]
    assert all(e.is_public and e.to_status == "" and e.source == "system" for e in timeline)
    shipment.refresh_from_db()
    assert shipment.status == "in_transit" and shipment.last_scan_at == T0 + timedelta(minutes=90)


def test_a_late_older_push_never_moves_a_parcel_back(system):
    order, shipment = shipped(system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", "delivered", (scan(0, "picked_up"),
                                                                                  scan(100, "delivered")))], actor=system)
    late = shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", "in_transit", (scan(50, "in_transit"),))],
                                    actor=system)
    assert late.scans_added == 1 and late.transitions == []
    shipment.refresh_from_db()
    order.refresh_from_db()
    assert (shipment.status, order.status) == ("delivered", "delivered")
    assert states(shipment) == [(0, "picked_up"), (50, "in_transit"), (100, "delivered")]


def test_an_exception_clears_when_the_parcel_moves_again_but_the_flag_stays(system):
    order, shipment = shipped(system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", None, (scan(10, "exception", "快件滞留"),))],
                             actor=system)
    shipment.refresh_from_db()
    assert (shipment.status, shipment.exception_flag, shipment.exception_note) == ("exception", True, "快件滞留")
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", None, (scan(20, "in_transit"),))], actor=system)
    shipment.refresh_from_db()
    assert (shipment.status, shipment.exception_flag) == ("in_transit", True)


def test_a_returned_parcel_is_marked_returned_with_an_internal_event(system):
    order, shipment = shipped(system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", "returned", (scan(10, "returned", "退回"),))],
                             actor=system)
    shipment.refresh_from_db()
    assert (shipment.status, shipment.next_poll_at) == ("returned", None)
    assert OrderEvent.objects.get(order=order, kind="shipment_returned").is_public is False


def test_scans_for_another_carrier_with_the_same_number_are_ignored(system):
    _order, shipment = shipped(system, carrier="SF", number="N1")
    result = shipping.record_tracking(updates=[TrackingUpdate("YTO", "N1", None, (scan(0, "picked_up"),))],
                                      actor=system)
    assert result.unmatched == ["N1"] and TrackingEvent.objects.count() == 0


# --- polling ------------------------------------------------------------------------------------
def test_sandbox_polling_moves_a_parcel_to_delivered_and_then_stops(system):
    order, shipment = shipped(system, carrier="YTO", number="YT42")
    assert shipment.provider == "sandbox" and shipment.next_poll_at == T0 + timedelta(hours=1)
    script = sandbox.script_for("YT42")
    now = T0 + timedelta(hours=1)
    for step in range(len(script)):
        result = tracking_tasks.poll_shipments(now=now)
        assert result.polled == 1, step
        shipment.refresh_from_db()
        if step < len(script) - 1:
            assert shipment.next_poll_at > now
            now = shipment.next_poll_at
    order.refresh_from_db()
    assert (shipment.status, order.status, shipment.next_poll_at) == ("delivered", "delivered", None)
    assert [e.state for e in shipment.tracking_events.all()] == [s for s, _t in script]
    # Delivered: never asked about again.
    assert tracking_tasks.poll_shipments(now=now + timedelta(days=30)).polled == 0
    assert tracking_tasks.due_shipments(provider="sandbox", now=now + timedelta(days=30), limit=10).count() == 0


def test_sandbox_is_deterministic_and_some_parcels_hit_a_delay():
    numbers = [f"YT{i:06d}" for i in range(200)]
    delayed = [n for n in numbers if sandbox.script_for(n) != sandbox.SCRIPT]
    assert delayed == [n for n in numbers if sandbox.script_for(n) != sandbox.SCRIPT]
    assert 0 < len(delayed) < 40
    assert sandbox.DELAY in sandbox.script_for(delayed[0])


def test_polls_are_spread_and_limited_per_run(system):
    for i in range(5):
        shipped(system, number=f"SF-{i}")
    now = T0 + timedelta(hours=2)
    first = tracking_tasks.poll_shipments(now=now, limit=3)
    assert first.polled == 3
    nexts = list(Shipment.objects.exclude(next_poll_at__lte=now).values_list("next_poll_at", flat=True))
    assert len(nexts) == 3 and len(set(nexts)) == 3  # spread: not all at the same second
    assert tracking_tasks.poll_shipments(now=now, limit=3).polled == 2


def test_kdniao_polling_against_a_local_fake_server(system, httpserver):
    CarrierAccount.objects.create(provider="kdniao", account_id="1109259", app_key="K", is_default=True,
                                  api_url=httpserver.url_for("/Ebusiness/EbusinessOrderHandle.aspx"))
    order, shipment = shipped(system, carrier="SF", number="118461988807")
    assert shipment.provider == "kdniao"
    seen = []

    def handler(request):
        from werkzeug import Response

        seen.append(request.form.to_dict())
        return Response(load_text("kdniao/query_1002.response.doc_example.json"), content_type="application/json")

    httpserver.expect_request("/Ebusiness/EbusinessOrderHandle.aspx", method="POST").respond_with_handler(handler)
    result = tracking_tasks.poll_shipments(now=T0 + timedelta(hours=2))
    assert (result.polled, result.failed, result.scans_added) == (1, 0, 7)
    form = seen[0]
    assert json.loads(form["RequestData"])["LogisticCode"] == "118461988807"
    assert form["DataSign"] == kdniao.data_sign(form["RequestData"], "K") and form["RequestType"] == "1002"
    shipment.refresh_from_db()
    order.refresh_from_db()
    assert (shipment.status, order.status) == ("delivered", "delivered")
    assert shipment.delivered_at == datetime(2014, 6, 25, 2, 23, 3, tzinfo=timezone.utc)
    # Polled again by mistake (the same answer): nothing changes.
    assert tracking_tasks.poll_shipments(now=T0 + timedelta(days=9)).polled == 0


def test_a_failing_provider_backs_off_exponentially(system, httpserver):
    CarrierAccount.objects.create(provider="kuaidi100", account_id="C", app_key="K", is_default=True,
                                  api_url=httpserver.url_for("/poll/query.do"))
    _order, shipment = shipped(system, number="SF9")
    httpserver.expect_request("/poll/query.do").respond_with_data("busy", status=503)
    now = T0 + timedelta(hours=2)
    for failures in (1, 2, 3):
        assert tracking_tasks.poll_shipments(now=now).failed == 1
        shipment.refresh_from_db()
        assert shipment.poll_failures == failures
        assert shipment.next_poll_at == now + timedelta(minutes=2 ** failures)
        now = shipment.next_poll_at
    assert shipment.status == "shipped"


def test_the_poll_and_the_push_retry_are_scheduled():
    funcs = {s["func"] for s in SCHEDULES}
    assert {"orders.tracking_tasks.poll_shipments", "orders.tracking_tasks.retry_failed_pushes"} <= funcs


def test_a_delivered_scan_ends_the_journey_even_when_it_arrives_behind_a_newer_scan(system):
    order, shipment = shipped(system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", None, (scan(300, "in_transit"),))], actor=system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", "delivered", (scan(200, "delivered", "已签收"),))],
                             actor=system)
    shipment.refresh_from_db()
    order.refresh_from_db()
    assert (shipment.status, order.status) == ("delivered", "delivered")
    assert shipment.delivered_at == T0 + timedelta(minutes=200)


def test_a_provider_giving_up_flags_the_parcel_with_its_reason(system):
    order, shipment = shipped(system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", None, (scan(0, "picked_up"),))], actor=system)
    shipping.record_tracking(updates=[TrackingUpdate("SF", "SF1", "exception", (), note="快递100 停止跟踪: 60天无变化")],
                             actor=system)
    shipment.refresh_from_db()
    assert (shipment.status, shipment.exception_flag, shipment.exception_note) == (
        "exception", True, "快递100 停止跟踪: 60天无变化")
    assert "60天无变化" in OrderEvent.objects.get(order=order, kind="shipment_exception").message
