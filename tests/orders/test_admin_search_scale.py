"""The order admin at a real seller's size: each kind of search term finds exactly the right
orders through an exact or prefix match on an index, the changelist never counts the
whole table, facets are off, and (on PostgreSQL) every lookup and list runs on an index.

Roles, from the product description: customer service (客服) sees personal data and may
search by phone; warehouse (仓管), finance (财务) and operations (运营) see it masked and
may not.
"""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.admin import ShowFacets
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from config.actors import Actor, Source
from config.admin_tools import EstimatedCountPaginator
from orders import selectors
from orders.admin import OrderAdmin, order_search
from inventory.models import Sku
from orders.models import Customer, Order, OrderLine
from orders.platforms.base import NormalizedLine, NormalizedOrder
from orders.services import order_create
from tests.factories import SYSTEM, ShopFactory, SkuFactory, make_order, scoped, staff

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:orders_order_changelist")
MASKED_ROLES = ["warehouse", "finance", "operations"]


def gift_order(*, receiver_phone: str, buyer_phone: str, shop=None, lines=()):
    """An order whose receiver is not the buyer (the receiver has no customer row)."""
    return order_create(shop=shop or ShopFactory(), actor=SYSTEM, data=NormalizedOrder(
        platform_order_id=f"GIFT-{receiver_phone}-{buyer_phone}", receiver_name="李四", receiver_phone=receiver_phone,
        buyer_name="王五", buyer_phone=buyer_phone, province="江苏省", city="苏州市", address="人民路 1 号",
        lines=[NormalizedLine(title=sku.name, quantity=1, unit_price=Decimal("10.00"), sku_code=sku.code) for sku in lines],
    ))


@pytest.fixture
def orders():
    sku_a, sku_b = SkuFactory(code="SKU-A"), SkuFactory(code="SKU-B")
    shop = ShopFactory(code="scale-shop")
    return {
        # Platforms send phones in their own spelling; each is found by any spelling.
        "spaced": make_order(shop=shop, phone="138 0013 8000", lines=[(sku_a, 1)], platform_order_id="4001234567"),
        "plain": make_order(shop=shop, phone="13800138000", lines=[(sku_b, 1)]),
        "other": make_order(shop=shop, phone="13900139000", lines=[(sku_b, 2)], platform_order_id="13700137000"),
        # Received by 13600136000, bought by 13800138000 (the customer of the first two).
        "gift": gift_order(shop=shop, receiver_phone="+86 136-0013-6000", buyer_phone="13800138000", lines=[sku_a, sku_a]),
    }


def admin_client(role: str) -> Client:
    client = Client()
    client.force_login(staff(role))
    return client


def found(client: Client, term: str) -> set[int]:
    response = client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert len(rows) == len({o.pk for o in rows}), "an order listed twice"
    return {o.pk for o in rows}


def pks(*orders) -> set[int]:
    return {o.pk for o in orders}


# --- the column the phone search uses ------------------------------------------------------
def test_order_create_stores_the_receiver_phone_normalized(orders):
    assert {k: o.receiver_phone_normalized for k, o in orders.items()} == {
        "spaced": "+8613800138000", "plain": "+8613800138000", "other": "+8613900139000", "gift": "+8613600136000"}
    assert orders["spaced"].receiver_phone == "138 0013 8000"  # as the platform sent it


def test_a_masked_or_invalid_receiver_phone_is_stored_empty():
    assert make_order(phone="138****8000").receiver_phone_normalized == ""
    assert make_order(phone="12345").receiver_phone_normalized == ""


def test_migration_fills_the_normalized_phone_of_existing_orders(orders):
    Order.objects.update(receiver_phone_normalized="")
    migration = importlib.import_module("orders.migrations.0006_order_search_indexes")
    migration.fill_normalized_phones(apps, None)
    stored = dict(Order.objects.values_list("pk", "receiver_phone_normalized"))
    assert stored == {o.pk: o.receiver_phone_normalized for o in orders.values()}


# --- each kind of term --------------------------------------------------------------------
@pytest.mark.parametrize("term", ["13800138000", "138 0013 8000", "+86 138-0013-8000", "+8613800138000", "138-0013-8000"])
def test_phone_in_any_spelling_finds_receiver_and_customer_orders(orders, term):
    # Receiver 138… (two spellings stored) and the gift order whose buyer is 138….
    assert found(admin_client("customer_service"), term) == pks(orders["spaced"], orders["plain"], orders["gift"])


