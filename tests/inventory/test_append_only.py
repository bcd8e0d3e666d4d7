"""The stock ledger and the order timeline only grow: no path may change or remove a row.

The ORM refuses on every database (queryset `update()`/`delete()` raise); on PostgreSQL a
trigger also refuses raw SQL, which is what a careless migration or a psql session would use.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from inventory.models import StockMove
from orders.models import OrderEvent
from tests.factories import SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db

TABLES = [
    pytest.param(StockMove, "reason", id="stock_move"),
    pytest.param(OrderEvent, "message", id="order_event"),
]


@pytest.fixture
def rows():
    """One order with its timeline, and stock received for it: both tables hold rows."""
    sku = SkuFactory()
    stock(WarehouseFactory(), sku, 3)
    make_order(lines=[(sku, 1)])
    assert StockMove.objects.exists() and OrderEvent.objects.exists()


def snapshot(model, field) -> list[tuple]:
    return list(model.objects.order_by("pk").values_list("pk", field))


@pytest.mark.parametrize("model, field", TABLES)
def test_queryset_update_is_refused_and_changes_nothing(rows, model, field):
    before = snapshot(model, field)
    with pytest.raises(ValidationError):
        model.objects.update(**{field: "tampered"})
    with pytest.raises(ValidationError):
        model.objects.filter(pk=before[0][0]).update(**{field: "tampered"})
    assert snapshot(model, field) == before


@pytest.mark.parametrize("model, field", TABLES)
def test_queryset_delete_is_refused_and_removes_nothing(rows, model, field):
    before = snapshot(model, field)
    with pytest.raises(ValidationError):
        model.objects.all().delete()
    with pytest.raises(ValidationError):
        model.objects.filter(pk=before[0][0]).delete()
    assert snapshot(model, field) == before


def test_appending_in_bulk_still_works(rows):
    """`bulk_create` adds rows: the allocation path and the benchmark rely on it."""
    event = OrderEvent.objects.first()
    before = OrderEvent.objects.count()
    OrderEvent.objects.bulk_create([OrderEvent(order=event.order, kind="note", message="bulk")])
    assert OrderEvent.objects.count() == before + 1


@pytest.mark.postgres
@pytest.mark.parametrize("model, field", TABLES)
def test_database_refuses_raw_update(rows, model, field):
    before = snapshot(model, field)
    table, column = model._meta.db_table, model._meta.get_field(field).column
    with pytest.raises(DatabaseError, match="Cannot update or delete rows"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET "{column}" = %s', ["tampered"])
    assert snapshot(model, field) == before


@pytest.mark.postgres
@pytest.mark.parametrize("model, field", TABLES)
def test_database_refuses_raw_delete(rows, model, field):
    before = snapshot(model, field)
    table = model._meta.db_table
    with pytest.raises(DatabaseError, match="Cannot update or delete rows"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{table}" WHERE id = %s', [before[0][0]])
    assert snapshot(model, field) == before


@pytest.mark.postgres
@pytest.mark.parametrize("model, field", TABLES)
def test_database_refuses_the_base_manager_too(rows, model, field):
    """`_base_manager` (a plain manager, used by Django internals) is caught by the trigger."""
    before = snapshot(model, field)
    with pytest.raises(DatabaseError, match="Cannot update or delete rows"), transaction.atomic():
        model._base_manager.update(**{field: "tampered"})
    with pytest.raises(DatabaseError, match="Cannot update or delete rows"), transaction.atomic():
        model._base_manager.all()._raw_delete(connection.alias)
    assert snapshot(model, field) == before
