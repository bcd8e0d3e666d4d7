"""Exports: the order list's current filters, scoped and masked per role (written by hand
from the role descriptions), formula escaping, stock levels and the ledger for a period,
flat-memory writing, and the export log."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import openpyxl
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.actors import Actor, Source
from config.models import ExportLog
from orders import exports
from orders import services as order_services
from orders.models import Order
from tests.factories import SYSTEM, ShopFactory, SkuFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db

ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]
# Personal data in full for 客服 and 主管; masked for 仓管, 财务 and 运营 (role descriptions).
SEES_PII = {"customer_service", "supervisor"}
EXPORT = "admin:orders_order_export"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def read_xlsx(response) -> list[list]:
    book = openpyxl.load_workbook(io.BytesIO(body(response)))
    return [[c.value for c in row] for row in book.active.iter_rows()]


def read_csv(response) -> list[list]:
    return list(csv.reader(io.StringIO(body(response).decode("utf-8-sig"))))


def by_header(rows: list[list]) -> list[dict]:
    headers = rows[0]
    return [dict(zip(headers, r)) for r in rows[1:]]


@pytest.fixture
def shop():
    return ShopFactory(code="demo-taobao", name="淘宝旗舰店")


@pytest.fixture
def order(shop):
    return make_order(shop=shop, phone="13800138000", seller_note="=HYPERLINK(\"http://evil\",\"点我\")")


# --- masking per role ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@pytest.mark.parametrize("role", ROLES)
def test_order_export_is_masked_per_role(role, fmt, order):
    user = staff(role)
    response = client_for(user).get(reverse(EXPORT), {"format": fmt})
    assert response.status_code == 200
    table = read_xlsx(response) if fmt == "xlsx" else read_csv(response)
    rows = by_header(table)
    assert [r["订单号"] for r in rows] == [order.number]
    row = rows[0]
    if role in SEES_PII:
        assert (row["收件人"], row["收件电话"], row["详细地址"]) == ("张三", "13800138000", "人民路 1 号")
    else:
        assert (row["收件人"], row["收件电话"], row["详细地址"]) == ("张*", "138****8000", "****")
        assert not any("13800138000" in str(cell) or "张三" in str(cell) for line in table for cell in line)
    log = ExportLog.objects.get()
    assert (log.kind, log.user, log.includes_pii, log.file_format, log.row_count) == (
        "orders", user, role in SEES_PII, fmt, 1)


def test_masked_role_may_not_filter_the_export_by_personal_data(order):
    response = client_for(staff("finance")).get(reverse(EXPORT), {"receiver_phone": "13800138000"})
    assert response.status_code == 400
    assert not ExportLog.objects.exists()


# --- the current filters and scope --------------------------------------------------------------
def test_order_export_follows_the_changelist_filters_and_search(shop):
    sku = SkuFactory(code="BASIN-01")
    stock(WarehouseFactory(code="suzhou"), sku, 10)
    paid = make_order(shop=shop)
    allocated = order_services.order_allocate(order=make_order(shop=shop, lines=[(sku, 1)]), actor=SYSTEM)
    other = make_order(shop=ShopFactory(code="jd-1"))
    client = client_for(staff("supervisor"))
    numbers = lambda params: sorted(r["订单号"] for r in by_header(read_xlsx(client.get(reverse(EXPORT), params))))  # noqa: E731
    assert numbers({}) == sorted([paid.number, allocated.number, other.number])
    assert numbers({"status__exact": "allocated"}) == [allocated.number]
    assert numbers({"shop__id__exact": shop.pk}) == sorted([paid.number, allocated.number])
    assert numbers({"q": other.number}) == [other.number]
    log = ExportLog.objects.order_by("id").last()
    assert log.filters == {"q": other.number}
    page = client.get(reverse("admin:orders_order_changelist"), {"status__exact": "paid"}).content.decode()
    assert f'{reverse(EXPORT)}?status__exact=paid&amp;format=xlsx' in page


def test_order_export_is_scoped(shop):
    theirs = ShopFactory(code="other-brand")
    mine = make_order(shop=shop)
    make_order(shop=theirs)
    user = scoped(staff("customer_service"), shops=[shop])
    rows = by_header(read_xlsx(client_for(user).get(reverse(EXPORT))))
    assert [r["订单号"] for r in rows] == [mine.number]
    # and through the function, whatever queryset a caller hands in
    table = exports.order_table(actor=Actor.of(user, Source.ADMIN), orders=Order.objects.all())
    assert [r[0] for r in table.rows] == [mine.number]


def test_export_needs_view_permission(order):
    from django.contrib.auth import get_user_model

    nobody = get_user_model().objects.create_user("nobody", is_staff=True)
    assert client_for(nobody).get(reverse(EXPORT)).status_code == 403
    assert not ExportLog.objects.exists()


# --- escaping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["=1+1", "+86 138", "-2", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_escape_cell(text):
    assert exports.escape_cell(text) == "'" + text
    assert exports.escape_cell("safe " + text) == "safe " + text
    assert exports.escape_cell(-2) == -2  # numbers stay numbers


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_order_export_escapes_formulas(fmt, shop):
    evil = make_order(shop=shop, seller_note="=HYPERLINK(\"http://evil\")", buyer_note="@SUM(1+1)",
                      platform_order_id="-1+1")
    response = client_for(staff("supervisor")).get(reverse(EXPORT), {"format": fmt})
    rows = by_header(read_xlsx(response) if fmt == "xlsx" else read_csv(response))
    row = next(r for r in rows if r["订单号"] == evil.number)
    assert row["卖家备注"] == "'=HYPERLINK(\"http://evil\")"
    assert row["买家留言"] == "'@SUM(1+1)"
    assert row["平台订单号"] == "'-1+1"
    if fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(body(client_for(staff("supervisor")).get(reverse(EXPORT)))))
        assert all(c.data_type != "f" for row in book.active.iter_rows() for c in row)


def test_stock_and_ledger_exports_escape_too():
    wh = WarehouseFactory(code="suzhou", name="苏州仓")
    sku = SkuFactory(code="+CUP", name="=cmd|' /C calc'!A0")
    stock(wh, sku, 3)
    client = client_for(staff("supervisor"))
    rows = by_header(read_xlsx(client.get(reverse("admin:core_exportlog_stock"))))
    assert (rows[0]["SKU编码"], rows[0]["名称"]) == ("'+CUP", "'=cmd|' /C calc'!A0")


# --- stock levels and the ledger ----------------------------------------------------------------
def test_stock_level_export_is_scoped_to_the_warehouses():
    suzhou, tianjin = WarehouseFactory(code="suzhou", name="苏州仓"), WarehouseFactory(code="tianjin", name="天津仓")
    sku = SkuFactory(code="BASIN-01")
    stock(suzhou, sku, 5)
    stock(tianjin, sku, 7)
    everyone = by_header(read_xlsx(client_for(staff("finance")).get(reverse("admin:core_exportlog_stock"))))
    assert sorted((r["仓库编码"], r["在库"], r["可用"]) for r in everyone) == [("suzhou", 5, 5), ("tianjin", 7, 7)]
    user = scoped(staff("warehouse"), warehouses=[suzhou])
    mine = by_header(read_csv(client_for(user).get(reverse("admin:core_exportlog_stock"), {"format": "csv"})))
    assert [(r["仓库编码"], r["在库"]) for r in mine] == [("suzhou", "5")]
    assert ExportLog.objects.filter(kind="stock_levels").count() == 2


def test_ledger_export_for_a_period_is_scoped():
    suzhou, tianjin = WarehouseFactory(code="suzhou", name="苏州仓"), WarehouseFactory(code="tianjin", name="天津仓")
    sku = SkuFactory(code="BASIN-01")
    stock(suzhou, sku, 5)
    stock(tianjin, sku, 7)
    today = timezone.localdate()
    client = client_for(staff("supervisor"))
    url = reverse("admin:core_exportlog_ledger")
    rows = by_header(read_xlsx(client.get(url, {"start": today.isoformat(), "end": today.isoformat()})))
    assert sorted((r["仓库"], r["类型"], r["在库变动"]) for r in rows) == [("天津仓", "入库", 7), ("苏州仓", "入库", 5)]
    yesterday = (today - timedelta(days=1)).isoformat()
    assert by_header(read_xlsx(client.get(url, {"start": yesterday, "end": yesterday}))) == []
    user = scoped(staff("warehouse"), warehouses=[tianjin])
    rows = by_header(read_xlsx(client_for(user).get(url, {"start": today.isoformat(), "end": today.isoformat()})))
    assert [r["仓库"] for r in rows] == ["天津仓"]
    log = ExportLog.objects.filter(kind="stock_moves").last()
    assert log.filters == {"start": today.isoformat(), "end": today.isoformat()}
    bad = client.get(url, {"start": "nope"})
    assert bad.status_code == 302  # back to the page with a message, never a traceback


def test_export_page_lists_the_log(order):
    client = client_for(staff("customer_service"))
    client.get(reverse(EXPORT))
    page = client.get(reverse("admin:core_exportlog_changelist"))
    assert page.status_code == 200
    assert "导出库存" in page.content.decode()


# --- memory stays flat -------------------------------------------------------------------------
def test_xlsx_writer_memory_does_not_grow_with_rows(tmp_path):
    import tracemalloc

    def peak(n: int) -> int:
        table = exports.Table("orders", ["a", "b", "c"], ([i, f"row {i}", "=x"] for i in range(n)), False, {}, "t")
        tracemalloc.start()
        with open(tmp_path / f"{n}.xlsx", "wb") as out:
            exports.write_xlsx(table, out)
        _size, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, big = peak(2_000), peak(40_000)
    assert big < small * 2 + 512 * 1024, (small, big)
    book = openpyxl.load_workbook(tmp_path / "40000.xlsx", read_only=True)
    assert book.active.max_row == 40_001


# --- big xlsx exports run as a task with a download link -----------------------------------------
def test_a_big_xlsx_export_is_written_by_a_task_with_a_download_page(settings, tmp_path, shop, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_ASYNC_ROWS = 2
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: queued.append((func, args)))
    paid = [make_order(shop=shop) for _ in range(3)]
    make_order(shop=ShopFactory(code="jd-1"))
    user = staff("warehouse")  # masked
    client = client_for(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(reverse(EXPORT), {"shop__id__exact": shop.pk})
    assert response.status_code == 302
    log = ExportLog.objects.get()
    assert (log.status, log.includes_pii, log.user) == ("queued", False, user)
    assert queued == [("orders.exports.run_export", (log.pk, {"shop__id__exact": str(shop.pk)}))]
    page = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page and "下载文件" not in page
    exports.run_export(*queued[0][1])  # what the worker does
    exports.run_export(*queued[0][1])  # a retried task writes nothing twice
    log.refresh_from_db()
    assert (log.status, log.row_count) == ("done", 3)
    assert "下载文件" in client.get(response["Location"]).content.decode()
    download = client.get(reverse("admin:core_exportlog_download", args=[log.pk]))
    rows = by_header(read_xlsx(download))
    assert sorted(r["订单号"] for r in rows) == sorted(o.number for o in paid)  # the same filters
    assert {r["收件电话"] for r in rows} == {"138****8000"}  # masked in the task too
    # the file is for who asked for it
    assert client_for(staff("supervisor")).get(reverse("admin:core_exportlog_download", args=[log.pk])).status_code == 404
    # csv still streams at any size
    assert client.get(reverse(EXPORT), {"format": "csv"}).streaming
    # old files are purged, the log stays
    ExportLog.objects.filter(pk=log.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert exports.purge_export_files() == 1
    log.refresh_from_db()
    assert not log.file


def test_purge_jobs_are_scheduled():
    from io import StringIO

    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=StringIO())
    assert set(Schedule.objects.values_list("func", flat=True)) >= {
        "inventory.imports.purge_import_files", "orders.exports.purge_export_files"}


def test_a_big_ledger_export_is_rebuilt_by_the_task_with_the_same_period_and_scope(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_ASYNC_ROWS = 0
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: queued.append(args))
    suzhou, tianjin = WarehouseFactory(code="suzhou", name="苏州仓"), WarehouseFactory(code="tianjin", name="天津仓")
    sku = SkuFactory(code="BASIN-01")
    stock(suzhou, sku, 5)
    stock(tianjin, sku, 7)
    user = scoped(staff("warehouse"), warehouses=[tianjin])
    client = client_for(user)
    today = timezone.localdate().isoformat()
    response = client.get(reverse("admin:core_exportlog_ledger"), {"start": today, "end": today})
    assert response.status_code == 302
    log = ExportLog.objects.get()
    exports.run_export(log.pk, log.filters)
    log.refresh_from_db()
    rows = by_header(read_xlsx(client.get(reverse("admin:core_exportlog_download", args=[log.pk]))))
    assert [(r["仓库"], r["在库变动"]) for r in rows] == [("天津仓", 7)]
