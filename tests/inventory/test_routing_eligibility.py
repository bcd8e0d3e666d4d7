"""Which warehouses may serve an order, strict vs preferred rules, and pool timestamps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inventory.audit import audit
from inventory.models import Reservation, RoutingRule, StockLevel, Warehouse
from orders import services
from orders.models import HoldReason
from orders.models import OrderStatus as S
from tests.factories import RoutingRuleFactory, SkuFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db

BASIN = {"field": "sku_category", "op": "eq", "value": "折叠盆"}


def warehouses_of(order):
    return sorted(
        Reservation.objects.filter(order_line__order=order, status="active")
        .values_list("stock_level__warehouse__code", flat=True).distinct()
    )


@pytest.fixture
def basin():
    return SkuFactory(code="BASIN", category="折叠盆")


def test_a_rule_never_allocates_from_the_return_centre(system, basin):
    returns = WarehouseFactory(code="yiwu-returns", name="义乌退货仓", kind=Warehouse.Kind.RETURN_CENTER,
                               allocatable=False, priority=1)
    suzhou = WarehouseFactory(code="suzhou", priority=5)
    RoutingRuleFactory(name="折叠盆 → 退货仓", conditions=BASIN, warehouse=returns)
    stock(returns, basin, 50)
    stock(suzhou, basin, 5)
    order = services.order_allocate(order=make_order(lines=[(basin, 2)]), actor=system)
    assert order.status == S.ALLOCATED
    assert warehouses_of(order) == ["suzhou"]
    assert StockLevel.objects.get(warehouse=returns).reserved == 0


def test_a_rule_never_allocates_a_domestic_order_from_the_overseas_warehouse(system, basin):
    la = WarehouseFactory(code="la", name="洛杉矶海外仓", kind=Warehouse.Kind.OVERSEAS, country="US", priority=1)
    RoutingRuleFactory(name="折叠盆 → 洛杉矶", conditions=BASIN, warehouse=la)
    stock(la, basin, 50)
    order = services.order_allocate(order=make_order(lines=[(basin, 2)]), actor=system)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.STOCK_SHORT)
    assert StockLevel.objects.get(warehouse=la).reserved == 0
    assert Reservation.objects.count() == 0


def test_a_strict_rule_holds_the_order_when_its_warehouse_is_short(system, basin):
    shenzhen = WarehouseFactory(code="shenzhen", priority=3)
    suzhou = WarehouseFactory(code="suzhou", priority=1)
    RoutingRuleFactory(name="折叠盆 → 深圳", conditions=BASIN, warehouse=shenzhen, mode=RoutingRule.Mode.STRICT)
    stock(shenzhen, basin, 1)
    stock(suzhou, basin, 50)
    order = services.order_allocate(order=make_order(lines=[(basin, 2)]), actor=system)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, HoldReason.STOCK_SHORT)
    assert "BASIN 需要 2,可用 1" in order.hold_note
    assert StockLevel.objects.filter(reserved__gt=0).count() == 0
    assert audit() == []


def test_a_strict_rule_with_stock_allocates_there(system, basin):
    shenzhen = WarehouseFactory(code="shenzhen", priority=3)
    suzhou = WarehouseFactory(code="suzhou", priority=1)
    RoutingRuleFactory(name="折叠盆 → 深圳", conditions=BASIN, warehouse=shenzhen, mode=RoutingRule.Mode.STRICT)
    stock(shenzhen, basin, 5)
    stock(suzhou, basin, 50)
    order = services.order_allocate(order=make_order(lines=[(basin, 2)]), actor=system)
    assert order.status == S.ALLOCATED
    assert warehouses_of(order) == ["shenzhen"]


def test_a_preferred_rule_falls_back_by_priority_when_its_warehouse_is_short(system, basin):
    shenzhen = WarehouseFactory(code="shenzhen", priority=3)
    tianjin = WarehouseFactory(code="tianjin", priority=2)
    suzhou = WarehouseFactory(code="suzhou", priority=1)
    rule = RoutingRuleFactory(name="折叠盆 → 深圳", conditions=BASIN, warehouse=shenzhen)
    assert rule.mode == RoutingRule.Mode.PREFERRED  # the default
    stock(shenzhen, basin, 1)
    stock(tianjin, basin, 50)
    stock(suzhou, basin, 50)
    order = services.order_allocate(order=make_order(lines=[(basin, 2)]), actor=system)
    assert order.status == S.ALLOCATED
    assert warehouses_of(order) == ["suzhou"]
    assert StockLevel.objects.get(warehouse=shenzhen).reserved == 0


def test_allocation_moves_the_pools_updated_at(system, basin):
    suzhou = WarehouseFactory(code="suzhou")
    stock(suzhou, basin, 5)
    pool = StockLevel.objects.get()
    StockLevel.objects.filter(pk=pool.pk).update(updated_at=timezone.now() - timedelta(days=1))
    since = timezone.now() - timedelta(seconds=5)
    services.order_allocate(order=make_order(lines=[(basin, 2)]), actor=system)
    changed = StockLevel.objects.filter(updated_at__gte=since)
    assert list(changed.values_list("pk", "reserved")) == [(pool.pk, 2)]


def test_the_rule_admin_lists_filters_and_edits_the_mode(basin):
    shenzhen = WarehouseFactory(code="shenzhen", name="深圳仓")
    strict = RoutingRuleFactory(name="折叠盆严格", conditions=BASIN, warehouse=shenzhen, mode=RoutingRule.Mode.STRICT)
    RoutingRuleFactory(name="其他优先", warehouse=shenzhen)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    listing = client.get(reverse("admin:inventory_routingrule_changelist"), {"mode__exact": "strict"})
    assert [r.name for r in listing.context["cl"].result_list] == ["折叠盆严格"]
    assert "严格" in listing.content.decode()
    form = client.get(reverse("admin:inventory_routingrule_change", args=[strict.pk])).context["adminform"].form
    assert "mode" in form.fields
    assert [value for value, _ in form.fields["mode"].choices] == ["strict", "preferred"]
