"""The OpenAPI schema (/api/schema/) and the Swagger UI (/api/docs/), served without any CDN."""

from __future__ import annotations

import json
import re

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ORDER_FIELDS = {
    "number", "shop", "platform", "platform_order_id", "status", "platform_status", "currency", "paid_amount",
    "goods_amount", "discount_amount", "shipping_fee", "buyer_note", "seller_note", "placed_at", "paid_at",
    "platform_updated_at", "hold_reason", "customer", "lines",
}


def fetch_schema() -> dict:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_endpoint_serves_a_valid_openapi_document():
    schema = fetch_schema()
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/auth/token/", "/api/v1/orders/", "/api/v1/orders/{number}/",
        "/api/v1/orders/{number}/transitions/{name}/", "/api/v1/stock/",
    } <= set(schema["paths"])


def test_schema_generation_has_no_warnings_or_errors():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["paths"]
    assert not GENERATOR_STATS._warn_cache, dict(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, dict(GENERATOR_STATS._error_cache)


def test_schema_describes_the_order_contract():
    components = fetch_schema()["components"]["schemas"]
    detail = components["OrderDetailOutput"]["properties"]
    assert ORDER_FIELDS | {"events"} <= set(detail)
    assert ORDER_FIELDS <= set(components["OrderListOutput"]["properties"])
    assert detail["paid_amount"]["type"] == "string" and detail["paid_amount"]["format"] == "decimal"
    assert detail["placed_at"]["format"] == "date-time"
    assert [name for name, prop in detail.items() if not prop.get("readOnly")] == []  # output only
    assert set(components["StockLevelOutput"]["properties"]) >= {
        "warehouse", "warehouse_name", "sku", "sku_name", "on_hand", "reserved", "available", "inbound", "inbound_eta",
    }


def test_schema_lists_the_order_filters_and_transition_names():
    paths = fetch_schema()["paths"]
    params = {p["name"] for p in paths["/api/v1/orders/"]["get"]["parameters"]}
    assert {"status", "shop", "phone", "platform_order_id", "created_after", "created_before", "page"} <= params
    stock_params = {p["name"] for p in paths["/api/v1/stock/"]["get"]["parameters"]}
    assert {"sku", "warehouse"} <= stock_params
    transition = paths["/api/v1/orders/{number}/transitions/{name}/"]["post"]
    name = next(p for p in transition["parameters"] if p["name"] == "name")
    assert set(name["schema"]["enum"]) == {"pay", "allocate", "hold", "release", "pack", "ship", "deliver", "complete",
                                           "cancel", "mark_returned", "confirm_stock"}
    assert {"200", "400", "403", "404", "409"} <= set(transition["responses"])


def test_docs_page_is_served_without_any_cdn():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/" in html
    external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+""", html)
    assert external == []
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "googleapis"):
        assert cdn not in html