def test_receiver_only_phone_finds_the_gift_order(orders):
    assert found(admin_client("customer_service"), "136 0013 6000") == pks(orders["gift"])


def test_part_of_a_phone_finds_nothing(orders):
    client = admin_client("customer_service")
    for term in ("0013", "1380013", "38001380"):
        assert found(client, term) == set(), term


def test_order_number_whole_and_by_prefix(orders):
    client = admin_client("customer_service")
    target = orders["other"]
    assert found(client, target.number) == pks(target)
    assert found(client, target.number.lower()) == pks(target)
    everything = list(Order.objects.all())
    for length in (2, 8, 12, len(target.number) - 1):
        prefix = target.number[:length]
        assert found(client, prefix) == {o.pk for o in everything if o.number.startswith(prefix)}, prefix
    assert found(client, target.number[2:]) == set()  # the middle of a number is not a prefix


def test_platform_order_id_exact_only(orders):
    client = admin_client("customer_service")
    assert found(client, "4001234567") == pks(orders["spaced"])
    assert found(client, "400123456") == set()
    assert found(client, "001234567") == set()


def test_a_platform_id_that_is_also_a_phone_finds_both(orders):
    # 13700137000 is the platform id of "other" and a valid phone nobody has.
    assert found(admin_client("customer_service"), "13700137000") == pks(orders["other"])


def test_sku_code_finds_orders_with_a_line_of_it_once_each(orders):
    client = admin_client("customer_service")
    assert found(client, "SKU-A") == pks(orders["spaced"], orders["gift"])  # gift has two SKU-A lines
    assert found(client, "SKU-B") == pks(orders["plain"], orders["other"])
    assert found(client, "SKU") == set()
    assert found(client, "sku-a") == set()  # SKU codes are exact


def test_unknown_term_finds_nothing(orders):
    assert found(admin_client("customer_service"), "no-such-thing") == set()


def test_search_stays_inside_the_viewers_scope(orders):
    elsewhere = make_order(shop=ShopFactory(code="other-shop"), phone="13800138000")
    user = scoped(staff("customer_service"), shops=[orders["plain"].shop])
    client = Client()
    client.force_login(user)
    assert found(client, "13800138000") == pks(orders["spaced"], orders["plain"], orders["gift"])
    assert found(client, elsewhere.number) == set()
    assert found(admin_client("supervisor"), "13800138000") == pks(orders["spaced"], orders["plain"], orders["gift"], elsewhere)


# --- masked roles -------------------------------------------------------------------------
@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_roles_get_no_phone_matches(role, orders):
    client = admin_client(role)
    for term in ("13800138000", "138 0013 8000", "+86 136-0013-6000", "+8613900139000"):
        assert found(client, term) == set(), term


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_roles_still_find_numbers_platform_ids_and_skus(role, orders):
    client = admin_client(role)
    assert found(client, orders["plain"].number) == pks(orders["plain"])
    assert found(client, "4001234567") == pks(orders["spaced"])
    assert found(client, "SKU-A") == pks(orders["spaced"], orders["gift"])
    # A platform id that looks like a phone is still a platform id.
    assert found(client, "13700137000") == pks(orders["other"])


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_roles_cannot_filter_by_the_normalized_phone(role, orders):
    response = admin_client(role).get(CHANGELIST, {"receiver_phone_normalized": "+8613800138000"})
    assert response.status_code == 400


def test_masked_actor_search_helper_never_matches_phones(orders):
    queryset = Order.objects.all()
    assert set(order_search(queryset, "13800138000", may_see_pii=False).values_list("pk", flat=True)) == set()
    assert set(order_search(queryset, "13800138000", may_see_pii=True).values_list("pk", flat=True)) == pks(
        orders["spaced"], orders["plain"], orders["gift"])


