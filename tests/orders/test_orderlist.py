"""The order list (issue 17): countdown and row-action columns without per-row queries, bulk
actions with one result per order, role default filters, and the full-chain Excel export —
each role allowed and refused through the admin, and scoping."""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.actors import Actor, Source
from config.models import ExportLog
from inventory import imports
from inventory.audit import audit
from orders import batches, services
from orders.admin_orderlist import countdown_text
from orders.models import Order, OrderEvent, OrderStatus as S, PickBatch
from tests.factories import (SYSTEM, ShopFactory, SkuFactory, UserFactory, WarehouseFactory, make_order, scoped,
                             staff, stock)

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:orders_order_changelist"
ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]

# Written by hand from the role descriptions (not read from config/roles.py):
# 客服 holds, releases and cancels orders for customers; 仓管 allocates, holds and prints pick
# lists; 运营 allocates, holds and releases (stock and mapping work) and may build/print pick
# batches; 财务 only reads; 主管 may do everything.
MAY = {
    "allocate_selected": {"warehouse", "operations", "supervisor"},
    "hold_selected": {"customer_service", "warehouse", "operations", "supervisor"},
    "cancel_selected": {"customer_service", "supervisor"},
    "release_selected": {"customer_service", "operations", "supervisor"},
    "print_pick_list_selected": {"warehouse", "operations", "supervisor"},
}
# Every role may read orders, so every role may export an order's chain (masked as it sees it).
MAY_SEE_PII = {"customer_service", "supervisor"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run(client, action, orders, follow=True, **extra):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [o.pk for o in orders], **extra},
                       follow=follow)


def reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def wh():
    return WarehouseFactory(code="suzhou", name="苏州仓")


@pytest.fixture
def sku(wh):
    sku = SkuFactory(code="SKU-OL", name="折叠盆")
    stock(wh, sku, 20)
    return sku


def held(sku) -> Order:
    return services.order_hold(order=make_order(lines=[(sku, 1)]), actor=SYSTEM, reason="manual", note="待核实")


# --- columns --------------------------------------------------------------------------------
def test_countdown_text():
    now = timezone.now()
    order = SimpleNamespace(status=S.PAID, promised_ship_at=now + timedelta(hours=3, minutes=10))
    assert countdown_text(order, now) == ("soon", "剩余 3 小时")
    order.promised_ship_at = now - timedelta(hours=2, minutes=5)
    assert countdown_text(order, now) == ("overdue", "已超时 2 小时")
    order.promised_ship_at = now + timedelta(minutes=20)
    assert countdown_text(order, now) == ("soon", "剩余 20 分钟")
    order.promised_ship_at = now + timedelta(days=3, hours=1)
    assert countdown_text(order, now) == ("ok", "剩余 3 天")
    order.status = S.SHIPPED
    assert countdown_text(order, now) == ("none", "-")
    assert countdown_text(SimpleNamespace(status=S.PAID, promised_ship_at=None), now) == ("none", "-")


def test_list_shows_badge_countdown_and_only_the_rows_permitted_actions(sku):
    paid = make_order(lines=[(sku, 1)], promised_ship_at=timezone.now() - timedelta(hours=2, minutes=30))
    on_hold = held(sku)
    body = client_for(staff("warehouse")).get(reverse(CHANGELIST)).content.decode()
    assert "已超时 2 小时" in body
    assert 'class="status-badge status-paid"' in body and "已付款" in body  # colour plus the status in words
    change = reverse("admin:orders_order_change", args=[paid.pk])
    assert f'href="{change}#transition-allocate"' in body  # 仓管 allocates
    assert "row-action-cancel" not in body  # but never cancels
    assert "row-action-release" not in body  # nor releases a hold (客服/运营/主管 do)
    body = client_for(staff("customer_service")).get(reverse(CHANGELIST)).content.decode()
    assert f'href="{reverse("admin:orders_order_change", args=[on_hold.pk])}#transition-release"' in body
    assert "row-action-cancel" in body and "row-action-allocate" not in body
    body = client_for(staff("finance")).get(reverse(CHANGELIST)).content.decode()
    assert "row-action-" not in body  # 财务 reads only


