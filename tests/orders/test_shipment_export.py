"""Shipment export (发货包裹, on the shipment list): the list's filters, masked per role
(written by hand from the role descriptions: 客服 and 主管 see personal data, 仓管 / 财务 /
运营 see it masked), scoped to shops and — for a person limited to some warehouses — to the
parcels leaving those warehouses, formula escaping, CSV, the export log and the task path."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from config.models import ExportLog
from orders import exports, services
from orders.models import Shipment
from tests.factories import SYSTEM, ShopFactory, SkuFactory, UserFactory, WarehouseFactory, make_order, scoped, staff, stock
from tests.orders.test_exports import by_header, client_for, read_csv, read_xlsx

pytestmark = pytest.mark.django_db
EXPORT = "admin:orders_shipment_export"
LIST = "admin:orders_shipment_changelist"
ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]
SEES_PII = {"customer_service", "supervisor"}


@pytest.fixture
def split():
    """One order of 3 that no one warehouse holds (2 from 苏州仓, 1 from 天津仓), both parcels shipped."""
    sku = SkuFactory(code="SKU-S")
    su = WarehouseFactory(code="suzhou", name="苏州仓", priority=1)
    tj = WarehouseFactory(code="tianjin", name="天津仓", priority=2)
    stock(su, sku, 2)
    stock(tj, sku, 1)
    shop = ShopFactory(code="brand-a", name="品牌A店")
    order = services.order_pack(order=services.order_allocate(order=make_order(shop=shop, lines=[(sku, 3)]),
                                                              actor=SYSTEM), actor=SYSTEM)
    order = services.order_ship(order=order, actor=SYSTEM, warehouse=su, carrier="SF", tracking_number="SF100")
    order = services.order_ship(order=order, actor=SYSTEM, warehouse=tj, carrier="YTO", tracking_number="YT200")
    return {"order": order, "su": su, "tj": tj, "sku": sku, "shop": shop}


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@pytest.mark.parametrize("role", ROLES)
def test_every_role_exports_the_parcels_masked_as_it_sees_them(role, fmt, split):
    user = staff(role)
    response = client_for(user).get(reverse(EXPORT), {"format": fmt})
    assert response.status_code == 200
    rows = by_header(read_xlsx(response) if fmt == "xlsx" else read_csv(response))
    assert sorted((r["运单号"], r["发货仓"], r["商品"]) for r in rows) == [("SF100", "苏州仓", "SKU-S×2"),
                                                                     ("YT200", "天津仓", "SKU-S×1")]
    assert {r["订单号"] for r in rows} == {split["order"].number} and {r["状态"] for r in rows} == {"已揽收"}
    if role in SEES_PII:
        assert {(r["收件人"], r["收件电话"], r["详细地址"]) for r in rows} == {("张三", "13800138000", "人民路 1 号")}
    else:
        assert {(r["收件人"], r["收件电话"]) for r in rows} == {("张*", "138****8000")}
        assert all("人民路" not in (r["详细地址"] or "") for r in rows)
    log = ExportLog.objects.get()
    assert (log.kind, log.user, log.includes_pii, log.file_format) == ("shipments", user, role in SEES_PII, fmt)


def test_a_warehouse_person_exports_and_lists_only_their_warehouses_parcels(split):
    user = scoped(staff("warehouse"), warehouses=[split["tj"]])
    client = client_for(user)
    rows = by_header(read_xlsx(client.get(reverse(EXPORT))))
    assert [(r["运单号"], r["发货仓"]) for r in rows] == [("YT200", "天津仓")]
    page = client.get(reverse(LIST)).content.decode()
    assert "YT200" in page and "SF100" not in page
    theirs = Shipment.objects.get(tracking_number="SF100")
    assert client.get(reverse("admin:orders_shipment_change", args=[theirs.pk])).status_code == 404


def test_a_shop_scoped_person_never_gets_another_shops_parcels(split):
    other = ShopFactory(code="brand-b")
    sku = split["sku"]
    stock(split["su"], sku, 1)
    order = services.order_pack(order=services.order_allocate(order=make_order(shop=other, lines=[(sku, 1)]),
                                                              actor=SYSTEM), actor=SYSTEM)
    services.order_ship(order=order, actor=SYSTEM, warehouse=split["su"], carrier="ZTO", tracking_number="ZT300")
    user = scoped(staff("supervisor", "lead-b"), shops=[other])
    rows = by_header(read_xlsx(client_for(user).get(reverse(EXPORT))))
    assert [r["运单号"] for r in rows] == ["ZT300"]


def test_the_export_follows_the_list_filters_and_search(split):
    client = client_for(staff("supervisor"))
    rows = by_header(read_xlsx(client.get(reverse(EXPORT), {"carrier": "YTO"})))
    assert [r["运单号"] for r in rows] == ["YT200"]
    rows = by_header(read_xlsx(client.get(reverse(EXPORT), {"q": "SF100"})))
    assert [r["运单号"] for r in rows] == ["SF100"]
    assert ExportLog.objects.order_by("id").last().filters == {"q": "SF100"}
    assert client.get(reverse(EXPORT), {"nonsense__lookup": "1"}).status_code == 400
    assert reverse(EXPORT) in client.get(reverse(LIST)).content.decode()  # the button is on the list


def test_text_cells_that_look_like_formulas_are_escaped(split):
    Shipment.objects.filter(tracking_number="SF100").update(exception_note="=HYPERLINK(\"http://x\")")
    client = client_for(staff("supervisor"))
    for fmt, read in (("xlsx", read_xlsx), ("csv", read_csv)):
        rows = by_header(read(client.get(reverse(EXPORT), {"format": fmt, "q": "SF100"})))
        assert rows[0]["异常说明"] == "'=HYPERLINK(\"http://x\")"


def test_export_needs_a_role_that_may_see_shipments(split):
    nobody = UserFactory(username="no-role")
    assert not Group.objects.filter(user=nobody).exists()
    assert client_for(nobody).get(reverse(EXPORT)).status_code == 403
    assert not ExportLog.objects.exists()


def test_a_big_xlsx_export_runs_as_a_task_with_the_same_filters_and_mask(settings, tmp_path, split, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_ASYNC_ROWS = 0
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: queued.append(args))
    user = staff("finance")
    client = client_for(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(reverse(EXPORT), {"carrier": "SF"})
    assert response.status_code == 302
    log = ExportLog.objects.get()
    assert (log.kind, log.status, log.includes_pii) == ("shipments", "queued", False)
    exports.run_export(*queued[0])
    log.refresh_from_db()
    assert (log.status, log.row_count) == ("done", 1)
    rows = by_header(read_xlsx(client.get(reverse("admin:core_exportlog_download", args=[log.pk]))))
    assert [(r["运单号"], r["收件电话"]) for r in rows] == [("SF100", "138****8000")]
