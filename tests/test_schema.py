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
                                           "cancel", "mark_returned", "confirm_stock", "override_release",
                                           "override_ship"}
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


# --- every response an operation can give is documented (config.api.AutoSchema) ----------------
# Written by hand from the API's behaviour (DESIGN.md "API"): 400 bad input or filters, 401 not
# signed in, 403 lacking the permission, 404 unknown object / unknown transition / page out of
# range, 409 a state that forbids the transition.
EXPECTED_RESPONSES = {
    ("post", "/api/v1/auth/token/"): {"200", "400"},
    ("get", "/api/v1/orders/"): {"200", "400", "401", "403", "404"},
    ("get", "/api/v1/orders/{number}/"): {"200", "401", "403", "404"},
    ("post", "/api/v1/orders/{number}/transitions/{name}/"): {"200", "400", "401", "403", "404", "409"},
    ("get", "/api/v1/stock/"): {"200", "400", "401", "403", "404"},
}


def test_each_operation_documents_the_errors_it_can_give():
    paths = fetch_schema()["paths"]
    documented = {(method, path): set(op["responses"]) for path, item in paths.items() for method, op in item.items()}
    for key, codes in EXPECTED_RESPONSES.items():
        assert codes <= documented[key], key
    for (method, path), codes in documented.items():
        for code in codes - {"200", "201", "204"}:
            content = paths[path][method]["responses"][code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorOutput"}, (method, path, code)


def _operation_for(view, method: str = "get") -> dict:
    from django.urls import path as url

    generator = SchemaGenerator(patterns=[url("probe/<str:key>/", view.as_view())])
    return generator.get_schema(request=None, public=True)["paths"]["/probe/{key}/"][method]


def test_the_default_schema_class_derives_error_responses_from_the_view():
    from rest_framework.authentication import SessionAuthentication, TokenAuthentication
    from rest_framework.permissions import AllowAny, IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.throttling import AnonRateThrottle
    from rest_framework.views import APIView

    from config.api import holds_permission

    class ProbeThrottle(AnonRateThrottle):
        rate = "5/min"  # its own rate: the project's settings need not define an "anon" scope

    class Open(APIView):
        permission_classes = [AllowAny]
        authentication_classes: list = []
        throttle_classes = [ProbeThrottle]

        def get(self, request, key):
            return Response({})

    class SignedIn(APIView):
        permission_classes = [IsAuthenticated]
        authentication_classes = [TokenAuthentication]
        throttle_classes: list = []

        def get(self, request, key):
            return Response({})

    class Guarded(SignedIn):
        permission_classes = [IsAuthenticated, holds_permission("orders.view_order", "no")]
        error_responses = {409: "冲突"}

    class SessionOnly(SignedIn):
        authentication_classes = [SessionAuthentication]

        def post(self, request, key):
            return Response({})

    assert set(_operation_for(Open)["responses"]) == {"200", "404", "429"}
    assert set(_operation_for(SignedIn)["responses"]) == {"200", "401", "404"}
    guarded = _operation_for(Guarded)["responses"]
    assert set(guarded) == {"200", "401", "403", "404", "409"}
    assert guarded["409"]["description"] == "冲突"
    # No challenge (session only): not signed in is a 403; a session write can fail CSRF (403).
    assert set(_operation_for(SessionOnly)["responses"]) == {"200", "403", "404"}
    assert set(_operation_for(SessionOnly, "post")["responses"]) == {"200", "403", "404"}


def test_timeline_events_document_blank_statuses_and_the_public_text():
    schemas = fetch_schema()["components"]["schemas"]
    event = schemas["OrderEventOutput"]
    for name in ("from_status", "to_status"):  # "" for events that change no status (created, confirm_stock)
        refs = {alt["$ref"].rsplit("/", 1)[-1] for alt in event["properties"][name]["oneOf"]}
        assert refs == {"OrderStatusEnum", "BlankEnum"}
    assert schemas["BlankEnum"]["enum"] == [""]
    assert event["properties"]["public_text"]["type"] == "string"
    assert {"message", "public_text"} <= set(event["required"])


def test_the_transition_endpoint_is_described_from_the_actions_table():
    from orders.transitions import ACTIONS, api_description

    transition = fetch_schema()["paths"]["/api/v1/orders/{number}/transitions/{name}/"]["post"]
    assert transition["description"] == api_description()
    body = transition["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = fetch_schema()["components"]["schemas"][body]["properties"]
    assert set(properties) == {"reason", "note", "warehouse", "carrier", "tracking_number"}
    assert "manual, address, risk" in properties["reason"]["description"]  # what a person may choose
    assert "stock_short" not in properties["reason"]["description"]  # set by the system only
    assert properties["carrier"]["maxLength"] == 20
    assert {"ship", "override_ship"} == {a.name for a in ACTIONS.values()
                                         if any(p.name == "tracking_number" for p in a.params)}