def test_the_order_page_has_the_anchors_the_row_buttons_link_to(sku):
    paid = make_order(lines=[(sku, 1)])
    body = client_for(staff("supervisor")).get(reverse("admin:orders_order_change", args=[paid.pk])).content.decode()
    assert 'id="transition-allocate"' in body and 'id="transition-cancel"' in body
    assert reverse("admin:orders_order_chain_export", args=[paid.pk]) in body


def test_list_queries_do_not_grow_with_the_rows(sku):
    client = client_for(staff("supervisor"))
    for _ in range(2):
        make_order(lines=[(sku, 1)], promised_ship_at=timezone.now() + timedelta(hours=5))
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse(CHANGELIST)).status_code == 200
    for _ in range(6):
        services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)
    held(sku)
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse(CHANGELIST)).status_code == 200
    assert len(many) == len(few)


# --- the role × bulk action matrix, through the admin --------------------------------------
def _subject(action: str, sku, wh) -> Order:
    if action in ("allocate_selected", "hold_selected", "cancel_selected"):
        return make_order(lines=[(sku, 1)])
    if action == "release_selected":
        return held(sku)
    order = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)
    batches.batch_build(warehouse=wh, actor=SYSTEM)
    return order


EXPECTED = {"allocate_selected": S.ALLOCATED, "hold_selected": S.ON_HOLD, "cancel_selected": S.CANCELLED,
            "release_selected": S.PAID}
FORM = {"hold_selected": {"apply": "1", "reason": "address", "note": "门牌号待确认"},
        "cancel_selected": {"apply": "1", "reason": "买家要求取消"}}


@pytest.mark.parametrize("action", list(MAY))
@pytest.mark.parametrize("role", ROLES)
def test_role_bulk_action_matrix(role, action, sku, wh):
    order = _subject(action, sku, wh)
    status_before = order.status
    events_before = OrderEvent.objects.filter(order=order).count()
    client = client_for(staff(role))
    action_form = client.get(reverse(CHANGELIST)).context["action_form"]  # None when no action is offered
    offered = dict(action_form.fields["action"].choices) if action_form else {}
    response = run(client, action, [order], follow=False, **FORM.get(action, {}))
    batch = PickBatch.objects.first()
    if role in MAY[action]:
        assert action in offered
        if action == "print_pick_list_selected":
            assert response.status_code == 302
            assert response["Location"] == reverse("admin:orders_pickbatch_pick", args=[batch.pk])
        else:
            assert reload(order).status == EXPECTED[action]
            assert OrderEvent.objects.filter(order=order).count() > events_before
    else:
        assert action not in offered
        # A hand-made POST of the action is refused too: nothing changes.
        assert reload(order).status == status_before
        assert OrderEvent.objects.filter(order=order).count() == events_before
        if action == "print_pick_list_selected":
            assert response.get("Location") != reverse("admin:orders_pickbatch_pick", args=[batch.pk])
    assert audit() == []


# --- one message per order ----------------------------------------------------------------
def test_bulk_hold_reports_each_order_and_a_summary(sku):
    good = make_order(lines=[(sku, 1)])
    cancelled = services.order_cancel(order=make_order(lines=[(sku, 1)]), actor=SYSTEM, reason="x")
    response = run(client_for(staff("customer_service")), "hold_selected", [good, cancelled],
                   apply="1", reason="risk", note="风控复核")
    good = reload(good)
    assert (good.status, good.hold_reason, good.hold_note) == (S.ON_HOLD, "risk", "风控复核")
    assert reload(cancelled).status == S.CANCELLED
    msgs = messages_of(response)
    assert any(m.startswith(f"{good.number}:成功") for m in msgs)
    assert any(m.startswith(f"{cancelled.number}:拒绝:") and "不能挂起" in m for m in msgs)
    assert any("共 2 单" in m and "成功 1 单" in m and "拒绝 1 单" in m for m in msgs)


def test_hold_asks_for_the_reason_first_and_refuses_a_system_reason(sku):
    order = make_order(lines=[(sku, 1)])
    client = client_for(staff("customer_service"))
    page = run(client, "hold_selected", [order])
    assert page.status_code == 200 and "确认执行" in page.content.decode() and order.number in page.content.decode()
    assert reload(order).status == S.PAID
    page = run(client, "hold_selected", [order], apply="1", reason="stock_short")  # set by the system only
    assert page.status_code == 200 and page.context["form"].errors
    assert reload(order).status == S.PAID


