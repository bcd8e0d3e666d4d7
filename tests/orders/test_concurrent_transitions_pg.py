"""Two people acting on one order at the same moment: exactly one of them wins.

The services lock the order row (`select_for_update`) and re-check the state, so the
second caller sees the first one's result and gets a clear domain error. Underneath,
`ConcurrentTransitionMixin` refuses to save a status change made on a stale copy of the
order, which is what protects any path that does not lock.
"""

from __future__ import annotations

from typing import Callable

import pytest
from django.db import transaction
from django.db.models import Sum
from django_fsm import ConcurrentTransition

from config.actors import Actor, Source
from inventory.audit import audit
from inventory.models import Reservation, StockLevel, StockMove
from orders import services
from config.errors import ConcurrentUpdate, DomainError, TransitionNotAllowed
from orders.models import Order, OrderEvent, OrderStatus as S
from tests.concurrency import run_together
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

SYSTEM = Actor.system("concurrency-test")
LOSER_CODES = {"transition_not_allowed", "concurrent_update"}


def one_winner(outcomes, order: Order) -> tuple[int, DomainError]:
    """Exactly one call succeeded; the other failed with a clear domain error naming the order."""
    winners = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    losers = [value for kind, value in outcomes if kind == "error"]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    error = losers[0]
    assert isinstance(error, (TransitionNotAllowed, ConcurrentUpdate)), repr(error)
    assert error.code in LOSER_CODES
    assert error.http_status == 409
    assert order.number in error.message
    return winners[0], error


def two_supervisors() -> tuple[Actor, Actor]:
    return (Actor.of(staff("supervisor", username="sup-a"), Source.ADMIN),
            Actor.of(staff("supervisor", username="sup-b"), Source.API))


