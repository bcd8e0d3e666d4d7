"""Emergency overrides: a supervisor ships without a stock lock, or lifts a hold the system
set, only with a written reason; the override is flagged on the order, on its (internal)
timeline and in the list of overrides for review."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from config.errors import InvalidInput, NotPermitted
from inventory.audit import audit
from inventory.models import Reservation, StockLevel, StockMove
from orders import services
from orders.models import HoldReason, OrderOverride, OrderStatus as S
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

# Hand-written from the role descriptions: only 主管 (supervisor) may override.
ROLES_REFUSED = ("customer_service", "warehouse", "finance", "operations")
REASON = "客户加急,仓库已实物确认有货"


def url(order, name):
    return f"/api/v1/orders/{order.number}/transitions/{name}/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def world(db):
    wh1 = WarehouseFactory(code="wh-one", priority=1)
    wh2 = WarehouseFactory(code="wh-two", priority=2)
    sku = SkuFactory(code="SKU-O")
    stock(wh1, sku, 5)
    return {"wh1": wh1, "wh2": wh2, "sku": sku}


def stock_short_order(world, system, quantity=8):
    """Wants more than the pool holds: allocation puts it on hold (stock short), nothing reserved."""
    order = make_order(lines=[(world["sku"], quantity)])
    order = services.order_transition(order=order, name="allocate", actor=system)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.STOCK_SHORT)
    return order


def allocated_order(world, system, quantity=2):
    order = make_order(lines=[(world["sku"], quantity)])
    order = services.order_transition(order=order, name="allocate", actor=system)
    assert order.status == S.ALLOCATED
    return order


def pool(world, wh="wh1"):
    p = StockLevel.objects.get(warehouse=world[wh], sku=world["sku"])
    return p.on_hand, p.reserved


def snapshot(order):
    order.refresh_from_db()
    return (order.status, order.hold_reason, order.overridden, order.events.count(),
            sorted((p.pk, p.on_hand, p.reserved) for p in StockLevel.objects.all()), StockMove.objects.count(),
            sorted(Reservation.objects.values_list("pk", "status")), OrderOverride.objects.count())


# --- override release ---------------------------------------------------------------------------
def test_supervisor_releases_a_stock_short_hold_to_paid_with_a_reason(world, system):
    order = stock_short_order(world, system)
    boss = staff("supervisor")
    response = client_for(boss).post(url(order, "override_release"), {"reason": REASON}, format="json")
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert (order.status, order.hold_reason, order.overridden) == (S.PAID, "", True)
    assert pool(world) == (5, 0)  # not allocated
    row = OrderOverride.objects.get(order=order)
    assert (row.kind, row.reason, row.actor_id, row.reviewed_at) == ("release", REASON, boss.pk, None)
    assert row.detail["previous_reason"] == "stock_short"
    event = order.events.order_by("-id").first()
    assert event.kind == "override_released" and event.is_public is False and event.actor_id == boss.pk
    assert REASON in event.message
    assert not order.events.public().filter(kind="override_released").exists()
    assert audit() == []


def test_override_release_refuses_a_hold_a_person_set(world, system):
    order = allocated_order(world, system)
    order = services.order_transition(order=order, name="hold", actor=system, params={"reason": "risk"})
    before = snapshot(order)
    response = client_for(staff("supervisor")).post(url(order, "override_release"), {"reason": REASON}, format="json")
    assert response.status_code == 409
    assert snapshot(order) == before


@pytest.mark.parametrize("reason", [None, "", "   ", "急"])
def test_override_release_without_a_real_reason_is_400_and_changes_nothing(world, system, reason):
    order = stock_short_order(world, system)
    before = snapshot(order)
    body = {} if reason is None else {"reason": reason}
    response = client_for(staff("supervisor")).post(url(order, "override_release"), body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert snapshot(order) == before


@pytest.mark.parametrize("role", ROLES_REFUSED)
def test_override_release_is_refused_to_every_other_role(world, system, role):
    order = stock_short_order(world, system)
    before = snapshot(order)
    response = client_for(staff(role)).post(url(order, "override_release"), {"reason": REASON}, format="json")
    assert response.status_code == 403
    assert snapshot(order) == before


# --- override ship ------------------------------------------------------------------------------
def test_supervisor_ships_a_stock_short_order_from_the_pool_without_a_lock(world, system):
    stock(world["wh1"], world["sku"], 5)  # goods arrived: 10 on hand, the order (8) is still on hold
    order = stock_short_order(world, system, quantity=12)
    stock(world["wh1"], world["sku"], 2)  # now 12
    boss = staff("supervisor")
    response = client_for(boss).post(url(order, "override_ship"), {
        "reason": REASON, "warehouse": "wh-one", "carrier": "sf", "tracking_number": "SF123"}, format="json")
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert (order.status, order.overridden) == (S.SHIPPED, True)
    assert pool(world) == (0, 0)
    move = StockMove.objects.filter(order=order).get()
    assert (move.kind, move.on_hand_delta, move.reserved_delta, move.reservation_id) == ("ship", -12, 0, None)
    assert REASON in move.reason
    shipment = order.shipments.get()
    assert (shipment.warehouse_id, shipment.carrier, shipment.tracking_number) == (world["wh1"].pk, "SF", "SF123")
    assert sum(shipment.lines.values_list("quantity", flat=True)) == 12
    row = OrderOverride.objects.get(order=order)
    assert (row.kind, row.actor_id, row.detail["unreserved"]) == ("ship", boss.pk, [["SKU-O", 12]])
    event = order.events.order_by("-id").first()
    assert (event.kind, event.is_public, event.from_status, event.to_status) == (
        "override_shipped", False, S.ON_HOLD, S.SHIPPED)
    assert not order.events.public().filter(kind="override_shipped").exists()
    assert audit() == []


def test_override_ship_of_a_held_allocated_order_consumes_its_own_reservations_only(world, system):
    order = allocated_order(world, system, quantity=2)  # reserved 2 in wh1
    other = allocated_order(world, system, quantity=3)  # another order holds the other 3
    order = services.order_hold(order=order, actor=system, reason=HoldReason.RESERVATION_EXPIRED)
    assert pool(world) == (5, 5)
    response = client_for(staff("supervisor")).post(url(order, "override_ship"), {
        "reason": REASON, "warehouse": "wh-one"}, format="json")
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert (order.status, order.overridden) == (S.SHIPPED, True)
    assert pool(world) == (3, 3)  # its own 2 consumed; the other order's 3 untouched
    assert Reservation.objects.get(order_line__order=order).status == "consumed"
    assert Reservation.objects.get(order_line__order=other).status == "active"
    assert OrderOverride.objects.get(order=order).detail["unreserved"] == []
    assert audit() == []


@pytest.mark.parametrize("step", ["allocated", "person_hold"])
def test_override_ship_is_refused_unless_the_system_held_the_order(world, system, step):
    order = allocated_order(world, system)
    if step == "person_hold":
        order = services.order_hold(order=order, actor=system, reason=HoldReason.ADDRESS)
    before = snapshot(order)
    response = client_for(staff("supervisor")).post(url(order, "override_ship"), {
        "reason": REASON, "warehouse": "wh-one"}, format="json")
    assert response.status_code == 409
    assert snapshot(order) == before


def test_override_ship_never_takes_stock_reserved_for_other_orders(world, system):
    allocated_order(world, system, quantity=5)  # all 5 reserved by another order
    order = stock_short_order(world, system, quantity=1)
    before = snapshot(order)
    response = client_for(staff("supervisor")).post(url(order, "override_ship"), {
        "reason": REASON, "warehouse": "wh-one"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert snapshot(order) == before
    assert audit() == []


def test_override_ship_releases_reservations_in_other_warehouses(world, system):
    stock(world["wh2"], world["sku"], 4)
    order = make_order(lines=[(world["sku"], 7)])
    order = services.order_transition(order=order, name="allocate", actor=system)
    assert Reservation.objects.filter(order_line__order=order, stock_level__warehouse=world["wh2"]).exists()
    order = services.order_hold(order=order, actor=system, reason=HoldReason.RESERVATION_EXPIRED)
    stock(world["wh1"], world["sku"], 7)
    response = client_for(staff("supervisor")).post(url(order, "override_ship"), {
        "reason": REASON, "warehouse": "wh-one"}, format="json")
    assert response.status_code == 200, response.content
    assert pool(world, "wh2") == (4, 0)
    assert pool(world)[1] == 0
    assert pool(world)[0] == 12 - 7
    assert not Reservation.objects.filter(status="active").exists()
    assert audit() == []


@pytest.mark.parametrize("body", [{}, {"reason": "   ", "warehouse": "wh-one"}, {"reason": "急急", "warehouse": "wh-one"},
                                  {"reason": REASON}])
def test_override_ship_without_reason_or_warehouse_is_400_and_changes_nothing(world, system, body):
    order = stock_short_order(world, system)
    before = snapshot(order)
    response = client_for(staff("supervisor")).post(url(order, "override_ship"), body, format="json")
    assert response.status_code == 400
    assert snapshot(order) == before


@pytest.mark.parametrize("role", ROLES_REFUSED)
def test_override_ship_is_refused_to_every_other_role(world, system, role):
    order = stock_short_order(world, system)
    before = snapshot(order)
    response = client_for(staff(role)).post(url(order, "override_ship"), {"reason": REASON, "warehouse": "wh-one"},
                                            format="json")
    assert response.status_code == 403
    assert snapshot(order) == before


# --- services directly, buttons and review ------------------------------------------------------
def test_services_refuse_blank_reason_and_non_supervisors(world, system, actor_for):
    order = stock_short_order(world, system)
    with pytest.raises(InvalidInput):
        services.order_override_release(order=order, actor=actor_for(staff("supervisor")), reason=" ")
    with pytest.raises(NotPermitted):
        services.order_override_release(order=order, actor=actor_for(staff("operations")), reason=REASON)
    with pytest.raises(NotPermitted):
        services.order_override_ship(order=order, actor=actor_for(staff("warehouse", "wh2")), reason=REASON,
                                     warehouse=world["wh1"])
    order.refresh_from_db()
    assert order.status == S.ON_HOLD and not order.overridden


def test_buttons_show_for_supervisors_only(world, system, actor_for):
    order = stock_short_order(world, system)
    boss = actor_for(staff("supervisor"))
    assert {"override_release", "override_ship"} <= set(services.available_transitions(order=order, actor=boss))
    for role in ROLES_REFUSED:
        names = services.available_transitions(order=order, actor=actor_for(staff(role)))
        assert not {"override_release", "override_ship"} & set(names)


def test_mark_reviewed_stamps_the_reviewer_once(world, system, actor_for):
    order = stock_short_order(world, system)
    boss = staff("supervisor")
    services.order_override_release(order=order, actor=actor_for(boss), reason=REASON)
    row = OrderOverride.objects.get()
    with pytest.raises(NotPermitted):
        services.override_mark_reviewed(override_ids=[row.pk], actor=actor_for(staff("customer_service")))
    assert services.override_mark_reviewed(override_ids=[row.pk], actor=actor_for(boss)) == 1
    assert services.override_mark_reviewed(override_ids=[row.pk], actor=actor_for(boss)) == 0
    row.refresh_from_db()
    assert row.reviewed_by_id == boss.pk and row.reviewed_at is not None


# --- admin: the buttons, the form and the list for review ---------------------------------------
def admin_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_admin_shows_override_buttons_to_supervisors_only_and_posts_with_a_reason(world, system):
    from django.urls import reverse

    order = stock_short_order(world, system)
    page = reverse("admin:orders_order_change", args=[order.pk])
    boss = admin_client(staff("supervisor"))
    names = [b["name"] for b in boss.get(page).context["transition_buttons"]]
    assert {"override_release", "override_ship"} <= set(names)
    for role in ROLES_REFUSED:
        response = admin_client(staff(role)).get(page)
        if response.status_code == 200:
            assert not {"override_release", "override_ship"} & {b["name"] for b in response.context["transition_buttons"]}
    post = reverse("admin:orders_order_transition", args=[order.pk, "override_release"])
    boss.post(post, {"reason": ""}, follow=True)
    order.refresh_from_db()
    assert order.status == S.ON_HOLD and not OrderOverride.objects.exists()
    boss.post(post, {"reason": REASON}, follow=True)
    order.refresh_from_db()
    assert (order.status, order.overridden) == (S.PAID, True)
    assert OrderOverride.objects.get().reason == REASON


def test_admin_override_list_for_supervisors_and_mark_reviewed(world, system, actor_for):
    from django.urls import reverse

    order = stock_short_order(world, system)
    boss = staff("supervisor")
    services.order_override_release(order=order, actor=actor_for(boss), reason=REASON)
    row = OrderOverride.objects.get()
    changelist = reverse("admin:orders_orderoverride_changelist")
    client = admin_client(boss)
    response = client.get(changelist + "?reviewed=no")
    assert response.status_code == 200 and order.number in response.content.decode()
    for role in ROLES_REFUSED:
        assert admin_client(staff(role)).get(changelist).status_code == 403
    client.post(changelist, {"action": "mark_reviewed", "_selected_action": [row.pk]}, follow=True)
    row.refresh_from_db()
    assert row.reviewed_by_id == boss.pk and row.reviewed_at is not None


def test_admin_override_ship_form_offers_every_warehouse_and_ships(world, system):
    from django.urls import reverse

    order = stock_short_order(world, system, quantity=9)
    stock(world["wh2"], world["sku"], 9)  # goods arrived in the second warehouse
    boss = admin_client(staff("supervisor"))
    page = boss.get(reverse("admin:orders_order_change", args=[order.pk]))
    form = next(b for b in page.context["transition_buttons"] if b["name"] == "override_ship")["form"]
    assert {"wh-one", "wh-two"} <= {code for code, _label in form.fields["warehouse"].choices}
    boss.post(reverse("admin:orders_order_transition", args=[order.pk, "override_ship"]),
              {"reason": REASON, "warehouse": "wh-two", "carrier": "", "tracking_number": ""}, follow=True)
    order.refresh_from_db()
    assert order.status == S.SHIPPED
    assert pool(world, "wh2") == (0, 0) and pool(world) == (5, 0)
    assert audit() == []