def test_bulk_cancel_needs_a_reason_and_writes_it_to_the_timeline(sku):
    order = make_order(lines=[(sku, 1)])
    client = client_for(staff("customer_service"))
    page = run(client, "cancel_selected", [order], apply="1", reason="")
    assert page.status_code == 200 and page.context["form"].errors
    assert reload(order).status == S.PAID
    run(client, "cancel_selected", [order], apply="1", reason="买家拍错")
    assert reload(order).status == S.CANCELLED
    assert "买家拍错" in OrderEvent.objects.filter(order=order, kind="cancelled").get().message


def test_bulk_release_refuses_an_order_not_on_hold(sku):
    on_hold, paid = held(sku), make_order(lines=[(sku, 1)])
    msgs = messages_of(run(client_for(staff("operations")), "release_selected", [on_hold, paid]))
    assert reload(on_hold).status in (S.PAID, S.ALLOCATED)
    assert any(m.startswith(f"{paid.number}:拒绝:") for m in msgs)


def test_bulk_hold_on_a_mixed_selection_touches_only_in_scope_orders(sku):
    shop_a, shop_b = ShopFactory(code="brand-a"), ShopFactory(code="brand-b")
    mine, theirs = make_order(shop=shop_a, lines=[(sku, 1)]), make_order(shop=shop_b, lines=[(sku, 1)])
    user = scoped(staff("supervisor", "lead-a"), shops=[shop_a])
    run(client_for(user), "hold_selected", [mine, theirs], apply="1", reason="manual")
    assert reload(mine).status == S.ON_HOLD
    assert reload(theirs).status == S.PAID


# --- print pick list -----------------------------------------------------------------------
def test_pick_list_refuses_orders_in_no_batch_and_links_each_batch(sku, wh):
    first = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)
    b1 = batches.batch_build(warehouse=wh, actor=SYSTEM)
    second = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)
    b2 = batches.batch_build(warehouse=wh, actor=SYSTEM)
    loose = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)
    response = run(client_for(staff("warehouse")), "print_pick_list_selected", [first, second, loose])
    msgs = messages_of(response)
    assert any(m.startswith(f"{first.number}:成功") and b1.number in m for m in msgs)
    assert any(m.startswith(f"{second.number}:成功") and b2.number in m for m in msgs)
    assert any(m.startswith(f"{loose.number}:拒绝:") for m in msgs)
    body = response.content.decode()
    assert reverse("admin:orders_pickbatch_pick", args=[b1.pk]) in body
    assert reverse("admin:orders_pickbatch_pick", args=[b2.pk]) in body


def test_pick_list_of_another_warehouses_batch_is_refused(sku, wh):
    other = WarehouseFactory(code="tianjin", name="天津仓", priority=9)
    order = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)
    batches.batch_build(warehouse=wh, actor=SYSTEM)
    keeper = scoped(staff("warehouse", "tj-keeper"), warehouses=[other])
    response = run(client_for(keeper), "print_pick_list_selected", [order])
    # Out of the keeper's warehouses the order is not even listed: nothing is printed.
    assert response.redirect_chain[-1][0].startswith(reverse(CHANGELIST))
    assert PickBatch.objects.get().printed_at is None


# --- default filter per role ---------------------------------------------------------------
@pytest.mark.parametrize(("role", "query"), [
    ("warehouse", "status__exact=allocated"),
    ("customer_service", "status__exact=on_hold"),
    ("finance", "status__exact=completed"),
    ("operations", "hold_reason__exact=sku_unmapped"),
    ("supervisor", None),
])
def test_first_visit_opens_on_the_roles_default_filter(settings, role, query, sku):
    settings.ORDER_LIST_ROLE_DEFAULTS = True
    paid = make_order(lines=[(sku, 1)])
    client = client_for(staff(role))
    response = client.get(reverse(CHANGELIST))
    if query is None:
        assert response.status_code == 200
        assert paid.number in response.content.decode()
        return
    assert response.status_code == 302 and response["Location"] == f"{reverse(CHANGELIST)}?{query}"
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'id="role-default"' in page.content.decode()
    assert paid.number not in page.content.decode()
    everything = client.get(f"{reverse(CHANGELIST)}?_all=1")  # the 全部 link
    assert everything.status_code == 200 and paid.number in everything.content.decode()
    explicit = client.get(f"{reverse(CHANGELIST)}?status__exact=paid")  # an explicit filter wins
    assert explicit.status_code == 200 and paid.number in explicit.content.decode()
    assert 'id="role-default"' not in explicit.content.decode()


