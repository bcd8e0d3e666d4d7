"""Who may move stock: receive, adjust and count, role by role (written by hand from the
role descriptions, not read from config/roles.py). A refusal changes nothing: the pool,
the ledger and the pool list stay exactly as they were."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from config.actors import Actor, Source
from config.errors import NotPermitted
from inventory import services
from inventory.audit import audit
from inventory.models import StockLevel, StockMove
from orders import services as order_services
from tests.factories import SYSTEM, SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

# 仓管 and 运营 receive and adjust stock (a stocktake is an adjustment); 主管 does every
# stock operation; 客服 and 财务 only look.
MAY_MOVE_STOCK = {"customer_service": False, "warehouse": True, "finance": False, "operations": True,
                  "supervisor": True}

OPERATIONS = {
    "receive": lambda wh, sku, actor: services.stock_receive(warehouse=wh, sku=sku, quantity=5, actor=actor, reason="PO-9"),
    "adjust": lambda wh, sku, actor: services.stock_adjust(warehouse=wh, sku=sku, delta=-2, actor=actor, reason="破损"),
    "count": lambda wh, sku, actor: services.stock_count(warehouse=wh, sku=sku, counted=7, actor=actor, reason="月末盘点"),
}
EXPECTED_ON_HAND = {"receive": 15, "adjust": 8, "count": 7}
EXPECTED_KIND = {"receive": "receipt", "adjust": "adjustment", "count": "stocktake"}
CELLS = [(role, op, allowed) for role, allowed in MAY_MOVE_STOCK.items() for op in OPERATIONS]


@pytest.fixture
def pool():
    """10 on hand, 3 of them reserved by an allocated order."""
    wh, sku = WarehouseFactory(code="suzhou", name="苏州仓"), SkuFactory(code="PEN-01")
    stock(wh, sku, 10)
    order_services.order_allocate(order=make_order(lines=[(sku, 3)]), actor=SYSTEM)
    pool = StockLevel.objects.get(warehouse=wh, sku=sku)
    assert (pool.on_hand, pool.reserved) == (10, 3)
    return pool


def snapshot() -> tuple:
    return (
        sorted(StockLevel.objects.values_list("pk", "on_hand", "reserved", "updated_at")),
        sorted(StockMove.objects.values_list("pk", flat=True)),
    )


def actor(role: str) -> Actor:
    return Actor.of(staff(role), Source.ADMIN)


@pytest.mark.parametrize("role,op,allowed", CELLS, ids=[f"{r}-{o}-{'allowed' if a else 'refused'}" for r, o, a in CELLS])
def test_stock_operation_by_role(pool, role, op, allowed):
    before = snapshot()
    who = actor(role)
    if allowed:
        result = OPERATIONS[op](pool.warehouse, pool.sku, who)
        pool.refresh_from_db()
        assert (result.on_hand, pool.on_hand, pool.reserved) == (EXPECTED_ON_HAND[op], EXPECTED_ON_HAND[op], 3)
        move = StockMove.objects.latest("id")
        assert (move.kind, move.actor, move.source) == (EXPECTED_KIND[op], who.user, "admin")
        assert move.on_hand_delta == EXPECTED_ON_HAND[op] - 10
    else:
        with pytest.raises(NotPermitted) as excinfo:
            OPERATIONS[op](pool.warehouse, pool.sku, who)
        assert excinfo.value.http_status == 403
        assert role in excinfo.value.message
        assert snapshot() == before
    assert audit() == []


@pytest.mark.parametrize("role", ["customer_service", "finance"])
@pytest.mark.parametrize("op", ["adjust", "count"])
def test_a_refused_role_creates_no_pool_for_a_new_warehouse_and_sku(role, op):
    wh, sku = WarehouseFactory(code="tianjin"), SkuFactory(code="NEW-1")
    with pytest.raises(NotPermitted):
        OPERATIONS[op](wh, sku, actor(role))
    assert not StockLevel.objects.filter(warehouse=wh, sku=sku).exists()
    assert not StockMove.objects.exists()


@pytest.mark.parametrize("role", ["customer_service", "finance"])
def test_the_permission_is_checked_before_the_input(pool, role):
    """A refused role learns nothing from validation: bad input is still "not permitted"."""
    before = snapshot()
    who = actor(role)
    with pytest.raises(NotPermitted):
        services.stock_adjust(warehouse=pool.warehouse, sku=pool.sku, delta=-100, actor=who, reason="")
    with pytest.raises(NotPermitted):
        services.stock_count(warehouse=pool.warehouse, sku=pool.sku, counted=-1, actor=who)
    assert snapshot() == before


@pytest.mark.parametrize("op", ["adjust", "count"])
def test_an_inactive_warehouse_user_is_refused(pool, op):
    user = staff("warehouse")
    user.is_active = False
    user.save()
    before = snapshot()
    with pytest.raises(NotPermitted):
        OPERATIONS[op](pool.warehouse, pool.sku, Actor.of(user, Source.ADMIN))
    assert snapshot() == before


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_stock_api_is_read_only_even_for_the_supervisor(pool, method):
    client = APIClient()
    client.force_authenticate(staff("supervisor"))
    before = snapshot()
    response = getattr(client, method)("/api/v1/stock/", {"on_hand": 999, "reserved": 0}, format="json")
    assert response.status_code == 405
    assert snapshot() == before
