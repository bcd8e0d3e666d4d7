"""The order lifecycle through the services: allowed from its sources, refused elsewhere and without permission."""

import pytest

from config.actors import Actor, Source
from inventory.audit import audit
from orders import services
from config.errors import NotPermitted, TransitionNotAllowed, UnknownTransition, InvalidInput
from orders.models import Order, OrderEvent, OrderStatus as S
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

ALL_STATES = [s.value for s in S]


def drive(state: str, system) -> Order:
    """An order brought to `state` through the services."""
    wh = WarehouseFactory(code="main")
    sku = SkuFactory(code="SKU-LC")
    stock(wh, sku, 10)
    order = make_order(lines=[(sku, 1)], paid=state != S.PENDING_PAYMENT)
    steps = {
        S.PENDING_PAYMENT: [],
        S.PAID: [],
        S.ON_HOLD: [lambda o: services.order_hold(order=o, actor=system, reason="manual")],
        S.ALLOCATED: [lambda o: services.order_allocate(order=o, actor=system)],
        S.PACKED: ["allocated", lambda o: services.order_pack(order=o, actor=system)],
        S.SHIPPED: ["packed", lambda o: services.order_ship(order=o, actor=system)],
        S.DELIVERED: ["shipped", lambda o: services.order_deliver(order=o, actor=system)],
        S.COMPLETED: ["delivered", lambda o: services.order_complete(order=o, actor=system)],
        S.CANCELLED: [lambda o: services.order_cancel(order=o, actor=system)],
        S.RETURNED: ["shipped", lambda o: services.order_mark_returned(order=o, actor=system)],
    }

    def run(target, o):
        for step in steps[target]:
            o = run(step, o) if isinstance(step, str) else step(o)
        return o

    if state == S.PARTIALLY_SHIPPED:
        return None
    order = run(state, order)
    assert order.status == state
    return order


# transition → (source states, expected target)
LIFECYCLE = {
    "pay": ([S.PENDING_PAYMENT], S.PAID),
    "allocate": ([S.PAID], S.ALLOCATED),
    "hold": ([S.PAID, S.ALLOCATED], S.ON_HOLD),
    "release": ([S.ON_HOLD], S.PAID),
    "pack": ([S.ALLOCATED], S.PACKED),
    "ship": ([S.PACKED], S.SHIPPED),
    "deliver": ([S.SHIPPED], S.DELIVERED),
    "complete": ([S.DELIVERED], S.COMPLETED),
    "cancel": ([S.PENDING_PAYMENT, S.PAID, S.ON_HOLD, S.ALLOCATED, S.PACKED], S.CANCELLED),
    "mark_returned": ([S.SHIPPED, S.DELIVERED, S.COMPLETED], S.RETURNED),
}
CASES = [
    (name, state, state in sources, target)
    for name, (sources, target) in LIFECYCLE.items()
    for state in ALL_STATES
    if state != S.PARTIALLY_SHIPPED
]


@pytest.mark.parametrize("name,state,allowed,target", CASES, ids=[f"{c[0]}-from-{c[1]}" for c in CASES])
def test_transition_allowed_only_from_its_source_states(name, state, allowed, target, system):
    order = drive(state, system)
    events_before = OrderEvent.objects.filter(order=order).count()
    if allowed:
        order = services.order_transition(order=order, name=name, actor=system)
        assert order.status == target
        assert Order.objects.get(pk=order.pk).status == target
        assert OrderEvent.objects.filter(order=order).count() > events_before
        assert OrderEvent.objects.filter(order=order).last().to_status == target
    else:
        with pytest.raises(TransitionNotAllowed) as excinfo:
            services.order_transition(order=order, name=name, actor=system)
        assert excinfo.value.code == "transition_not_allowed"
        assert order.number in excinfo.value.message
        assert Order.objects.get(pk=order.pk).status == state
        assert OrderEvent.objects.filter(order=order).count() == events_before
    assert audit() == []


# role → transitions it must NOT be able to take (from a state where the transition is legal)
REFUSED = [
    ("finance", "cancel", S.PAID),
    ("finance", "pack", S.ALLOCATED),
    ("finance", "hold", S.PAID),
    ("customer_service", "pack", S.ALLOCATED),
    ("customer_service", "ship", S.PACKED),
    ("customer_service", "pay", S.PENDING_PAYMENT),
    ("warehouse", "cancel", S.PAID),
    ("warehouse", "complete", S.DELIVERED),
    ("warehouse", "mark_returned", S.SHIPPED),
    ("operations", "ship", S.PACKED),
    ("operations", "cancel", S.ALLOCATED),
]


@pytest.mark.parametrize("role,name,state", REFUSED)
def test_transition_refused_without_permission(role, name, state, system):
    order = drive(state, system)
    actor = Actor.of(staff(role), Source.ADMIN)
    with pytest.raises(NotPermitted) as excinfo:
        services.order_transition(order=order, name=name, actor=actor)
    assert excinfo.value.http_status == 403
    assert Order.objects.get(pk=order.pk).status == state


@pytest.mark.parametrize(
    "role,name,state,target",
    [
        ("customer_service", "cancel", S.PAID, S.CANCELLED),
        ("customer_service", "hold", S.PAID, S.ON_HOLD),
        ("warehouse", "pack", S.ALLOCATED, S.PACKED),
        ("warehouse", "ship", S.PACKED, S.SHIPPED),
        ("operations", "allocate", S.PAID, S.ALLOCATED),
        ("supervisor", "mark_returned", S.DELIVERED, S.RETURNED),
    ],
)
def test_transition_by_permitted_role_records_the_person(role, name, state, target, system):
    order = drive(state, system)
    user = staff(role)
    order = services.order_transition(order=order, name=name, actor=Actor.of(user, Source.ADMIN))
    assert order.status == target
    event = OrderEvent.objects.filter(order=order).last()
    assert (event.actor, event.actor_label, event.source, event.to_status) == (user, user.username, "admin", target)