# --- full chain export ---------------------------------------------------------------------
def _book(response) -> openpyxl.Workbook:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    return openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)


def _values(sheet) -> list[list]:
    return [list(r) for r in sheet.iter_rows(values_only=True)]


def chain_url(order) -> str:
    return reverse("admin:orders_order_chain_export", args=[order.pk])


@pytest.mark.parametrize("role", ROLES)
def test_every_role_exports_the_chain_masked_as_it_sees_it(role, sku):
    order = services.order_allocate(order=make_order(lines=[(sku, 2)], seller_note="=HYPERLINK(\"x\")"), actor=SYSTEM)
    user = staff(role)
    book = _book(client_for(user).get(chain_url(order)))
    assert book.sheetnames == ["订单", "时间线", "库存流水", "包裹与物流", "面单与回传", "解密记录", "紧急放行", "导入记录",
                               "退货", "退款", "发票"]
    head = {r[0]: r[1] for r in _values(book["订单"]) if r and r[0]}
    assert head["订单号"] == order.number
    if role in MAY_SEE_PII:
        assert (head["收件人"], head["收件电话"]) == ("张三", "13800138000")
    else:
        assert head["收件人"] == "张*" and head["收件电话"] == "138****8000" and "人民路" not in head["详细地址"]
    assert head["卖家备注"].startswith("'=")  # never run as a formula
    moves = _values(book["库存流水"])[1:]
    assert [(r[2], r[3], r[5]) for r in moves] == [("SKU-OL", "预占", 2)]
    assert len(_values(book["时间线"])) >= 3  # header, created/paid, allocated
    assert _values(book["退款"])[1] == ["售后/财务模块尚未上线"]
    log = ExportLog.objects.get()
    assert (log.user, log.filters["full_chain"], log.includes_pii) == (user, order.number, role in MAY_SEE_PII)


def test_chain_export_lists_shipments_tracking_and_the_import_that_shipped_it(sku, wh):
    order = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM),
                                actor=SYSTEM)
    keeper = staff("warehouse")
    book = openpyxl.Workbook()
    for row in (["订单号", "快递公司", "运单号", "发货仓"], [order.number, "SF", "SF7001", ""]):
        book.active.append(row)
    buf = io.BytesIO()
    book.save(buf)
    actor = Actor.of(keeper, Source.IMPORT)
    job = imports.start_import(kind="tracking", upload=SimpleUploadedFile("ship.xlsx", buf.getvalue()), actor=actor)
    imports.confirm_import(job=job, actor=actor)
    assert reload(order).status == S.SHIPPED
    book = _book(client_for(keeper).get(chain_url(order)))
    parcels = _values(book["包裹与物流"])[1:]
    assert parcels and parcels[0][2:4] == ["SF", "SF7001"]
    sources = [r[0] for r in _values(book["导入记录"])[1:]]
    assert "时间线(导入)" in sources
    assert any(s.startswith(f"导入任务 #{job.pk}") for s in sources)


def test_chain_export_out_of_scope_is_404_and_logs_nothing(sku):
    shop_a, shop_b = ShopFactory(code="brand-a"), ShopFactory(code="brand-b")
    theirs = make_order(shop=shop_b, lines=[(sku, 1)])
    user = scoped(staff("supervisor", "lead-a"), shops=[shop_a])
    assert client_for(user).get(chain_url(theirs)).status_code == 404
    assert not ExportLog.objects.exists()


def test_chain_export_refused_without_order_view_permission(sku):
    order = make_order(lines=[(sku, 1)])
    nobody = UserFactory(username="no-role")  # staff, but in no role group
    assert not Group.objects.filter(user=nobody).exists()
    assert client_for(nobody).get(chain_url(order)).status_code in (403, 404)
    assert not ExportLog.objects.exists()
