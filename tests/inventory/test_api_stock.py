"""GET /api/v1/stock/: stock levels per warehouse × SKU, filtered, read-only, permission-checked."""

from __future__ import annotations

from datetime import date

import pytest
from rest_framework.test import APIClient

from inventory.models import StockLevel
from orders import services
from tests.factories import SYSTEM, SkuFactory, UserFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

URL = "/api/v1/stock/"


@pytest.fixture
def pools():
    """Suzhou holds A and B, Tianjin holds A; B is a different category."""
    suzhou = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    tianjin = WarehouseFactory(code="tianjin", name="天津仓", priority=2)
    sku_a = SkuFactory(code="A-001", name="折叠盆", category="家居")
    sku_b = SkuFactory(code="B-001", name="水杯", category="厨具")
    stock(suzhou, sku_a, 10)
    stock(suzhou, sku_b, 4)
    stock(tianjin, sku_a, 7)
    return {"suzhou": suzhou, "tianjin": tianjin, "a": sku_a, "b": sku_b}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def keys(response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.content
    return [(row["warehouse"], row["sku"]) for row in response.json()["results"]]


def test_stock_row_reads_every_field(pools):
    order = make_order(lines=[(pools["a"], 3)], province="江苏省")
    services.order_allocate(order=order, actor=SYSTEM)
    StockLevel.objects.filter(warehouse=pools["suzhou"], sku=pools["a"]).update(inbound=20, inbound_eta=date(2024, 6, 1))
    response = client_for(staff("finance")).get(URL, {"warehouse": "suzhou", "sku": "A-001"})
    assert response.status_code == 200
    (row,) = response.json()["results"]
    updated_at = row.pop("updated_at")
    assert row == {
        "warehouse": "suzhou", "warehouse_name": "苏州仓", "sku": "A-001", "sku_name": "折叠盆", "category": "家居",
        "on_hand": 10, "reserved": 3, "available": 7, "inbound": 20, "inbound_eta": "2024-06-01",
    }
    assert updated_at.endswith("+08:00")


def test_stock_list_is_paginated_in_warehouse_priority_then_sku_order(pools):
    response = client_for(staff("warehouse")).get(URL)
    assert response.json()["count"] == 3
    assert keys(response) == [("suzhou", "A-001"), ("suzhou", "B-001"), ("tianjin", "A-001")]


@pytest.mark.parametrize("params,expected", [
    ({"sku": "A-001"}, [("suzhou", "A-001"), ("tianjin", "A-001")]),
    ({"sku": "B-001"}, [("suzhou", "B-001")]),
    ({"warehouse": "tianjin"}, [("tianjin", "A-001")]),
    ({"warehouse": "suzhou", "sku": "B-001"}, [("suzhou", "B-001")]),
    ({"warehouse": "tianjin", "sku": "B-001"}, []),
    ({"category": "厨具"}, [("suzhou", "B-001")]),
    ({"category": "家居", "warehouse": "tianjin"}, [("tianjin", "A-001")]),
    ({"sku": "NOPE"}, []),
    ({"warehouse": "nowhere"}, []),
])
def test_stock_filters_return_exactly_the_matching_pools(pools, params, expected):
    assert keys(client_for(staff("operations")).get(URL, params)) == expected


def test_stock_needs_authentication(pools):
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_stock_needs_view_stocklevel(pools):
    response = client_for(UserFactory(username="norole")).get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_stock_is_read_only(pools, method):
    response = getattr(client_for(staff("supervisor")), method)(URL, {"warehouse": "suzhou", "sku": "A-001", "on_hand": 999},
                                                                 format="json")
    assert response.status_code == 405
    assert StockLevel.objects.get(warehouse=pools["suzhou"], sku=pools["a"]).on_hand == 10