def test_unknown_transition_is_refused(system):
    order = drive(S.PAID, system)
    with pytest.raises(UnknownTransition):
        services.order_transition(order=order, name="teleport", actor=system)
    assert Order.objects.get(pk=order.pk).status == S.PAID


def test_release_returns_an_allocated_order_to_allocated(system):
    order = drive(S.ALLOCATED, system)
    order = services.order_hold(order=order, actor=system, reason="risk", note="地址可疑")
    assert (order.status, order.hold_reason) == (S.ON_HOLD, "risk")
    order = services.order_release(order=order, actor=system)
    assert (order.status, order.hold_reason) == (S.ALLOCATED, "")


def test_hold_with_unknown_reason_is_bad_input(system):
    order = drive(S.PAID, system)
    with pytest.raises(InvalidInput):
        services.order_hold(order=order, actor=system, reason="bored")
    assert Order.objects.get(pk=order.pk).status == S.PAID


def test_transition_with_unexpected_parameter_is_bad_input(system):
    order = drive(S.PAID, system)
    with pytest.raises(InvalidInput):
        services.order_transition(order=order, name="pack", actor=system, params={"warehouse": "x"})


def test_status_cannot_be_assigned_directly(system):
    order = drive(S.PAID, system)
    with pytest.raises(AttributeError):
        order.status = S.SHIPPED


def test_public_timeline_reads_in_order(system):
    order = drive(S.DELIVERED, system)
    public = list(order.events.filter(is_public=True).values_list("kind", flat=True))
    assert public == ["created", "paid", "allocated", "packed", "shipped", "delivered"]


@pytest.mark.parametrize("quantity", [-1, 0, "2"])
def test_order_with_a_bad_line_quantity_is_refused_and_nothing_stored(system, quantity):
    from decimal import Decimal

    from orders.models import OrderLine
    from orders.platforms.base import NormalizedLine, NormalizedOrder
    from tests.factories import ShopFactory

    data = NormalizedOrder(platform_order_id="BAD-1", paid=True, paid_amount=Decimal("10"),
                           lines=[NormalizedLine(title="杯子", quantity=quantity, sku_code="X")])
    with pytest.raises(InvalidInput) as excinfo:
        services.order_create(shop=ShopFactory(), data=data, actor=system)
    assert "第 1 行" in excinfo.value.message
    assert (Order.objects.count(), OrderLine.objects.count(), OrderEvent.objects.count()) == (0, 0, 0)


def test_negative_amount_is_refused_and_nothing_stored(system):
    from decimal import Decimal

    from orders.platforms.base import NormalizedOrder
    from tests.factories import ShopFactory

    data = NormalizedOrder(platform_order_id="BAD-2", paid_amount=Decimal("-5"))
    with pytest.raises(InvalidInput):
        services.order_create(shop=ShopFactory(), data=data, actor=system)
    assert Order.objects.count() == 0


def test_the_same_platform_order_cannot_be_created_twice(system):
    from tests.factories import ShopFactory

    shop = ShopFactory()
    make_order(shop=shop, platform_order_id="DUP-1")
    with pytest.raises(InvalidInput) as excinfo:
        make_order(shop=shop, platform_order_id="DUP-1")
    assert excinfo.value.code == "duplicate"
    assert Order.objects.filter(platform_order_id="DUP-1").count() == 1


# Notes: 客服 and 主管 edit them; 仓管, 财务 and 运营 do not (written from the role descriptions).
NOTE_ROLES = [("customer_service", True), ("supervisor", True), ("warehouse", False), ("finance", False),
              ("operations", False)]


@pytest.mark.parametrize("role,allowed", NOTE_ROLES)
def test_adding_a_note_by_role(role, allowed, system):
    order = drive(S.PAID, system)
    user = staff(role)
    events_before = OrderEvent.objects.filter(order=order).count()
    if allowed:
        services.order_add_note(order=order, actor=Actor.of(user, Source.ADMIN), note="客户来电改期")
        stored = Order.objects.get(pk=order.pk)
        assert (stored.status, stored.seller_note) == (S.PAID, "客户来电改期")
        note = OrderEvent.objects.get(order=order, kind="note")
        assert (note.actor, note.message, note.to_status) == (user, "客户来电改期", "")
        assert OrderEvent.objects.filter(order=order).count() == events_before + 1
    else:
        with pytest.raises(NotPermitted) as excinfo:
            services.order_add_note(order=order, actor=Actor.of(user, Source.API), note="客户来电改期")
        assert excinfo.value.http_status == 403
        stored = Order.objects.get(pk=order.pk)
        assert (stored.status, stored.seller_note) == (S.PAID, "")
        assert OrderEvent.objects.filter(order=order).count() == events_before


def test_a_blank_note_is_refused_and_changes_nothing(system):
    order = drive(S.PAID, system)
    with pytest.raises(InvalidInput):
        services.order_add_note(order=order, actor=Actor.of(staff("customer_service"), Source.ADMIN), note="  ")
    assert Order.objects.get(pk=order.pk).seller_note == ""
    assert not OrderEvent.objects.filter(order=order, kind="note").exists()