# --- the API's ?phone= ---------------------------------------------------------------------
@pytest.mark.parametrize("term", ["13800138000", "+86 138-0013-8000"])
def test_api_phone_filter_finds_receiver_and_customer_orders(orders, term):
    client = APIClient()
    client.force_authenticate(staff("customer_service"))
    response = client.get("/api/v1/orders/", {"phone": term})
    assert response.status_code == 200
    numbers = {o["number"] for o in response.json()["results"]}
    assert numbers == {orders[k].number for k in ("spaced", "plain", "gift")}


def test_api_phone_filter_with_an_invalid_phone_finds_nothing(orders):
    client = APIClient()
    client.force_authenticate(staff("customer_service"))
    response = client.get("/api/v1/orders/", {"phone": "0013"})
    assert response.status_code == 200
    assert response.json()["count"] == 0


# --- the changelist's counts and facets -----------------------------------------------------
def _order_counts(queries) -> list[str]:
    return [q["sql"] for q in queries if re.search(r"COUNT\(", q["sql"], re.I) and "orders_order" in q["sql"]]


@pytest.mark.parametrize("params", [{}, {"status__exact": "paid"}, {"q": "13800138000"}, {"p": "1"}])
def test_changelist_never_counts_the_whole_table(orders, params, django_assert_max_num_queries):
    client = admin_client("customer_service")
    client.get(CHANGELIST, params)  # warm the session
    with django_assert_max_num_queries(20):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    counts = _order_counts(queries.captured_queries)
    assert counts, "the list says how many rows it has"
    for sql in counts:
        assert re.search(r"LIMIT\s+10001", sql), f"an unbounded count: {sql}"
    assert response.context["cl"].full_result_count is None


def test_changelist_count_is_exact_for_a_small_list(orders):
    response = admin_client("customer_service").get(CHANGELIST, {"q": "SKU-B"})
    cl = response.context["cl"]
    assert cl.result_count == 2 and not cl.paginator.estimated


def test_facets_are_off_even_when_asked_for(orders):
    assert OrderAdmin.show_facets is ShowFacets.NEVER
    client = admin_client("customer_service")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST, {"_facets": "1"})
    assert response.status_code == 200
    assert response.context["cl"].add_facets is False
    # Facets would add one COUNT per filter choice; only the list's own bounded count runs.
    assert len(_order_counts(queries.captured_queries)) == 1


def test_changelist_has_no_date_hierarchy_scan(orders):
    response = admin_client("customer_service").get(CHANGELIST)
    assert response.context["cl"].date_hierarchy is None


# --- PostgreSQL: the planner's estimate and the indexes -------------------------------------
@pytest.mark.postgres
def test_large_list_count_is_the_planner_estimate(orders, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 2)
    monkeypatch.setattr(OrderAdmin, "list_per_page", 2)
    client = admin_client("customer_service")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    cl = response.context["cl"]
    assert cl.paginator.estimated
    assert cl.result_count > 2  # what the planner guesses, not a count
    assert _order_counts(queries.captured_queries) == []  # no COUNT at all
    newest_first = list(Order.objects.order_by("-placed_at", "-id").values_list("pk", flat=True))
    assert [o.pk for o in cl.result_list] == newest_first[:2]


@pytest.mark.postgres
def test_a_short_last_page_makes_an_estimated_count_exact(orders, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 2)
    monkeypatch.setattr(OrderAdmin, "list_per_page", 3)
    cl = admin_client("customer_service").get(CHANGELIST, {"p": "2"}).context["cl"]
    assert [o.pk for o in cl.result_list] == list(Order.objects.order_by("-placed_at", "-id").values_list("pk", flat=True))[3:]
    assert (cl.result_count, cl.paginator.estimated, cl.paginator.num_pages) == (4, False, 2)