def allocated_order(units: int = 2) -> tuple[Order, StockLevel]:
    wh = WarehouseFactory()
    sku = SkuFactory()
    pool = stock(wh, sku, 10)
    order = services.order_allocate(order=make_order(lines=[(sku, units)]), actor=SYSTEM)
    assert order.status == S.ALLOCATED
    return order, StockLevel.objects.get(pk=pool.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_supervisors_cancelling_at_once_cancel_once_and_release_once():
    a, b = two_supervisors()
    for _ in range(3):
        # Given an allocated order holding 2 of 10 units
        order, pool = allocated_order(units=2)
        assert (pool.on_hand, pool.reserved) == (10, 2)

        # When two supervisors cancel it at the same moment
        outcomes = run_together([
            lambda: services.order_cancel(order=order, actor=a, reason="客户要求"),
            lambda: services.order_cancel(order=order, actor=b, reason="重复订单"),
        ])

        # Then one cancels, the other is told the order is already cancelled
        winner, error = one_winner(outcomes, order)
        assert isinstance(error, TransitionNotAllowed)
        assert str(S.CANCELLED.label) in error.message  # says the order is already cancelled
        order.refresh_from_db()
        assert order.status == S.CANCELLED
        cancelled = OrderEvent.objects.filter(order=order, kind="cancelled")
        assert cancelled.count() == 1
        assert cancelled.get().actor_label == (a, b)[winner].label
        # and the stock went back exactly once
        pool.refresh_from_db()
        assert (pool.on_hand, pool.reserved) == (10, 0)
        assert StockMove.objects.filter(order=order, kind=StockMove.Kind.RELEASE).count() == 1
        assert not Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE).exists()
    assert audit() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_shipping_and_cancelling_at_once_either_ships_or_cancels_never_both():
    a, b = two_supervisors()
    for _ in range(4):
        # Given a packed order holding 2 of 10 units
        order, pool = allocated_order(units=2)
        order = services.order_pack(order=order, actor=SYSTEM)

        # When one supervisor ships it while the other cancels it
        outcomes = run_together([
            lambda: services.order_ship(order=order, actor=a, carrier="SF", tracking_number="SF1234567890"),
            lambda: services.order_cancel(order=order, actor=b, reason="客户取消"),
        ])

        # Then exactly one happened, with its stock effect, and the other was refused
        winner, _error = one_winner(outcomes, order)
        order.refresh_from_db()
        pool.refresh_from_db()
        kinds = list(OrderEvent.objects.filter(order=order, kind__in=["shipped", "cancelled"]).values_list("kind", flat=True))
        if winner == 0:
            assert order.status == S.SHIPPED
            assert kinds == ["shipped"]
            assert (pool.on_hand, pool.reserved) == (8, 0)
            assert list(Reservation.objects.filter(order_line__order=order).values_list("status", flat=True)) == ["consumed"]
        else:
            assert order.status == S.CANCELLED
            assert kinds == ["cancelled"]
            assert (pool.on_hand, pool.reserved) == (10, 0)
            assert list(Reservation.objects.filter(order_line__order=order).values_list("status", flat=True)) == ["released"]
    assert audit() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_holding_and_packing_at_once_do_not_both_succeed():
    a, b = two_supervisors()
    # Given an allocated order
    order, pool = allocated_order(units=1)

    # When one supervisor holds it for risk review while the other packs it
    outcomes = run_together([
        lambda: services.order_hold(order=order, actor=a, reason="risk", note="地址可疑"),
        lambda: services.order_pack(order=order, actor=b),
    ])

    # Then one of the two happened, and only its event was written
    winner, _error = one_winner(outcomes, order)
    order.refresh_from_db()
    expected = [(S.ON_HOLD, "held"), (S.PACKED, "packed")][winner]
    assert order.status == expected[0]
    assert list(OrderEvent.objects.filter(order=order, kind__in=["held", "packed"]).values_list("kind", flat=True)) == [expected[1]]
    pool.refresh_from_db()
    assert (pool.on_hand, pool.reserved) == (10, 1)  # neither holding nor packing moves stock
    assert audit() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_stale_copies_saved_from_two_threads_only_the_first_status_change_lands():
    # Given two people who loaded the same allocated order without locking it
    order, pool = allocated_order(units=1)
    copies = [Order.objects.get(pk=order.pk), Order.objects.get(pk=order.pk)]

    def change(copy: Order, name: str) -> Callable[[], Order]:
        def run() -> Order:
            with transaction.atomic():
                getattr(copy, name)()
                services._save(copy, ["status"])  # noqa: SLF001 - the optimistic check itself
            return copy
        return run

    # When both save a different transition at the same moment
    outcomes = run_together([change(copies[0], "pack"), change(copies[1], "cancel")])

    # Then the second UPDATE finds the status changed and is refused as a concurrent update
    winner, error = one_winner(outcomes, order)
    assert isinstance(error, ConcurrentUpdate)
    assert error.code == "concurrent_update"
    assert isinstance(error.__cause__, ConcurrentTransition)
    order.refresh_from_db()
    assert order.status == (S.PACKED, S.CANCELLED)[winner]


# --- the optimistic check without threads (runs on any database) ------------------------
@pytest.mark.django_db
def test_second_stale_instance_cannot_overwrite_the_first_status_change():
    # Given two in-memory copies of one allocated order, neither locked
    order, _pool = allocated_order(units=1)
    first, second = Order.objects.get(pk=order.pk), Order.objects.get(pk=order.pk)

    # When the first copy is packed and saved, then the second is cancelled and saved
    with transaction.atomic():
        first.pack()
        first.save()
    second.cancel()

    # Then the model refuses the second save, and the status stays packed
    with pytest.raises(ConcurrentTransition):
        with transaction.atomic():
            second.save()
    assert Order.objects.get(pk=order.pk).status == S.PACKED


@pytest.mark.django_db
def test_service_save_turns_a_stale_write_into_a_concurrent_update_naming_the_order():
    order, _pool = allocated_order(units=1)
    first, second = Order.objects.get(pk=order.pk), Order.objects.get(pk=order.pk)
    with transaction.atomic():
        first.hold()
        services._save(first, ["status"])  # noqa: SLF001

    second.pack()
    with pytest.raises(ConcurrentUpdate) as excinfo:
        with transaction.atomic():
            services._save(second, ["status"])  # noqa: SLF001
    assert excinfo.value.code == "concurrent_update"
    assert order.number in excinfo.value.message
    assert Order.objects.get(pk=order.pk).status == S.ON_HOLD
    assert StockLevel.objects.aggregate(r=Sum("reserved"))["r"] == 1
