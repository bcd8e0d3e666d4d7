"""Receiving, adjusting and counting stock: the ledger always balances, bad input stores nothing."""

import pytest

from config.actors import Actor, Source
from inventory import services
from inventory.audit import audit
from inventory.models import StockLevel, StockMove
from orders import services as order_services
from config.errors import InvalidInput, NotPermitted
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("quantity", [-1, 0, "5", 2.5, True])
def test_receive_refuses_bad_quantities(system, quantity):
    wh, sku = WarehouseFactory(), SkuFactory()
    with pytest.raises(InvalidInput):
        services.stock_receive(warehouse=wh, sku=sku, quantity=quantity, actor=system)
    assert StockMove.objects.count() == 0
    assert not StockLevel.objects.filter(on_hand__gt=0).exists()


def test_receive_writes_a_ledger_row(system):
    wh, sku = WarehouseFactory(), SkuFactory()
    pool = services.stock_receive(warehouse=wh, sku=sku, quantity=7, actor=system, reason="采购入库")
    move = StockMove.objects.get()
    assert (pool.on_hand, move.kind, move.on_hand_delta, move.on_hand_after) == (7, "receipt", 7, 7)


def test_adjust_cannot_go_below_reserved(system):
    wh, sku = WarehouseFactory(), SkuFactory()
    stock(wh, sku, 5)
    order_services.order_allocate(order=make_order(lines=[(sku, 4)]), actor=system)
    with pytest.raises(InvalidInput) as excinfo:
        services.stock_adjust(warehouse=wh, sku=sku, delta=-2, actor=system, reason="破损")
    assert excinfo.value.code == "below_reserved"
    assert StockLevel.objects.get().on_hand == 5
    assert audit() == []


def test_adjust_requires_a_reason(system):
    wh, sku = WarehouseFactory(), SkuFactory()
    stock(wh, sku, 5)
    with pytest.raises(InvalidInput):
        services.stock_adjust(warehouse=wh, sku=sku, delta=-1, actor=system, reason=" ")


def test_stocktake_moves_the_difference_through_the_ledger(system):
    wh, sku = WarehouseFactory(), SkuFactory()
    stock(wh, sku, 10)
    services.stock_count(warehouse=wh, sku=sku, counted=8, actor=system)
    move = StockMove.objects.order_by("id").last()
    assert (move.kind, move.on_hand_delta) == ("stocktake", -2)
    assert StockLevel.objects.get().on_hand == 8
    assert audit() == []


def test_stocktake_refuses_negative_count(system):
    wh, sku = WarehouseFactory(), SkuFactory()
    stock(wh, sku, 10)
    with pytest.raises(InvalidInput):
        services.stock_count(warehouse=wh, sku=sku, counted=-3, actor=system)
    assert StockLevel.objects.get().on_hand == 10


def test_finance_cannot_receive_stock():
    wh, sku = WarehouseFactory(), SkuFactory()
    with pytest.raises(NotPermitted):
        services.stock_receive(warehouse=wh, sku=sku, quantity=1, actor=Actor.of(staff("finance"), Source.ADMIN))
    assert StockMove.objects.count() == 0


def test_ledger_rows_cannot_be_changed_or_deleted(system):
    from django.core.exceptions import ValidationError

    wh, sku = WarehouseFactory(), SkuFactory()
    stock(wh, sku, 1)
    move = StockMove.objects.get()
    move.reason = "tampered"
    with pytest.raises(ValidationError):
        move.save()
    with pytest.raises(ValidationError):
        move.delete()


def test_database_refuses_reserved_above_on_hand(system):
    from django.db import IntegrityError, transaction

    wh, sku = WarehouseFactory(), SkuFactory()
    stock(wh, sku, 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        StockLevel.objects.update(reserved=2)


def test_audit_names_a_pool_that_disagrees_with_its_ledger(system):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    wh, sku = WarehouseFactory(code="sz"), SkuFactory(code="CUP-1")
    stock(wh, sku, 5)
    StockLevel.objects.update(on_hand=6)  # a write that skipped the ledger
    problems = audit()
    assert problems and "sz/CUP-1" in problems[0] and "ledger 5" in problems[0]
    with pytest.raises(CommandError):
        call_command("inventory_audit")
