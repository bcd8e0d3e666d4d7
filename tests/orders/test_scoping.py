"""Object-level scoping: a staff member limited to some shops and/or warehouses sees only
their orders, customers, timeline, pools, reservations and ledger rows, in the admin and the
API; anything outside answers 404 and cannot be acted on.

The world: shops A and B; warehouse W1 holds SKU-1 only, W2 holds SKU-2 only, so an
order of SKU-1 is allocated to W1 and one of SKU-2 to W2.
Expectations are written from the rule (README / orders.selectors): a shop-scoped person
sees their shops' orders; a warehouse-scoped person sees orders reserved in their
warehouses plus orders still waiting for a warehouse (paid / on hold, no reservation).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from config.actors import Actor, Source
from config.errors import NotFound
from inventory.models import Reservation, StockLevel, StockMove
from orders import services
from orders.models import Customer, Order, OrderEvent, OrderStatus as S, StaffProfile
from tests.factories import SYSTEM, ShopFactory, SkuFactory, UserFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db

ORDER_CHANGELIST = "admin:orders_order_changelist"


@pytest.fixture
def world():
    shop_a, shop_b = ShopFactory(code="brand-a"), ShopFactory(code="brand-b")
    w1, w2 = WarehouseFactory(code="w1", priority=1), WarehouseFactory(code="w2", priority=2)
    sku1, sku2 = SkuFactory(code="SKU-1"), SkuFactory(code="SKU-2")
    stock(w1, sku1, 10)
    stock(w2, sku2, 10)
    # a_w1: shop A, allocated to W1 · a_w2: shop A, allocated to W2
    # b_w1: shop B, allocated to W1 · b_paid: shop B, paid, waiting for a warehouse
    orders = {
        "a_w1": make_order(shop=shop_a, lines=[(sku1, 1)], phone="13800000001"),
        "a_w2": make_order(shop=shop_a, lines=[(sku2, 1)], phone="13800000002"),
        "b_w1": make_order(shop=shop_b, lines=[(sku1, 1)], phone="13800000003"),
        "b_paid": make_order(shop=shop_b, lines=[(sku2, 1)], phone="13800000004"),
    }
    for key in ("a_w1", "a_w2", "b_w1"):
        orders[key] = services.order_allocate(order=orders[key], actor=SYSTEM)
        assert orders[key].status == S.ALLOCATED
    assert orders["b_paid"].status == S.PAID
    return {"shop_a": shop_a, "shop_b": shop_b, "w1": w1, "w2": w2, "sku1": sku1, "sku2": sku2, **orders}


@pytest.fixture
def brand_a(world):
    """A supervisor of brand A's team: every permission, but only shop A."""
    return scoped(staff("supervisor", "brand-a-lead"), shops=[world["shop_a"]])


