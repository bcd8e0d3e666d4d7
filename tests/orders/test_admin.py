"""The orders admin: lists, search, masking, transition buttons and actions — all through services."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from config.actors import Source
from inventory.audit import audit
from inventory.models import Reservation, StockLevel
from orders import services
from orders.models import Customer, Order, OrderEvent, OrderStatus as S
from tests.factories import SYSTEM, ShopFactory, SkuFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]
CHANGELIST = "admin:orders_order_changelist"


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(staff(role))
    return client


def change_url(order: Order) -> str:
    return reverse("admin:orders_order_change", args=[order.pk])


def transition_url(order: Order, name: str) -> str:
    return reverse("admin:orders_order_transition", args=[order.pk, name])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def sku():
    wh = WarehouseFactory(code="suzhou", name="苏州仓")
    sku = SkuFactory(code="SKU-ADM", name="折叠盆")
    stock(wh, sku, 10)
    return sku


@pytest.fixture
def paid_order(sku):
    return make_order(lines=[(sku, 2)], platform_order_id="TB-1001")


@pytest.fixture
def allocated_order(sku):
    order = make_order(lines=[(sku, 1)], platform_order_id="TB-2002")
    return services.order_allocate(order=order, actor=SYSTEM)


# --- lists, filters, search ------------------------------------------------------------------
def listed(response) -> list[str]:
    """The order numbers the changelist shows, in its order."""
    assert response.status_code == 200
    return [o.number for o in response.context["cl"].result_list]


@pytest.mark.parametrize("role", ROLES)
def test_order_changelist_lists_the_orders_for_every_role(role, paid_order, allocated_order):
    response = client_for(role).get(reverse(CHANGELIST))
    assert sorted(listed(response)) == sorted([paid_order.number, allocated_order.number])
    body = response.content.decode()
    assert paid_order.number in body and allocated_order.number in body


@pytest.mark.parametrize("role", ROLES)
def test_order_change_page_shows_status_reservation_and_staff_timeline_for_every_role(role, allocated_order):
    response = client_for(role).get(change_url(allocated_order))
    assert response.status_code == 200
    assert response.context["original"].pk == allocated_order.pk
    body = response.content.decode()
    assert "已分仓" in body
    assert "苏州仓 ×1" in body  # the line inline shows its reservation
    # The timeline inline shows both, always: the event's kind label and the internal text
    # for staff (which warehouse) — never the customer's fixed wording instead.
    assert "<p>仓库已接单</p>" in body
    assert "分配至 苏州仓" in body
    assert "仓库已接单,正在备货" not in body


@pytest.fixture
def filter_orders(sku, paid_order, allocated_order):
    """paid (淘宝), allocated (淘宝), a paid 京东 order, a stock-short hold, and an order placed in 1999."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    jd = make_order(shop=ShopFactory(code="jd-shop", platform="jd"), lines=[(sku, 1)], platform_order_id="JD-1")
    short = services.order_allocate(order=make_order(lines=[(sku, 50)], platform_order_id="TB-SHORT"), actor=SYSTEM)
    assert (short.status, short.hold_reason) == (S.ON_HOLD, "stock_short")
    old = make_order(lines=[(sku, 1)], platform_order_id="TB-1999",
                     placed_at=datetime(1999, 12, 31, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    return {"paid": paid_order, "allocated": allocated_order, "jd": jd, "short": short, "old": old}


@pytest.mark.parametrize("query,expected", [
    ({"status__exact": "paid"}, {"paid", "jd", "old"}),
    ({"status__exact": "on_hold"}, {"short"}),
    ({"shop__platform__exact": "jd"}, {"jd"}),
    ({"shop__platform__exact": "taobao"}, {"paid", "allocated", "short", "old"}),
    ({"hold_reason__exact": "stock_short"}, {"short"}),
    ({"placed_at__gte": "2000-01-01 00:00:00+08:00"}, {"paid", "allocated", "jd", "short"}),
    ({"placed_at__lt": "2000-01-01 00:00:00+08:00"}, {"old"}),
    ({"status__exact": "paid", "shop__platform__exact": "taobao"}, {"paid", "old"}),
])
def test_order_changelist_filters_keep_exactly_the_matching_orders(query, expected, filter_orders):
    response = client_for("supervisor").get(reverse(CHANGELIST), query)
    assert set(listed(response)) == {filter_orders[k].number for k in expected}


def test_status_filter_keeps_only_that_status(paid_order, allocated_order):
    response = client_for("finance").get(reverse(CHANGELIST), {"status__exact": "allocated"})
    numbers = [o.number for o in response.context["cl"].result_list]
    assert numbers == [allocated_order.number]


def test_reservation_warehouse_filter_finds_orders_reserved_there(paid_order, allocated_order):
    warehouse = StockLevel.objects.get(sku__code="SKU-ADM").warehouse
    response = client_for("warehouse").get(reverse(CHANGELIST), {"warehouse": warehouse.pk})
    assert response.status_code == 200
    assert [o.number for o in response.context["cl"].result_list] == [allocated_order.number]


@pytest.mark.parametrize("term", ["13800138000", "+8613800138000", "+86 138 0013 8000"])
def test_search_by_phone_in_any_format_finds_the_order(term, sku):
    # The platform sent a formatted phone; the customer's phone is stored as E.164.
    wanted = make_order(lines=[(sku, 1)], phone="138-0013-8000")
    other = make_order(lines=[(sku, 1)], phone="13900139000")
    assert Customer.objects.get(pk=wanted.customer_id).phone == "+8613800138000"
    response = client_for("customer_service").get(reverse(CHANGELIST), {"q": term})
    numbers = {o.number for o in response.context["cl"].result_list}
    assert numbers == {wanted.number}
    assert other.number not in numbers


@pytest.mark.parametrize("field", ["number", "platform_order_id"])
def test_search_by_order_numbers(field, paid_order, allocated_order):
    response = client_for("finance").get(reverse(CHANGELIST), {"q": getattr(paid_order, field)})
    assert [o.number for o in response.context["cl"].result_list] == [paid_order.number]


def test_search_by_line_sku_code_lists_each_order_once(sku):
    other_sku = SkuFactory(code="SKU-OTHER")
    stock(WarehouseFactory(), other_sku, 5)
    twice = make_order(lines=[(sku, 1), (sku, 1)])
    make_order(lines=[(other_sku, 1)])
    response = client_for("warehouse").get(reverse(CHANGELIST), {"q": "SKU-ADM"})
    assert [o.number for o in response.context["cl"].result_list] == [twice.number]


# --- personal data --------------------------------------------------------------------------
def test_finance_sees_masked_receiver_in_list_and_detail(paid_order):
    client = client_for("finance")
    body = client.get(reverse(CHANGELIST)).content.decode()
    assert "138****8000" in body
    assert "13800138000" not in body
    assert "张三" not in body
    detail = client.get(change_url(paid_order)).content.decode()
    assert "138****8000" in detail
    assert "13800138000" not in detail
    assert "张三" not in detail
    assert "人民路 1 号" not in detail
    assert "姑苏区" in detail  # province/city/district stay visible


def test_supervisor_sees_receiver_in_full(paid_order):
    client = client_for("supervisor")
    body = client.get(reverse(CHANGELIST)).content.decode()
    assert "13800138000" in body
    assert "张三" in body
    detail = client.get(change_url(paid_order)).content.decode()
    assert "人民路 1 号" in detail
    assert "+8613800138000" in detail  # the matched customer


def test_customer_list_masks_phone_without_view_pii(paid_order):
    finance = client_for("finance").get(reverse("admin:orders_customer_changelist")).content.decode()
    assert "138****8000" in finance and "+8613800138000" not in finance
    cs = client_for("customer_service").get(reverse("admin:orders_customer_changelist")).content.decode()
    assert "+8613800138000" in cs


# --- transition buttons ---------------------------------------------------------------------
def buttons(client, order) -> list[str]:
    response = client.get(change_url(order))
    assert response.status_code == 200
    return [b["name"] for b in response.context["transition_buttons"]]


def test_warehouse_on_allocated_order_sees_pack_but_not_cancel(allocated_order):
    client = client_for("warehouse")
    names = buttons(client, allocated_order)
    assert "pack" in names
    assert "cancel" not in names
    body = client.get(change_url(allocated_order)).content.decode()
    assert 'data-transition="pack"' in body and ">打包</button>" in body
    assert 'data-transition="cancel"' not in body


def test_customer_service_on_paid_order_sees_cancel_but_not_pack(paid_order):
    client = client_for("customer_service")
    names = buttons(client, paid_order)
    assert set(names) == {"hold", "cancel"}
    body = client.get(change_url(paid_order)).content.decode()
    assert ">取消</button>" in body
    assert ">打包</button>" not in body


def test_finance_sees_no_transition_buttons(paid_order):
    assert buttons(client_for("finance"), paid_order) == []


def test_supervisor_on_paid_order_sees_every_transition_from_paid(paid_order):
    assert buttons(client_for("supervisor"), paid_order) == ["allocate", "hold", "cancel"]


# --- POSTing transitions --------------------------------------------------------------------
def test_permitted_user_cancels_and_timeline_records_who(paid_order):
    user = staff("customer_service")
    client = Client()
    client.force_login(user)
    response = client.post(transition_url(paid_order, "cancel"), {"reason": "买家要求"}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(paid_order)
    assert reload(paid_order).status == S.CANCELLED
    event = OrderEvent.objects.filter(order=paid_order).latest("id")
    assert (event.kind, event.from_status, event.to_status) == ("cancelled", "paid", "cancelled")
    assert event.actor == user and event.source == Source.ADMIN
    assert "买家要求" in event.message
    assert any("已取消" in m for m in messages_of(response))


def test_warehouse_allocates_and_stock_is_reserved(paid_order):
    response = client_for("warehouse").post(transition_url(paid_order, "allocate"), follow=True)
    assert reload(paid_order).status == S.ALLOCATED
    pool = StockLevel.objects.get(sku__code="SKU-ADM")
    assert (pool.on_hand, pool.reserved) == (10, 2)
    assert OrderEvent.objects.filter(order=paid_order, kind="allocated", actor__username="warehouse").exists()
    assert any("已分仓" in m for m in messages_of(response))
    assert audit() == []


def test_allocate_short_stock_holds_the_order_with_a_warning(sku):
    order = make_order(lines=[(sku, 50)])
    response = client_for("supervisor").post(transition_url(order, "allocate"), follow=True)
    order = reload(order)
    assert (order.status, order.hold_reason) == (S.ON_HOLD, "stock_short")
    assert any("已挂起" in m for m in messages_of(response))
    assert StockLevel.objects.get(sku=sku).reserved == 0


def test_hold_takes_reason_and_note(paid_order):
    client_for("customer_service").post(transition_url(paid_order, "hold"), {"reason": "address", "note": "门牌号缺失"})
    order = reload(paid_order)
    assert (order.status, order.hold_reason, order.hold_note) == (S.ON_HOLD, "address", "门牌号缺失")


def test_ship_takes_warehouse_carrier_and_tracking_number(allocated_order):
    services.order_pack(order=allocated_order, actor=SYSTEM)
    client_for("warehouse").post(transition_url(allocated_order, "ship"),
                                 {"warehouse": "suzhou", "carrier": "SF", "tracking_number": "SF123"})
    assert reload(allocated_order).status == S.SHIPPED
    event = OrderEvent.objects.filter(order=allocated_order).latest("id")
    assert event.data["tracking_number"] == "SF123" and event.data["warehouse"] == "suzhou"
    assert StockLevel.objects.get(sku__code="SKU-ADM").on_hand == 9
    assert audit() == []


@pytest.mark.parametrize("role", ["finance", "warehouse"])
def test_user_without_permission_cannot_cancel_by_posting_by_hand(role, paid_order):
    events_before = OrderEvent.objects.filter(order=paid_order).count()
    response = client_for(role).post(transition_url(paid_order, "cancel"), {"reason": "x"}, follow=True)
    assert response.status_code == 200
    assert reload(paid_order).status == S.PAID
    assert OrderEvent.objects.filter(order=paid_order).count() == events_before
    assert any("没有权限" in m for m in messages_of(response))


def test_finance_cannot_allocate_by_posting_by_hand(paid_order):
    response = client_for("finance").post(transition_url(paid_order, "allocate"), follow=True)
    assert reload(paid_order).status == S.PAID
    assert not Reservation.objects.exists()
    assert any("没有权限" in m for m in messages_of(response))


def test_transition_not_allowed_from_current_state_is_refused(paid_order):
    response = client_for("warehouse").post(transition_url(paid_order, "pack"), follow=True)
    assert reload(paid_order).status == S.PAID
    assert any("不能打包" in m for m in messages_of(response))


def test_unknown_transition_is_an_error_and_changes_nothing(paid_order):
    events_before = OrderEvent.objects.filter(order=paid_order).count()
    response = client_for("supervisor").post(transition_url(paid_order, "teleport"), follow=True)
    assert response.status_code == 200
    assert reload(paid_order).status == S.PAID
    assert OrderEvent.objects.filter(order=paid_order).count() == events_before
    assert any("未知的操作" in m for m in messages_of(response))


def test_transition_url_refuses_get(paid_order):
    response = client_for("supervisor").get(transition_url(paid_order, "cancel"))
    assert response.status_code == 405
    assert reload(paid_order).status == S.PAID


def test_transition_url_requires_login(paid_order):
    response = Client().post(transition_url(paid_order, "cancel"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert reload(paid_order).status == S.PAID


def test_transition_on_missing_order_is_404(paid_order):
    response = client_for("supervisor").post(reverse("admin:orders_order_transition", args=[999999, "cancel"]))
    assert response.status_code == 404


# --- the change form itself -----------------------------------------------------------------
def test_orders_cannot_be_added_or_deleted(paid_order):
    client = client_for("supervisor")
    assert client.get(reverse("admin:orders_order_add")).status_code == 403
    assert client.post(reverse("admin:orders_order_delete", args=[paid_order.pk]), {"post": "yes"}).status_code == 403
    assert Order.objects.filter(pk=paid_order.pk).exists()


def test_change_form_appends_note_and_ignores_posted_status_and_fields(paid_order):
    client = client_for("customer_service")
    form = client.get(change_url(paid_order)).context["adminform"].form
    assert list(form.fields) == ["add_note"]  # status and channel data are not form fields
    data = {
        "add_note": "客户来电改期",
        "status": "completed",
        "paid_amount": "0.01",
        "receiver_name": "李四",
        "lines-TOTAL_FORMS": "0", "lines-INITIAL_FORMS": "0", "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "0",
        "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0", "events-MAX_NUM_FORMS": "0",
    }
    response = client.post(change_url(paid_order), data)
    assert response.status_code == 302
    order = reload(paid_order)
    assert order.status == S.PAID
    assert str(order.paid_amount) == "100.00" and order.receiver_name == "张三"
    assert order.seller_note == "客户来电改期"
    assert OrderEvent.objects.filter(order=order, kind="note", actor__username="customer_service").exists()


def test_finance_change_page_is_view_only(paid_order):
    response = client_for("finance").get(change_url(paid_order))
    assert response.status_code == 200
    assert "add_note" not in response.content.decode()
    assert response.context["has_change_permission"] is False


NOTE_FORM = {
    "lines-TOTAL_FORMS": "0", "lines-INITIAL_FORMS": "0", "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "0",
    "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0", "events-MAX_NUM_FORMS": "0",
}


@pytest.mark.parametrize("role", ["finance", "warehouse", "operations"])
def test_roles_without_note_permission_cannot_add_a_note_by_posting(role, paid_order):
    """Notes belong to 客服 and 主管; the others get 403 and the order and timeline stay as they were."""
    events_before = OrderEvent.objects.filter(order=paid_order).count()
    response = client_for(role).post(change_url(paid_order), {**NOTE_FORM, "add_note": "改期", "status": "completed"})
    assert response.status_code == 403
    order = reload(paid_order)
    assert (order.status, order.seller_note) == (S.PAID, "")
    assert OrderEvent.objects.filter(order=paid_order).count() == events_before
    assert not OrderEvent.objects.filter(order=paid_order, kind="note").exists()


@pytest.mark.parametrize("role", ["customer_service", "supervisor"])
def test_roles_with_note_permission_get_the_note_field_and_the_note_is_recorded(role, paid_order):
    client = client_for(role)
    assert list(client.get(change_url(paid_order)).context["adminform"].form.fields) == ["add_note"]
    response = client.post(change_url(paid_order), {**NOTE_FORM, "add_note": "客户要求周末送达"})
    assert response.status_code == 302
    assert reload(paid_order).seller_note == "客户要求周末送达"
    note = OrderEvent.objects.get(order=paid_order, kind="note")
    assert (note.actor.username, note.message, note.source) == (role, "客户要求周末送达", Source.ADMIN)


def test_posting_a_status_without_a_note_changes_nothing(paid_order):
    """The status is read-only: a hand-made POST of another status is not applied."""
    events_before = OrderEvent.objects.filter(order=paid_order).count()
    response = client_for("supervisor").post(change_url(paid_order), {**NOTE_FORM, "status": "shipped",
                                                                      "hold_reason": "risk"})
    assert response.status_code == 302
    order = reload(paid_order)
    assert (order.status, order.hold_reason) == (S.PAID, "")
    assert OrderEvent.objects.filter(order=paid_order).count() == events_before


# --- changelist actions ---------------------------------------------------------------------
def run_action(client, action: str, orders):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [o.pk for o in orders],
                                             "apply": "1", "reason": "买家要求"}, follow=True)


def test_allocate_action_reports_each_order(sku):
    good = make_order(lines=[(sku, 1)])
    short = make_order(lines=[(sku, 99)])
    unpaid = make_order(lines=[(sku, 1)], paid=False)
    response = run_action(client_for("supervisor"), "allocate_selected", [good, short, unpaid])
    assert reload(good).status == S.ALLOCATED
    assert reload(short).status == S.ON_HOLD
    assert reload(unpaid).status == S.PENDING_PAYMENT
    msgs = messages_of(response)
    assert any(m.startswith(f"{good.number}:成功") for m in msgs)  # one message per order
    assert any("成功 1 单" in m and "拒绝 1 单" in m and "共 3 单" in m for m in msgs)  # and a summary
    assert any(short.number in m and "挂起" in m for m in msgs)
    assert any(unpaid.number in m and "不能分仓预占" in m for m in msgs)
    assert audit() == []


def test_cancel_action_releases_stock_per_order(allocated_order, paid_order):
    response = run_action(client_for("customer_service"), "cancel_selected", [allocated_order, paid_order])
    assert reload(allocated_order).status == S.CANCELLED
    assert reload(paid_order).status == S.CANCELLED
    assert StockLevel.objects.get(sku__code="SKU-ADM").reserved == 0
    assert any("成功 2 单" in m for m in messages_of(response))
    assert audit() == []


def test_cancel_action_not_offered_to_warehouse_and_refused_when_forced(paid_order):
    client = client_for("warehouse")
    actions = dict(client.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices)
    assert "allocate_selected" in actions and "cancel_selected" not in actions
    events_before = OrderEvent.objects.filter(order=paid_order).count()
    run_action(client, "cancel_selected", [paid_order])
    assert reload(paid_order).status == S.PAID
    assert OrderEvent.objects.filter(order=paid_order).count() == events_before


# --- other registered models ----------------------------------------------------------------
def test_shop_list_never_shows_credentials():
    ShopFactory(code="demo", app_key="KEY-123", app_secret="SECRET-456", access_token="TOKEN-789")
    body = client_for("supervisor").get(reverse("admin:orders_shop_changelist")).content.decode()
    for secret in ("KEY-123", "SECRET-456", "TOKEN-789"):
        assert secret not in body


def test_shop_credentials_are_collapsed_and_secret_values_not_echoed():
    shop = ShopFactory(code="demo", app_key="KEY-123", app_secret="SECRET-456", access_token="TOKEN-789")
    response = client_for("supervisor").get(reverse("admin:orders_shop_change", args=[shop.pk]))
    body = response.content.decode()
    assert 'name="app_secret"' in body and "collapse" in body
    assert "SECRET-456" not in body and "TOKEN-789" not in body


def test_shop_edit_keeps_secret_when_left_blank_and_changes_it_when_given():
    shop = ShopFactory(code="demo", app_secret="OLD", webhook_secret="HOOK")
    client = client_for("supervisor")
    data = {"platform": "taobao", "code": "demo", "name": "新名字", "is_active": "on", "currency": "CNY",
            "time_zone": "Asia/Shanghai", "ship_within_hours": "24", "sync_interval_minutes": "5",
            "app_key": "", "app_secret": "", "access_token": "", "webhook_secret": "NEW-HOOK"}
    response = client.post(reverse("admin:orders_shop_change", args=[shop.pk]), data)
    assert response.status_code == 302
    shop.refresh_from_db()
    assert (shop.name, shop.app_secret, shop.webhook_secret) == ("新名字", "OLD", "NEW-HOOK")


def test_view_only_staff_do_not_get_shop_credentials():
    shop = ShopFactory(code="demo", app_key="KEY-123")
    body = client_for("finance").get(reverse("admin:orders_shop_change", args=[shop.pk])).content.decode()
    assert "KEY-123" not in body and "App Secret" not in body


def test_order_event_list_is_read_only(paid_order):
    client = client_for("supervisor")
    response = client.get(reverse("admin:orders_orderevent_changelist"), {"q": paid_order.number})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == OrderEvent.objects.filter(order=paid_order).count()
    assert client.get(reverse("admin:orders_orderevent_add")).status_code == 403
    event = OrderEvent.objects.filter(order=paid_order).first()
    assert client.post(reverse("admin:orders_orderevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert OrderEvent.objects.filter(pk=event.pk).exists()
    assert client.post(reverse("admin:orders_orderevent_change", args=[event.pk]),
                       {"message": "改写", "to_status": "completed"}).status_code == 403
    unchanged = OrderEvent.objects.get(pk=event.pk)
    assert (unchanged.message, unchanged.to_status) == (event.message, event.to_status)

