"""Roles that see personal data masked cannot get it back by lookup: no search, filter or sort
by phone, name, address or the raw payload, in the admin or the API — and the refusal never
tells whether a value has orders. Customer service and supervisors (who see personal data)
can.

Masked roles, from the product description: warehouse (仓管), finance (财务), operations
(运营). Unmasked: customer service (客服), supervisor (主管).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from config.actors import Actor, Source
from orders.models import Customer, Order
from orders.selectors import pii_fields_for
from tests.factories import SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

MASKED_ROLES = ["warehouse", "finance", "operations"]
UNMASKED_ROLES = ["customer_service", "supervisor"]
PHONE = "13800138000"
OTHER_PHONE = "13900139000"


@pytest.fixture
def orders():
    sku = SkuFactory(code="SKU-PII")
    stock(WarehouseFactory(code="pii-wh"), sku, 10)
    wanted = make_order(lines=[(sku, 1)], phone=PHONE)
    other = make_order(lines=[(sku, 1)], phone=OTHER_PHONE)
    # Given names and addresses of their own (the factory gives every order the same ones).
    for order, name, address in ((wanted, "王小明", "人民路 1 号"), (other, "李四", "解放路 9 号")):
        Order.objects.filter(pk=order.pk).update(receiver_name=name, address=address,
                                                 raw={"receiver": {"phone": order.receiver_phone, "name": name}})
        Customer.objects.filter(pk=order.customer_id).update(name=name)
    return wanted, other


def admin_client(role: str) -> Client:
    client = Client()
    client.force_login(staff(role))
    return client


def api_client(role: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff(role))
    return client


def listed(response) -> list:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


ORDER_CHANGELIST = reverse("admin:orders_order_changelist")
CUSTOMER_CHANGELIST = reverse("admin:orders_customer_changelist")


# --- admin search ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", MASKED_ROLES)
@pytest.mark.parametrize("term", [PHONE, "+86 138 0013 8000", "38001380", "王小明", "人民路"])
def test_masked_role_order_search_by_personal_data_finds_nothing(role, term, orders):
    assert listed(admin_client(role).get(ORDER_CHANGELIST, {"q": term})) == []


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_order_search_still_finds_order_numbers(role, orders):
    wanted, _other = orders
    client = admin_client(role)
    assert [o.pk for o in listed(client.get(ORDER_CHANGELIST, {"q": wanted.number}))] == [wanted.pk]
    assert [o.pk for o in listed(client.get(ORDER_CHANGELIST, {"q": wanted.platform_order_id}))] == [wanted.pk]


@pytest.mark.parametrize("role", MASKED_ROLES)
@pytest.mark.parametrize("term", [PHONE, "+8613800138000", "王小明"])
def test_masked_role_customer_search_by_personal_data_finds_nothing(role, term, orders):
    assert listed(admin_client(role).get(CUSTOMER_CHANGELIST, {"q": term})) == []


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_customer_autocomplete_by_phone_finds_nothing(role, orders):
    response = admin_client(role).get(reverse("admin:autocomplete"), {
        "app_label": "orders", "model_name": "order", "field_name": "customer", "term": PHONE})
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_unmasked_role_searches_orders_and_customers_by_phone(role, orders):
    wanted, _other = orders
    client = admin_client(role)
    assert [o.pk for o in listed(client.get(ORDER_CHANGELIST, {"q": "+86 138 0013 8000"}))] == [wanted.pk]
    assert [c.pk for c in listed(client.get(CUSTOMER_CHANGELIST, {"q": PHONE}))] == [wanted.customer_id]


# --- admin URL lookups ----------------------------------------------------------------------
ORDER_PII_LOOKUPS = [
    {"receiver_phone": PHONE},
    {"receiver_phone__contains": "0013"},
    {"receiver_phone__startswith": "138"},
    {"receiver_name": "王小明"},
    {"receiver_name__icontains": "小"},
    {"address__contains": "人民"},
    {"customer__phone__startswith": "+86138"},
    {"customer__name": "王小明"},
    {"raw__icontains": "138"},
    {"raw__receiver__phone": PHONE},
    {"lines__order__receiver_phone": PHONE},
]


@pytest.mark.parametrize("role", MASKED_ROLES)
@pytest.mark.parametrize("params", ORDER_PII_LOOKUPS, ids=lambda p: next(iter(p)))
def test_masked_role_order_lookup_by_personal_data_is_refused(role, params, orders):
    wanted, _other = orders
    response = admin_client(role).get(ORDER_CHANGELIST, params)
    assert response.status_code == 400
    assert wanted.number.encode() not in response.content


@pytest.mark.parametrize("role", MASKED_ROLES)
@pytest.mark.parametrize("params", [{"phone__startswith": "+86138"}, {"phone": "+8613800138000"}, {"name": "王小明"},
                                    {"orders__receiver_phone": PHONE}, {"orders__address__contains": "人民"}],
                         ids=lambda p: next(iter(p)))
def test_masked_role_customer_lookup_by_personal_data_is_refused(role, params, orders):
    response = admin_client(role).get(CUSTOMER_CHANGELIST, params)
    assert response.status_code == 400


@pytest.mark.parametrize("role", MASKED_ROLES)
@pytest.mark.parametrize("url,params", [
    ("admin:orders_orderevent_changelist", {"order__receiver_phone": PHONE}),
    ("admin:inventory_reservation_changelist", {"order_line__order__receiver_phone": PHONE}),
    ("admin:inventory_stockmove_changelist", {"order__customer__phone": "+8613800138000"}),
])
def test_masked_role_lookup_through_related_rows_is_refused(role, url, params, orders):
    assert admin_client(role).get(reverse(url), params).status_code == 400


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_refusal_is_the_same_whether_or_not_the_value_has_orders(role, orders):
    client = admin_client(role)
    hit = client.get(ORDER_CHANGELIST, {"receiver_phone": PHONE})
    miss = client.get(ORDER_CHANGELIST, {"receiver_phone": "13700137000"})
    assert hit.status_code == miss.status_code == 400
    assert hit.content == miss.content


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_non_personal_lookups_still_work(role, orders):
    wanted, _other = orders
    response = admin_client(role).get(ORDER_CHANGELIST, {"platform_order_id": wanted.platform_order_id})
    assert [o.pk for o in listed(response)] == [wanted.pk]


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_unmasked_role_filters_by_receiver_phone_and_customer_phone(role, orders):
    wanted, _other = orders
    client = admin_client(role)
    assert [o.pk for o in listed(client.get(ORDER_CHANGELIST, {"receiver_phone__contains": "38001"}))] == [wanted.pk]
    customers = listed(client.get(CUSTOMER_CHANGELIST, {"phone__startswith": "+86138"}))
    assert [c.pk for c in customers] == [wanted.customer_id]


# --- admin sorting --------------------------------------------------------------------------
@pytest.fixture
def customers():
    # Created in this order (default list: newest first) with names and phones in the other order.
    first = Customer.objects.create(name="甲", phone="+8613000000001")
    second = Customer.objects.create(name="乙", phone="+8613000000003")
    third = Customer.objects.create(name="丙", phone="+8613000000002")
    return first, second, third


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_sort_by_name_or_phone_is_ignored(role, customers):
    client = admin_client(role)
    default = [c.pk for c in listed(client.get(CUSTOMER_CHANGELIST))]
    for column in ("1", "-1", "2", "-2"):  # name, phone
        assert [c.pk for c in listed(client.get(CUSTOMER_CHANGELIST, {"o": column}))] == default, column
    page = client.get(CUSTOMER_CHANGELIST).content.decode()
    assert "?o=1" not in page and "?o=2" not in page  # the headers offer no sort


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_unmasked_role_sorts_by_phone(role, customers):
    first, second, third = customers
    response = admin_client(role).get(CUSTOMER_CHANGELIST, {"o": "2"})
    assert [c.pk for c in listed(response)] == [first.pk, third.pk, second.pk]


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_order_list_offers_no_sort_by_receiver(role, orders):
    response = admin_client(role).get(ORDER_CHANGELIST)
    cl = response.context["cl"]
    for name in ("receiver_name_display", "receiver_phone_display"):
        index = list(cl.list_display).index(name)
        assert cl.get_ordering_field(name) is None
        assert f"?o={index}" not in response.content.decode()


# --- API ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", MASKED_ROLES)
@pytest.mark.parametrize("params", [
    {"phone": PHONE}, {"phone": "13700137000"}, {"phone": ""}, {"receiver_phone": PHONE},
    {"name": "王小明"}, {"receiver_name": "王小明"}, {"customer_name": "王小明"}, {"address": "人民路"},
    {"status": "paid", "phone": PHONE},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_masked_role_api_filter_by_personal_data_is_403(role, params, orders):
    response = api_client(role).get("/api/v1/orders/", params)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "filter_not_permitted"
    assert "results" not in body and "count" not in body


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_api_refusal_is_the_same_for_a_hit_and_a_miss(role, orders):
    client = api_client(role)
    assert client.get("/api/v1/orders/", {"phone": PHONE}).json() == client.get("/api/v1/orders/", {"phone": "13700137000"}).json()


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_api_list_without_personal_filters_works(role, orders):
    response = api_client(role).get("/api/v1/orders/", {"status": "paid"})
    assert response.status_code == 200
    assert response.json()["count"] == 2


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_unmasked_role_api_filters_by_phone(role, orders):
    wanted, _other = orders
    response = api_client(role).get("/api/v1/orders/", {"phone": "+86 138 0013 8000"})
    assert response.status_code == 200
    assert [o["number"] for o in response.json()["results"]] == [wanted.number]


def test_schema_documents_the_refusal():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/orders/"]["get"]
    assert "filter_not_permitted" in operation["responses"]["403"]["description"]
    phone = next(p for p in operation["parameters"] if p["name"] == "phone")
    assert "filter_not_permitted" in phone["description"]


# --- exports --------------------------------------------------------------------------------
@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_role_has_personal_fields_to_leave_out_of_exports(role):
    fields = pii_fields_for(Actor.of(staff(role), Source.ADMIN))
    assert {"receiver_name", "receiver_phone", "address", "raw", "customer__phone", "customer__name"} <= fields


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_unmasked_role_has_no_personal_fields_to_leave_out(role):
    assert pii_fields_for(Actor.of(staff(role), Source.ADMIN)) == frozenset()