@pytest.fixture
def w1_keeper(world):
    """A warehouse clerk of W1 only."""
    return scoped(staff("warehouse", "w1-keeper"), warehouses=[world["w1"]])


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_numbers(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {o["number"] for o in response.json()["results"]}


def numbers(world, *keys) -> set[str]:
    return {world[k].number for k in keys}


def pools() -> dict[int, tuple[int, int]]:
    return {p.pk: (p.on_hand, p.reserved) for p in StockLevel.objects.all()}


# --- the rule, through the API list --------------------------------------------------------------
def test_shop_scoped_user_lists_only_their_shops_orders(world, brand_a):
    assert api_numbers(api(brand_a).get("/api/v1/orders/")) == numbers(world, "a_w1", "a_w2")


def test_warehouse_scoped_user_lists_orders_reserved_there_and_orders_awaiting_a_warehouse(world, w1_keeper):
    assert api_numbers(api(w1_keeper).get("/api/v1/orders/")) == numbers(world, "a_w1", "b_w1", "b_paid")


def test_shop_and_warehouse_limits_apply_together(world):
    user = scoped(staff("warehouse", "a-in-w1"), shops=[world["shop_a"]], warehouses=[world["w1"]])
    assert api_numbers(api(user).get("/api/v1/orders/")) == numbers(world, "a_w1")


def test_user_without_profile_or_with_empty_profile_is_not_limited(world):
    plain = staff("finance", "plain")
    empty = scoped(staff("customer_service", "empty-profile"))
    every = numbers(world, "a_w1", "a_w2", "b_w1", "b_paid")
    assert api_numbers(api(plain).get("/api/v1/orders/")) == every
    assert api_numbers(api(empty).get("/api/v1/orders/")) == every


def test_superuser_is_never_limited_even_with_a_profile(world):
    root = scoped(UserFactory(username="root", is_superuser=True), shops=[world["shop_a"]])
    assert api_numbers(api(root).get("/api/v1/orders/")) == numbers(world, "a_w1", "a_w2", "b_w1", "b_paid")


def test_shop_filter_cannot_widen_the_scope(world, brand_a):
    assert api_numbers(api(brand_a).get("/api/v1/orders/", {"shop": "brand-b"})) == set()


def test_stock_api_lists_only_the_users_warehouses(world, w1_keeper):
    response = api(w1_keeper).get("/api/v1/stock/")
    assert response.status_code == 200
    assert {(r["warehouse"], r["sku"]) for r in response.json()["results"]} == {("w1", "SKU-1")}


def test_order_leaves_a_warehouse_users_view_once_allocated_elsewhere(world, w1_keeper):
    waiting = world["b_paid"]  # SKU-2 only lives in W2
    assert waiting.number in api_numbers(api(w1_keeper).get("/api/v1/orders/"))
    services.order_allocate(order=waiting, actor=SYSTEM)
    assert waiting.number not in api_numbers(api(w1_keeper).get("/api/v1/orders/"))


# --- by URL: detail pages -----------------------------------------------------------------------
def test_api_detail_out_of_scope_is_404_in_scope_is_200(world, brand_a):
    client = api(brand_a)
    assert client.get(f"/api/v1/orders/{world['b_w1'].number}/").status_code == 404
    assert client.get(f"/api/v1/orders/{world['a_w1'].number}/").status_code == 200


def test_api_detail_out_of_scope_answers_like_an_unknown_number(world, brand_a):
    client = api(brand_a)
    hidden = client.get(f"/api/v1/orders/{world['b_w1'].number}/")
    unknown = client.get("/api/v1/orders/OH000000NOPE/")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()


@pytest.mark.parametrize("who", ["brand_a", "w1_keeper"])
def test_admin_order_change_page_out_of_scope_is_404(request, world, who):
    user = request.getfixturevalue(who)
    hidden = world["b_w1"] if who == "brand_a" else world["a_w2"]
    visible = world["a_w1"]
    client = admin_client(user)
    assert client.get(reverse("admin:orders_order_change", args=[hidden.pk])).status_code == 404
    assert client.get(reverse("admin:orders_order_change", args=[visible.pk])).status_code == 200


def test_admin_customer_and_timeline_pages_follow_the_orders_scope(world, brand_a):
    client = admin_client(brand_a)
    hidden_customer = world["b_w1"].customer_id
    visible_customer = world["a_w1"].customer_id
    assert client.get(reverse("admin:orders_customer_change", args=[hidden_customer])).status_code == 404
    assert client.get(reverse("admin:orders_customer_change", args=[visible_customer])).status_code == 200
    hidden_event = OrderEvent.objects.filter(order=world["b_w1"]).first()
    assert client.get(reverse("admin:orders_orderevent_change", args=[hidden_event.pk])).status_code == 404


def test_admin_stock_pages_out_of_scope_are_404(world, w1_keeper):
    client = admin_client(w1_keeper)
    w2_pool = StockLevel.objects.get(warehouse=world["w2"])
    w1_pool = StockLevel.objects.get(warehouse=world["w1"])
    assert client.get(reverse("admin:inventory_stocklevel_change", args=[w2_pool.pk])).status_code == 404
    assert client.get(reverse("admin:inventory_stocklevel_change", args=[w1_pool.pk])).status_code == 200
    w2_reservation = Reservation.objects.get(stock_level=w2_pool)
    assert client.get(reverse("admin:inventory_reservation_change", args=[w2_reservation.pk])).status_code == 404
    w2_move = StockMove.objects.filter(stock_level=w2_pool).first()
    assert client.get(reverse("admin:inventory_stockmove_change", args=[w2_move.pk])).status_code == 404
    assert client.get(reverse("admin:inventory_warehouse_change", args=[world["w2"].pk])).status_code == 404


# --- by list: admin changelists -----------------------------------------------------------------
def changelist(client, name: str, **params) -> list:
    response = client.get(reverse(f"admin:{name}_changelist"), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_admin_lists_show_only_the_shops_rows(world, brand_a):
    client = admin_client(brand_a)
    assert {o.number for o in changelist(client, "orders_order")} == numbers(world, "a_w1", "a_w2")
    assert {c.pk for c in changelist(client, "orders_customer")} == {world["a_w1"].customer_id, world["a_w2"].customer_id}
    assert {e.order_id for e in changelist(client, "orders_orderevent")} == {world["a_w1"].pk, world["a_w2"].pk}
    assert {s.code for s in changelist(client, "orders_shop")} == {"brand-a"}
    assert {r.order_line.order_id for r in changelist(client, "inventory_reservation")} == {world["a_w1"].pk, world["a_w2"].pk}
    # Receipts belong to no shop and stay visible; order moves follow the order's shop.
    moves = changelist(client, "inventory_stockmove")
    assert {m.order_id for m in moves if m.order_id} == {world["a_w1"].pk, world["a_w2"].pk}
    assert {m.kind for m in moves if not m.order_id} == {StockMove.Kind.RECEIPT}


def test_admin_lists_show_only_the_warehouses_rows(world, w1_keeper):
    client = admin_client(w1_keeper)
    assert {o.number for o in changelist(client, "orders_order")} == numbers(world, "a_w1", "b_w1", "b_paid")
    assert {(p.warehouse.code, p.sku.code) for p in changelist(client, "inventory_stocklevel")} == {("w1", "SKU-1")}
    assert {r.stock_level.warehouse.code for r in changelist(client, "inventory_reservation")} == {"w1"}
    assert {m.stock_level.warehouse.code for m in changelist(client, "inventory_stockmove")} == {"w1"}
    assert {w.code for w in changelist(client, "inventory_warehouse")} == {"w1"}


def test_admin_search_cannot_reach_out_of_scope_orders(world, brand_a):
    client = admin_client(brand_a)
    assert changelist(client, "orders_order", q=world["b_w1"].number) == []
    assert changelist(client, "orders_order", q=world["b_w1"].platform_order_id) == []


def test_admin_warehouse_filter_offers_only_the_users_warehouses(world, w1_keeper):
    response = admin_client(w1_keeper).get(reverse(ORDER_CHANGELIST))
    choices = next(f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", None) == "warehouse").lookup_choices
    assert [pk for pk, _name in choices] == [str(world["w1"].pk)]


# --- by API action --------------------------------------------------------------------------------
def test_api_transition_on_out_of_scope_order_is_404_and_changes_nothing(world, brand_a):
    before = pools()
    order = world["b_w1"]
    response = api(brand_a).post(f"/api/v1/orders/{order.number}/transitions/cancel/", {}, format="json")
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == S.ALLOCATED
    assert pools() == before
    assert not OrderEvent.objects.filter(order=order, kind="cancelled").exists()


def test_api_transition_in_scope_works(world, brand_a):
    order = world["a_w1"]
    response = api(brand_a).post(f"/api/v1/orders/{order.number}/transitions/cancel/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == S.CANCELLED
    assert StockLevel.objects.get(warehouse=world["w1"]).reserved == 1  # b_w1's reservation only


def test_api_allocate_that_moves_the_order_out_of_scope_still_answers_200(world, w1_keeper):
    order = world["b_paid"]  # SKU-2 is only in W2: after allocation w1_keeper no longer sees it
    response = api(w1_keeper).post(f"/api/v1/orders/{order.number}/transitions/allocate/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == S.ALLOCATED
    assert api(w1_keeper).get(f"/api/v1/orders/{order.number}/").status_code == 404


def test_ship_from_a_warehouse_outside_the_scope_is_refused(world):
    # A split order across W1 and W2, handled by a W1-only supervisor.
    shop = world["shop_a"]
    order = make_order(shop=shop, lines=[(world["sku1"], 1), (world["sku2"], 1)])
    order = services.order_allocate(order=order, actor=SYSTEM)
    order = services.order_pack(order=order, actor=SYSTEM)
    user = scoped(staff("supervisor", "w1-lead"), warehouses=[world["w1"]])
    before = pools()
    response = api(user).post(f"/api/v1/orders/{order.number}/transitions/ship/",
                              {"warehouse": "w2", "carrier": "SF", "tracking_number": "SF1"}, format="json")
    assert response.status_code == 400
    assert pools() == before
    order.refresh_from_db()
    assert order.status == S.PACKED


def test_service_refuses_an_out_of_scope_order_as_not_found(world, brand_a):
    actor = Actor.of(brand_a, Source.API)
    with pytest.raises(NotFound):
        services.order_transition(order=world["b_w1"], name="hold", actor=actor, params={"reason": "manual"})
    world["b_w1"].refresh_from_db()
    assert world["b_w1"].status == S.ALLOCATED


# --- by admin custom view and admin action --------------------------------------------------------
def test_admin_transition_view_on_out_of_scope_order_is_404_and_changes_nothing(world, brand_a):
    before = pools()
    order = world["b_w1"]
    response = admin_client(brand_a).post(reverse("admin:orders_order_transition", args=[order.pk, "cancel"]))
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == S.ALLOCATED
    assert pools() == before


def test_admin_bulk_cancel_on_a_mixed_selection_touches_only_in_scope_orders(world, brand_a):
    mine, theirs = world["a_w1"], world["b_w1"]
    response = admin_client(brand_a).post(reverse(ORDER_CHANGELIST), {
        "action": "cancel_selected", "_selected_action": [mine.pk, theirs.pk], "apply": "1", "reason": "买家要求",
    })
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == S.CANCELLED
    assert theirs.status == S.ALLOCATED
    assert Reservation.objects.get(order_line__order=theirs).status == Reservation.Status.ACTIVE
    assert StockLevel.objects.get(warehouse=world["w1"]).reserved == 1


def test_admin_stock_operation_refuses_a_warehouse_outside_the_scope(world, w1_keeper):
    before = pools()
    moves = StockMove.objects.count()
    response = admin_client(w1_keeper).post(reverse("admin:inventory_stocklevel_operation"), {
        "operation": "receive", "warehouse": world["w2"].pk, "sku": world["sku2"].pk, "quantity": 5, "reason": "x",
    })
    assert response.status_code == 200  # the form again, with the error
    assert "warehouse" in response.context["form"].errors
    assert pools() == before
    assert StockMove.objects.count() == moves


def test_admin_stock_operation_in_scope_works(world, w1_keeper):
    response = admin_client(w1_keeper).post(reverse("admin:inventory_stocklevel_operation"), {
        "operation": "receive", "warehouse": world["w1"].pk, "sku": world["sku1"].pk, "quantity": 5, "reason": "x",
    })
    assert response.status_code == 302
    assert StockLevel.objects.get(warehouse=world["w1"], sku=world["sku1"]).on_hand == 15


# --- the profile itself --------------------------------------------------------------------------
def test_superuser_sets_a_users_scope_on_the_user_page(world):
    root = UserFactory(username="root", is_superuser=True)
    clerk = staff("warehouse", "clerk")
    client = admin_client(root)
    url = reverse("admin:auth_user_change", args=[clerk.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        "username": clerk.username, "is_active": "on", "is_staff": "on",
        "groups": [g.pk for g in clerk.groups.all()],
        "date_joined_0": form.initial["date_joined"].strftime("%Y-%m-%d"),
        "date_joined_1": form.initial["date_joined"].strftime("%H:%M:%S"),
        "staff_profile-TOTAL_FORMS": "1", "staff_profile-INITIAL_FORMS": "0",
        "staff_profile-MIN_NUM_FORMS": "0", "staff_profile-MAX_NUM_FORMS": "1",
        "staff_profile-0-shops": [world["shop_b"].pk],
        "staff_profile-0-warehouses": [world["w1"].pk],
        "staff_profile-0-user": clerk.pk,
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    profile = StaffProfile.objects.get(user=clerk)
    assert set(profile.shops.all()) == {world["shop_b"]}
    assert set(profile.warehouses.all()) == {world["w1"]}
    clerk.refresh_from_db()
    assert api_numbers(api(clerk).get("/api/v1/orders/")) == numbers(world, "b_w1", "b_paid")


def test_customer_outside_the_scope_is_not_listed_even_when_searched(world, brand_a):
    client = admin_client(brand_a)
    hidden = Customer.objects.get(pk=world["b_w1"].customer_id)
    assert changelist(client, "orders_customer", q=world["b_w1"].number) == []
    assert hidden.pk not in {c.pk for c in changelist(client, "orders_customer")}
    assert Order.objects.filter(customer=hidden).exists()


def test_note_on_an_out_of_scope_order_is_refused_as_not_found(world, brand_a):
    order = world["b_w1"]
    with pytest.raises(NotFound):
        services.order_add_note(order=order, actor=Actor.of(brand_a, Source.ADMIN), note="看不见的单")
    order.refresh_from_db()
    assert "看不见的单" not in order.seller_note
