"""The inventory admin: pools change only through services; the ledger is read-only; rules are validated."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from inventory.audit import audit
from inventory.models import Reservation, RoutingRule, Sku, SkuMapping, StockLevel, StockMove, Warehouse
from orders import services as order_services
from tests.factories import SYSTEM, RoutingRuleFactory, SkuFactory, SkuMappingFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]
OPERATION = "admin:inventory_stocklevel_operation"


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(staff(role))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def wh():
    return WarehouseFactory(code="suzhou", name="苏州仓")


@pytest.fixture
def sku():
    return SkuFactory(code="PEN-01", name="折叠盆 大号", category="折叠盆", barcode="6901234567890")


@pytest.fixture
def pool(wh, sku):
    return stock(wh, sku, 10)


# --- lists -----------------------------------------------------------------------------------
MODELS = {"warehouse": Warehouse, "sku": Sku, "skumapping": SkuMapping, "stocklevel": StockLevel,
          "reservation": Reservation, "stockmove": StockMove, "routingrule": RoutingRule}


@pytest.mark.parametrize("admin_name", list(MODELS))
@pytest.mark.parametrize("role", ROLES)
def test_inventory_changelists_list_every_row_for_every_role(role, admin_name, pool):
    SkuMappingFactory(sku=pool.sku, platform_sku_id="TB-SKU-1")
    RoutingRuleFactory(warehouse=pool.warehouse, name="江浙沪走苏州")
    order_services.order_allocate(order=make_order(lines=[(pool.sku, 2)]), actor=SYSTEM)  # a reservation, two moves
    model = MODELS[admin_name]
    expected = set(model.objects.values_list("pk", flat=True))
    assert expected  # every list has something to show
    response = client_for(role).get(reverse(f"admin:inventory_{admin_name}_changelist"))
    assert response.status_code == 200
    assert {obj.pk for obj in response.context["cl"].result_list} == expected
    assert response.context["cl"].result_count == len(expected)


def test_stock_list_shows_available(pool):
    order = make_order(lines=[(pool.sku, 3)])
    order_services.order_allocate(order=order, actor=SYSTEM)
    response = client_for("warehouse").get(reverse("admin:inventory_stocklevel_changelist"))
    row = response.context["cl"].result_list[0]
    assert (row.on_hand, row.reserved, row.available) == (10, 3, 7)
    assert "column-available_display" in response.content.decode()


@pytest.mark.parametrize("term", ["PEN-01", "6901234567890", "大号"])
def test_stock_search_by_code_barcode_or_name(term, pool):
    stock(pool.warehouse, SkuFactory(code="CUP-01", name="杯子", category="杯"), 4)
    response = client_for("finance").get(reverse("admin:inventory_stocklevel_changelist"), {"q": term})
    assert [p.sku.code for p in response.context["cl"].result_list] == ["PEN-01"]


def test_stock_filters_by_warehouse_and_sku_category(pool):
    other_wh = WarehouseFactory(code="tianjin", name="天津仓")
    stock(other_wh, SkuFactory(code="CUP-01", category="杯"), 4)
    client = client_for("operations")
    by_wh = client.get(reverse("admin:inventory_stocklevel_changelist"), {"warehouse__id__exact": other_wh.pk})
    assert [p.sku.code for p in by_wh.context["cl"].result_list] == ["CUP-01"]
    by_cat = client.get(reverse("admin:inventory_stocklevel_changelist"), {"sku__category": "折叠盆"})
    assert [p.sku.code for p in by_cat.context["cl"].result_list] == ["PEN-01"]


# --- pools are changed only by services -----------------------------------------------------
def superuser_client() -> Client:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456"))
    return client


def test_stock_change_form_keeps_on_hand_and_reserved_read_only(pool):
    client = superuser_client()
    url = reverse("admin:inventory_stocklevel_change", args=[pool.pk])
    form = client.get(url).context["adminform"].form
    assert set(form.fields) == {"inbound", "inbound_eta"}
    response = client.post(url, {"on_hand": "999", "reserved": "5", "inbound": "20", "inbound_eta": "2030-01-02"})
    assert response.status_code == 302
    pool.refresh_from_db()
    assert (pool.on_hand, pool.reserved, pool.inbound) == (10, 0, 20)
    assert audit() == []


def test_roles_see_stock_levels_view_only(pool):
    client = client_for("supervisor")
    url = reverse("admin:inventory_stocklevel_change", args=[pool.pk])
    assert client.get(url).context["has_change_permission"] is False
    assert client.post(url, {"inbound": "20"}).status_code == 403
    pool.refresh_from_db()
    assert pool.inbound == 0


def test_stock_levels_cannot_be_added_or_deleted_in_admin(pool):
    client = client_for("supervisor")
    assert client.get(reverse("admin:inventory_stocklevel_add")).status_code == 403
    assert client.post(reverse("admin:inventory_stocklevel_delete", args=[pool.pk]), {"post": "yes"}).status_code == 403


def test_receive_through_admin_form_books_a_ledger_row(wh, sku, pool):
    user = staff("warehouse")
    client = Client()
    client.force_login(user)
    response = client.post(reverse(OPERATION), {"operation": "receive", "warehouse": wh.pk, "sku": sku.pk,
                                                "quantity": "5", "reason": "PO-1"}, follow=True)
    pool.refresh_from_db()
    assert pool.on_hand == 15
    move = StockMove.objects.latest("id")
    assert (move.kind, move.on_hand_delta, move.actor, move.source) == ("receipt", 5, user, "admin")
    assert any("入库 5 件" in m for m in messages_of(response))
    assert audit() == []


def test_receive_creates_the_pool_for_a_new_warehouse_and_sku(wh):
    new_sku = SkuFactory(code="NEW-1")
    client_for("operations").post(reverse(OPERATION), {"operation": "receive", "warehouse": wh.pk, "sku": new_sku.pk,
                                                        "quantity": "3"})
    assert StockLevel.objects.get(warehouse=wh, sku=new_sku).on_hand == 3
    assert audit() == []


@pytest.mark.parametrize("quantity", ["-5", "0"])
def test_receive_with_non_positive_quantity_is_refused_and_stores_nothing(quantity, wh, sku, pool):
    moves_before, pools_before = StockMove.objects.count(), StockLevel.objects.count()
    response = client_for("warehouse").post(reverse(OPERATION), {"operation": "receive", "warehouse": wh.pk,
                                                                "sku": sku.pk, "quantity": quantity})
    assert response.status_code == 200  # the form comes back with the error
    assert any("入库数量必须大于 0" in m for m in messages_of(response))
    assert "入库数量必须大于 0" in str(response.context["form"].non_field_errors())
    pool.refresh_from_db()
    assert pool.on_hand == 10
    assert (StockMove.objects.count(), StockLevel.objects.count()) == (moves_before, pools_before)
    assert audit() == []


def test_receive_with_non_integer_quantity_is_a_form_error(wh, sku, pool):
    response = client_for("warehouse").post(reverse(OPERATION), {"operation": "receive", "warehouse": wh.pk,
                                                                "sku": sku.pk, "quantity": "2.5"})
    assert response.status_code == 200
    assert "quantity" in response.context["form"].errors
    assert StockMove.objects.count() == 1


def test_stocktake_sets_on_hand_through_the_ledger(wh, sku, pool):
    client_for("warehouse").post(reverse(OPERATION), {"operation": "stocktake", "warehouse": wh.pk, "sku": sku.pk,
                                                      "quantity": "7"})
    pool.refresh_from_db()
    assert pool.on_hand == 7
    assert StockMove.objects.latest("id").kind == "stocktake"
    assert audit() == []


def test_stocktake_below_reserved_is_refused(wh, sku, pool):
    order = make_order(lines=[(sku, 4)])
    order_services.order_allocate(order=order, actor=SYSTEM)
    response = client_for("warehouse").post(reverse(OPERATION), {"operation": "stocktake", "warehouse": wh.pk,
                                                                "sku": sku.pk, "quantity": "2"})
    assert any("小于已预占" in m for m in messages_of(response))
    pool.refresh_from_db()
    assert (pool.on_hand, pool.reserved) == (10, 4)
    assert audit() == []


def test_adjust_needs_a_reason(wh, sku, pool):
    client = client_for("supervisor")
    response = client.post(reverse(OPERATION), {"operation": "adjust", "warehouse": wh.pk, "sku": sku.pk, "quantity": "-2"})
    assert any("必须填写原因" in m for m in messages_of(response))
    client.post(reverse(OPERATION), {"operation": "adjust", "warehouse": wh.pk, "sku": sku.pk, "quantity": "-2",
                                     "reason": "破损"})
    pool.refresh_from_db()
    assert pool.on_hand == 8
    assert audit() == []


@pytest.mark.parametrize("operation,quantity", [("receive", "5"), ("stocktake", "3"), ("adjust", "-2")])
@pytest.mark.parametrize("role", ["finance", "customer_service"])
def test_staff_without_stock_permissions_cannot_open_or_post_the_stock_form(role, operation, quantity, wh, sku, pool):
    client = client_for(role)
    moves_before = StockMove.objects.count()
    assert client.get(reverse(OPERATION)).status_code == 403
    response = client.post(reverse(OPERATION), {"operation": operation, "warehouse": wh.pk, "sku": sku.pk,
                                                "quantity": quantity, "reason": "盘亏"})
    assert response.status_code == 403
    pool.refresh_from_db()
    assert (pool.on_hand, pool.reserved) == (10, 0)
    assert StockMove.objects.count() == moves_before
    assert audit() == []


def test_stock_form_link_shown_only_to_those_who_may_move_stock(pool):
    url = reverse(OPERATION)
    assert url in client_for("warehouse").get(reverse("admin:inventory_stocklevel_changelist")).content.decode()
    assert url not in client_for("finance").get(reverse("admin:inventory_stocklevel_changelist")).content.decode()


# --- reservations and the ledger are read-only ----------------------------------------------
@pytest.fixture
def allocated(pool):
    order = make_order(lines=[(pool.sku, 2)])
    return order_services.order_allocate(order=order, actor=SYSTEM)


def test_stock_moves_are_append_only_in_admin(allocated):
    client = client_for("supervisor")
    move = StockMove.objects.latest("id")
    assert client.get(reverse("admin:inventory_stockmove_add")).status_code == 403
    assert client.post(reverse("admin:inventory_stockmove_change", args=[move.pk]), {"reason": "x"}).status_code == 403
    move_after = StockMove.objects.get(pk=move.pk)
    assert move_after.reason == move.reason
    assert client.post(reverse("admin:inventory_stockmove_delete", args=[move.pk]), {"post": "yes"}).status_code == 403
    assert StockMove.objects.filter(pk=move.pk).exists()
    page = client.get(reverse("admin:inventory_stockmove_change", args=[move.pk]))
    assert page.status_code == 200 and page.context["has_change_permission"] is False


def test_stock_move_list_filters_and_searches_by_order(allocated, wh):
    client = client_for("finance")
    by_order = client.get(reverse("admin:inventory_stockmove_changelist"), {"q": allocated.number})
    assert [m.kind for m in by_order.context["cl"].result_list] == ["reserve"]
    by_kind = client.get(reverse("admin:inventory_stockmove_changelist"), {"kind__exact": "receipt",
                                                                         "stock_level__warehouse__id__exact": wh.pk})
    assert [m.kind for m in by_kind.context["cl"].result_list] == ["receipt"]


def test_superuser_cannot_delete_stock_moves_in_bulk(allocated):
    client = superuser_client()
    response = client.get(reverse("admin:inventory_stockmove_changelist"))
    assert response.context["action_form"] is None  # no actions at all, so no bulk delete
    ids = list(StockMove.objects.values_list("pk", flat=True))
    client.post(reverse("admin:inventory_stockmove_changelist"), {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert StockMove.objects.count() == len(ids)


def test_reservations_are_read_only_and_searchable(allocated):
    client = client_for("warehouse")
    response = client.get(reverse("admin:inventory_reservation_changelist"), {"q": allocated.number, "status__exact": "active"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 1
    reservation = Reservation.objects.get()
    assert client.get(reverse("admin:inventory_reservation_add")).status_code == 403
    assert client.post(reverse("admin:inventory_reservation_delete", args=[reservation.pk]), {"post": "yes"}).status_code == 403
    sup = client_for("supervisor")
    response = sup.post(reverse("admin:inventory_reservation_change", args=[reservation.pk]),
                        {"quantity": "99", "status": "released"})
    assert response.status_code == 403
    reservation.refresh_from_db()
    assert (reservation.quantity, reservation.status) == (2, "active")


# --- routing rules --------------------------------------------------------------------------
def rule_data(wh, conditions: str, **extra) -> dict:
    return {"name": "江浙沪", "position": "10", "warehouse": wh.pk, "conditions": conditions, "is_active": "on", "note": "", **extra}


@pytest.mark.parametrize("conditions, expected", [
    ('{"field": "province"', "有效的 JSON"),
    ('{"field":"nope","op":"eq","value":"x"}', "未知字段"),
    ('{"field":"amount","op":"gt","value":"many"}', "必须是数字"),
    ('{"all": []}', "非空数组"),
    ('["province"]', "JSON 对象"),
])
def test_invalid_routing_conditions_are_a_form_error_and_store_nothing(conditions, expected, wh):
    response = client_for("operations").post(reverse("admin:inventory_routingrule_add"), rule_data(wh, conditions))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "conditions" in errors
    assert expected in " ".join(errors["conditions"])
    assert RoutingRule.objects.count() == 0


def test_invalid_conditions_do_not_overwrite_an_existing_rule(wh):
    rule = RoutingRuleFactory(warehouse=wh, conditions={"field": "province", "op": "eq", "value": "江苏"})
    response = client_for("supervisor").post(reverse("admin:inventory_routingrule_change", args=[rule.pk]),
                                             rule_data(wh, '{"field":"nope","op":"eq","value":"x"}'))
    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.conditions == {"field": "province", "op": "eq", "value": "江苏"}


def test_valid_routing_rule_is_stored_as_json(wh):
    conditions = ('{"all": [{"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},'
                  ' {"not": {"field": "sku_category", "op": "eq", "value": "折叠盆"}}]}')
    response = client_for("operations").post(reverse("admin:inventory_routingrule_add"), rule_data(wh, conditions))
    assert response.status_code == 302
    rule = RoutingRule.objects.get()
    assert rule.conditions["all"][0]["value"] == ["江苏", "浙江", "上海"]


def test_empty_conditions_mean_match_everything(wh):
    response = client_for("operations").post(reverse("admin:inventory_routingrule_add"), rule_data(wh, ""))
    assert response.status_code == 302
    assert RoutingRule.objects.get().conditions == {}


def test_routing_rule_form_shows_an_example(wh):
    body = client_for("operations").get(reverse("admin:inventory_routingrule_add")).content.decode()
    assert "sku_category" in body and "折叠盆" in body


def test_routing_rules_list_edits_position_and_active(wh):
    rule = RoutingRuleFactory(warehouse=wh, position=5, is_active=True)
    data = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(rule.pk), "form-0-position": "1", "_save": "保存"}
    response = client_for("operations").post(reverse("admin:inventory_routingrule_changelist"), data)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.position, rule.is_active) == (1, False)


def test_finance_cannot_add_routing_rules(wh):
    response = client_for("finance").post(reverse("admin:inventory_routingrule_add"), rule_data(wh, "{}"))
    assert response.status_code == 403
    assert RoutingRule.objects.count() == 0


def test_stock_form_opens_prefilled_from_a_pool_page(pool):
    client = client_for("warehouse")
    page = client.get(reverse("admin:inventory_stocklevel_change", args=[pool.pk]))
    url = page.context["operation_url"]
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["form"]
    assert (str(form["warehouse"].value()), str(form["sku"].value())) == (str(pool.warehouse_id), str(pool.sku_id))