def _bulk_orders(n: int):
    """n orders, their lines and customers in bulk (test data for the planner, not the app's path)."""
    shops = [ShopFactory(code=f"bulk-{i}") for i in range(4)]
    # A 2,000-SKU catalogue: a SKU is on 0.15 % of the orders, as at a real seller's size.
    skus = Sku.objects.bulk_create([Sku(code=f"BULK-{i:04d}", name=f"商品 {i}") for i in range(2000)])
    customers = Customer.objects.bulk_create([Customer(phone=f"+86139{i:08d}", name=f"客户{i}") for i in range(n // 2)])
    now = timezone.now()
    statuses = ["paid", "allocated", "shipped", "completed", "completed", "completed", "delivered", "cancelled"]
    orders = Order.objects.bulk_create([
        Order(number=f"OH2612{i // 500:02d}{i:08d}", shop=shops[i % 4], platform_order_id=f"P{i:09d}",
              customer=customers[i % len(customers)], status=statuses[i % len(statuses)],
              receiver_phone=f"139 {i:04d} 0000", receiver_phone_normalized=f"+86139{i:04d}0000",
              placed_at=now - timedelta(minutes=n - i))
        for i in range(n)
    ], batch_size=1000)
    OrderLine.objects.bulk_create([OrderLine(order=o, sku=skus[(o.pk * 7 + k * 131) % 2000], title="x", quantity=1)
                                   for o in orders for k in range(3)], batch_size=3000)
    rare = SkuFactory(code="BULK-RARE")
    OrderLine.objects.bulk_create([OrderLine(order=orders[i], sku=rare, title="x", quantity=1) for i in range(3, n, n // 6)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order; ANALYZE orders_orderline; ANALYZE orders_customer; ANALYZE inventory_sku")
    return orders


@pytest.mark.postgres
def test_every_lookup_and_list_runs_on_an_index():
    orders = _bulk_orders(4000)
    sample = orders[1234]
    actor = Actor.of(staff("customer_service"), Source.ADMIN)
    base = selectors.order_list(actor=actor)
    day = sample.placed_at.replace(hour=0, minute=0, second=0, microsecond=0)
    querysets = {
        "phone": order_search(base, "139 1234 0000", may_see_pii=True),
        "customer phone": order_search(base, "+86 139-0000-0007", may_see_pii=True),
        "number": order_search(base, sample.number, may_see_pii=True),
        "number prefix": order_search(base, sample.number[:14], may_see_pii=True),
        "platform id": order_search(base, sample.platform_order_id, may_see_pii=True),
        "sku": order_search(base, "BULK-RARE", may_see_pii=True),
        "api phone": selectors.order_list(actor=actor, phone="13912340000"),
        "api platform id": selectors.order_list(actor=actor, platform_order_id=sample.platform_order_id),
        "list": base,
        "by status": base.filter(status="paid"),
        "by shop": base.filter(shop_id=sample.shop_id),
        "by day": base.filter(placed_at__gte=day, placed_at__lt=day + timedelta(days=1)),
    }
    for name, queryset in querysets.items():
        plan = queryset[:50].explain()
        assert "Seq Scan on orders_order" not in plan, f"{name}:\n{plan}"
        count_plan = queryset.order_by()[:10001].explain()
        if name not in {"list", "by status", "by shop", "by day"}:
            assert "Seq Scan on orders_order" not in count_plan, f"{name} (count):\n{count_plan}"
    # And they find the right rows.
    assert list(querysets["phone"].values_list("pk", flat=True)) == [orders[1234].pk]
    assert list(querysets["api phone"].values_list("pk", flat=True)) == [orders[1234].pk]
    assert set(querysets["sku"].values_list("pk", flat=True)) == set(
        OrderLine.objects.filter(sku__code="BULK-RARE").values_list("order_id", flat=True))
    assert querysets["sku"].count() == 7  # orders 3, 669, …, 3999


def test_list_sorts_only_by_indexed_columns(orders):
    for i, pk in enumerate(Order.objects.order_by("placed_at", "id").values_list("pk", flat=True)):
        Order.objects.filter(pk=pk).update(paid_amount=Decimal(i + 1))  # by amount = oldest first
    client = admin_client("customer_service")
    default = [o.pk for o in client.get(CHANGELIST).context["cl"].result_list]
    assert default == list(Order.objects.order_by("-paid_amount").values_list("pk", flat=True))
    cl = client.get(CHANGELIST).context["cl"]
    amount = list(cl.list_display).index("amount")
    # A hand-made sort by the amount is ignored (it would sort every order)...
    assert [o.pk for o in client.get(CHANGELIST, {"o": str(amount)}).context["cl"].result_list] == default
    # ...while the number sorts.
    number = list(cl.list_display).index("number")
    by_number = client.get(CHANGELIST, {"o": str(number)}).context["cl"].result_list
    assert [o.number for o in by_number] == sorted(o.number for o in Order.objects.all())
