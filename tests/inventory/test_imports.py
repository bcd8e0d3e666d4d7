"""Excel imports in the admin: who may import what (written by hand from the role
descriptions), a good file per kind, the dry run that changes nothing, row-numbered errors
that block the whole file, every kind of bad file, warehouse/shop scope, big files as a task."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.actors import Actor, Source
from config.models import ImportJob
from inventory import imports, services
from inventory.audit import audit
from inventory.models import Sku, SkuMapping, StockLevel, StockMove
from orders import services as order_services
from orders.models import HoldReason, OrderStatus
from tests.factories import SYSTEM, ShopFactory, SkuFactory, SkuMappingFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db

UPLOAD = "admin:core_importjob_upload"
ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]

# Who may import what, from the role descriptions (not from config/roles.py):
# counting stock is a stock operation: 仓管, 运营, 主管; 客服 and 财务 do not move stock.
# SKU master data, mappings and safety stock are configuration: 运营 and 主管 only.
MAY_IMPORT = {
    "stock_count": {"warehouse", "operations", "supervisor"},
    "sku": {"operations", "supervisor"},
    "sku_mapping": {"operations", "supervisor"},
    "safety_stock": {"operations", "supervisor"},
}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def xlsx(rows: list[list], sheet_title: str = "数据") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = sheet_title
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client, kind: str, data: bytes, name: str = "file.xlsx"):
    return client.post(reverse(UPLOAD), {"kind": kind, "file": SimpleUploadedFile(name, data)})


def last_job() -> ImportJob:
    return ImportJob.objects.order_by("-id").first()


def confirm(client, job):
    return client.post(reverse("admin:core_importjob_confirm", args=[job.pk]))


@pytest.fixture
def suzhou():
    return WarehouseFactory(code="suzhou", name="苏州仓")


@pytest.fixture
def tianjin():
    return WarehouseFactory(code="tianjin", name="天津仓")


@pytest.fixture
def sku():
    return SkuFactory(code="BASIN-01", name="折叠盆 大号", category="折叠盆")


@pytest.fixture
def shop():
    return ShopFactory(code="demo-taobao")


def good_file(kind: str) -> bytes:
    return xlsx({
        "stock_count": [["仓库", "SKU编码", "盘点数量", "备注"], ["suzhou", "BASIN-01", 7, "月末盘点"]],
        "sku": [["SKU编码", "名称", "类目", "安全库存"], ["NEW-01", "新品 杯子", "杯具", 3], ["BASIN-01", "折叠盆 特大号", "", ""]],
        "sku_mapping": [["店铺编码", "平台SKU ID", "SKU编码"], ["demo-taobao", "TB-1", "BASIN-01"]],
        "safety_stock": [["SKU编码", "安全库存", "应急保留"], ["BASIN-01", 12, 2]],
    }[kind])


def state() -> tuple:
    """Everything an import could change."""
    return (
        sorted(StockLevel.objects.values_list("warehouse_id", "sku_id", "on_hand", "reserved")),
        StockMove.objects.count(),
        sorted(Sku.objects.values_list("code", "name", "category", "safety_stock", "emergency_buffer")),
        sorted(SkuMapping.objects.values_list("shop_id", "platform_sku_id", "sku_id")),
    )


# --- who may import what ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(MAY_IMPORT))
@pytest.mark.parametrize("role", ROLES)
def test_role_import_matrix(role, kind, suzhou, sku, shop):
    stock(suzhou, sku, 5)
    user = staff(role)
    client = client_for(user)
    before = state()
    response = upload(client, kind, good_file(kind))
    template = client.get(reverse("admin:core_importjob_template", args=[kind]))
    if role in MAY_IMPORT[kind]:
        assert response.status_code == 302
        job = last_job()
        assert job.status == ImportJob.Status.PREVIEW, job.errors
        assert state() == before  # the preview changed nothing
        confirm(client, job)
        job.refresh_from_db()
        assert job.status == ImportJob.Status.DONE
        assert job.user == user
        assert state() != before
        assert template.status_code == 200
    else:
        assert response.status_code == 403
        assert not ImportJob.objects.exists()
        assert state() == before
        assert template.status_code == 403
        with pytest.raises(imports.NotPermitted):
            imports.start_import(kind=kind, upload=SimpleUploadedFile("f.xlsx", good_file(kind)),
                                 actor=Actor.of(user, Source.IMPORT))


@pytest.mark.parametrize("role", ["customer_service", "finance"])
def test_a_role_without_adjust_stock_cannot_even_apply_a_stocktake_through_the_bulk_service(role, suzhou, sku):
    from django.db import transaction

    actor = Actor.of(staff(role), Source.IMPORT)
    with pytest.raises(imports.NotPermitted), transaction.atomic():
        imports.stock_count_bulk(counts=[(suzhou, sku, 3, "x")], actor=actor)
    assert not StockMove.objects.exists()


# --- a good file per kind ---------------------------------------------------------------------
def test_stock_count_import_writes_ledger_moves_as_the_importing_user(suzhou, tianjin, sku):
    other = SkuFactory(code="CUP-01")
    stock(suzhou, sku, 10)
    stock(tianjin, sku, 4)
    order = make_order(lines=[(sku, 3)])
    order_services.order_allocate(order=order, actor=SYSTEM)  # 3 reserved somewhere
    user = staff("warehouse")
    client = client_for(user)
    upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 12],
                                        ["天津仓", "BASIN-01", 4], ["苏州仓", "CUP-01", 6]]))
    job = last_job()
    assert job.status == ImportJob.Status.PREVIEW
    assert (job.created_count, job.updated_count, job.unchanged_count) == (1, 1, 1)
    confirm(client, job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    pool = StockLevel.objects.get(warehouse=suzhou, sku=sku)
    assert pool.on_hand == 12
    assert StockLevel.objects.get(warehouse=suzhou, sku=other).on_hand == 6
    assert StockLevel.objects.get(warehouse=tianjin, sku=sku).on_hand == 4
    moves = list(StockMove.objects.filter(kind=StockMove.Kind.STOCKTAKE).order_by("id"))
    assert [(m.stock_level.sku.code, m.on_hand_delta, m.on_hand_after) for m in moves] == [("BASIN-01", 2, 12), ("CUP-01", 6, 6)]
    assert {(m.actor_id, m.source) for m in moves} == {(user.pk, Source.IMPORT)}
    assert audit() == []  # every pool still equals the sum of its moves


def test_sku_master_import_creates_and_updates(sku):
    client = client_for(staff("operations"))
    upload(client, "sku", xlsx([["SKU编码", "名称", "类目", "条码", "安全库存", "免税", "启用"],
                                ["NEW-01", "新品 杯子", "杯具", 6901234567890, 3, "否", "是"],
                                ["BASIN-01", "折叠盆 特大号", None, None, None, "是", None]]))
    job = last_job()
    assert job.status == ImportJob.Status.PREVIEW, job.errors
    assert not Sku.objects.filter(code="NEW-01").exists()
    confirm(client, job)
    new = Sku.objects.get(code="NEW-01")
    assert (new.name, new.category, new.barcode, new.safety_stock, new.tax_exempt, new.is_active) == (
        "新品 杯子", "杯具", "6901234567890", 3, False, True)
    sku.refresh_from_db()
    assert (sku.name, sku.category, sku.tax_exempt) == ("折叠盆 特大号", "折叠盆", True)  # blank = unchanged


def test_sku_mapping_import_creates_updates_and_releases_orders_waiting_for_it(sku, shop, suzhou, django_capture_on_commit_callbacks):
    other = SkuFactory(code="CUP-01")
    SkuMappingFactory(shop=shop, platform_sku_id="TB-OLD", sku=other)
    stock(suzhou, sku, 10)
    from decimal import Decimal

    from orders.platforms.base import NormalizedLine, NormalizedOrder

    held = order_services.order_create(shop=shop, data=NormalizedOrder(
        platform_order_id="T-WAIT", paid=True, paid_amount=Decimal("10"), goods_amount=Decimal("10"),
        lines=[NormalizedLine(title="盆", quantity=1, unit_price=Decimal("10"), platform_sku_id="TB-1")]), actor=SYSTEM)
    assert held.hold_reason == HoldReason.SKU_UNMAPPED
    client = client_for(staff("operations"))
    upload(client, "sku_mapping", xlsx([["店铺编码", "平台SKU ID", "SKU编码"], ["demo-taobao", "TB-1", "BASIN-01"],
                                        ["demo-taobao", "TB-OLD", "BASIN-01"]]))
    job = last_job()
    assert (job.created_count, job.updated_count) == (1, 1)
    with django_capture_on_commit_callbacks(execute=True):
        confirm(client, job)
    assert dict(SkuMapping.objects.values_list("platform_sku_id", "sku__code")) == {"TB-1": "BASIN-01", "TB-OLD": "BASIN-01"}
    held.refresh_from_db()
    assert held.hold_reason != HoldReason.SKU_UNMAPPED
    assert held.lines.get().sku == sku


def test_safety_stock_import(sku):
    client = client_for(staff("supervisor"))
    upload(client, "safety_stock", xlsx([["SKU编码", "安全库存", "应急保留"], ["BASIN-01", 12, 2]]))
    confirm(client, last_job())
    sku.refresh_from_db()
    assert (sku.safety_stock, sku.emergency_buffer) == (12, 2)


def test_csv_in_gbk_is_read_too(suzhou, sku):
    client = client_for(staff("warehouse"))
    upload(client, "stock_count", "仓库,SKU编码,盘点数量\n苏州仓,BASIN-01,5\n".encode("gb18030"), name="count.csv")
    job = last_job()
    assert job.status == ImportJob.Status.PREVIEW, job.errors
    confirm(client, job)
    assert StockLevel.objects.get(warehouse=suzhou, sku=sku).on_hand == 5


# --- the dry run, the preview page, history -----------------------------------------------------
def test_dry_run_preview_shows_the_changes_and_changes_nothing(suzhou, sku):
    stock(suzhou, sku, 10)
    client = client_for(staff("warehouse"))
    before = state()
    response = upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 8]]))
    assert state() == before
    page = client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "在库 10 → 8(-2)" in text and "确认导入" in text
    assert 'http-equiv="refresh"' not in text  # nothing running: no refresh
    job = last_job()
    assert (job.file_name, job.total_rows, job.kind) == ("file.xlsx", 1, "stock_count")
    assert job.file.name.startswith("imports/")


def test_cancelled_preview_can_no_longer_be_confirmed(suzhou, sku):
    client = client_for(staff("warehouse"))
    upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 8]]))
    job = last_job()
    client.post(reverse("admin:core_importjob_cancel", args=[job.pk]))
    confirm(client, job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    assert not StockMove.objects.exists()


def test_only_the_uploader_may_confirm(suzhou, sku):
    upload(client_for(staff("warehouse")), "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 8]]))
    job = last_job()
    other = client_for(staff("supervisor"))
    confirm(other, job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEW
    assert not StockMove.objects.exists()


def test_history_lists_own_jobs(suzhou, sku):
    upload(client_for(staff("warehouse")), "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 8]]))
    mine = client_for(staff("warehouse", "wh2"))
    upload(mine, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 9]]), name="mine.xlsx")
    page = mine.get(reverse("admin:core_importjob_changelist"))
    assert page.status_code == 200
    assert "mine.xlsx" in page.content.decode() and "file.xlsx" not in page.content.decode()
    assert client_for(staff("customer_service")).get(reverse("admin:core_importjob_changelist")).status_code == 403


def test_data_changed_since_the_preview_refuses_the_whole_file(suzhou, sku):
    stock(suzhou, sku, 10)
    client = client_for(staff("warehouse"))
    upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 2]]))
    job = last_job()
    assert job.status == ImportJob.Status.PREVIEW
    order_services.order_allocate(order=make_order(lines=[(sku, 5)]), actor=SYSTEM)  # now 5 reserved
    before = state()
    confirm(client, job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.errors[0]["row"] == 2 and "已预占 5" in job.errors[0]["message"]
    assert state() == before


# --- bad rows: numbered, and nothing applied ----------------------------------------------------
def test_bad_rows_are_listed_with_row_numbers_and_nothing_is_applied(suzhou, tianjin, sku):
    stock(suzhou, sku, 10)
    client = client_for(staff("warehouse"))
    before = state()
    upload(client, "stock_count", xlsx([
        ["仓库", "SKU编码", "盘点数量"],
        ["suzhou", "BASIN-01", 8],  # row 2: fine
        ["suzhou", "NOPE-9", 1],  # 3: unknown SKU
        ["beijing", "BASIN-01", 1],  # 4: unknown warehouse
        ["tianjin", "BASIN-01", -3],  # 5: negative
        ["tianjin", "BASIN-01", 2.5],  # 6: not an integer
        ["tianjin", "BASIN-01", "十个"],  # 7: not a number
        ["苏州仓", "BASIN-01", 9],  # 8: duplicate of row 2 (by name)
        [None, None, None],  # 9: empty, skipped
        ["tianjin", None, 4],  # 10: missing SKU
    ]))
    job = last_job()
    assert job.status == ImportJob.Status.INVALID
    errors = {(e["row"], e["column"]): e["message"] for e in job.errors}
    assert set(errors) == {(3, "SKU编码"), (4, "仓库"), (5, "盘点数量"), (6, "盘点数量"), (7, "盘点数量"), (8, "SKU编码"), (10, "SKU编码")}
    assert "NOPE-9" in errors[(3, "SKU编码")] and "不存在" in errors[(3, "SKU编码")]
    assert "beijing" in errors[(4, "仓库")]
    assert "负数" in errors[(5, "盘点数量")]
    assert "整数" in errors[(6, "盘点数量")] and "整数" in errors[(7, "盘点数量")]
    assert "第 2 行重复" in errors[(8, "SKU编码")]
    assert errors[(10, "SKU编码")] == "必填"
    page = client.get(reverse("admin:core_importjob_status", args=[job.pk])).content.decode()
    assert "整个文件未导入" in page and "确认导入" not in page
    confirm(client, job)  # posted by hand anyway
    assert state() == before


def test_sku_rows_errors(sku):
    client = client_for(staff("operations"))
    upload(client, "sku", xlsx([["SKU编码", "名称", "安全库存", "免税"], ["NEW-1", None, 1, "否"], ["NEW-2", "x", 1, "也许"],
                                ["NEW-3", "y" * 201, 1, "否"], ["NEW-4", "ok", 1, "否"], ["NEW-4", "again", 1, "否"]]))
    job = last_job()
    assert [(e["row"], e["column"]) for e in job.errors] == [(2, "名称"), (3, "免税"), (4, "名称"), (6, "SKU编码")]
    assert not Sku.objects.filter(code__startswith="NEW").exists()


def test_counting_below_reserved_is_a_row_error(suzhou, sku):
    stock(suzhou, sku, 10)
    order_services.order_allocate(order=make_order(lines=[(sku, 4)]), actor=SYSTEM)
    client = client_for(staff("warehouse"))
    upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 3]]))
    job = last_job()
    assert job.errors == [{"row": 2, "column": "盘点数量", "message": job.errors[0]["message"]}]
    assert "已预占 4" in job.errors[0]["message"]


# --- bad files: a clear answer, never a traceback ------------------------------------------------
BAD_FILES = {
    "unknown column": (xlsx([["仓库", "SKU编码", "盘点数量", "库位"], ["suzhou", "BASIN-01", 1, "A1"]]), "file.xlsx", "无法识别的列:库位"),
    "missing columns": (xlsx([["仓库", "数量"], ["suzhou", 1]]), "file.xlsx", "缺少必填列:SKU编码、盘点数量"),
    "the protected status": (xlsx([["仓库", "SKU编码", "盘点数量", "状态"], ["suzhou", "BASIN-01", 1, "shipped"]]), "file.xlsx", "无法识别的列:状态"),
    "duplicate column": (xlsx([["仓库", "SKU编码", "盘点数量", "盘点数量"], ["suzhou", "BASIN-01", 1, 2]]), "file.xlsx", "重复的列"),
    "empty file": (b"", "file.xlsx", "文件为空"),
    "empty sheet": (xlsx([]), "file.xlsx", "文件为空"),
    "header only": (xlsx([["仓库", "SKU编码", "盘点数量"]]), "file.xlsx", "没有数据行"),
    "not a spreadsheet": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "photo.xlsx", "不是电子表格"),
    "a pdf": (b"%PDF-1.4 hello", "report.pdf", "不是电子表格"),
    "a broken xlsx": (b"PK\x03\x04" + b"garbage" * 20, "file.xlsx", "无法读取"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_get_a_clear_answer(case, suzhou, sku):
    data, name, expected = BAD_FILES[case]
    client = client_for(staff("warehouse"))
    response = upload(client, "stock_count", data, name=name)
    job = last_job()
    assert response.status_code == 302
    assert job.status == ImportJob.Status.INVALID
    assert expected in job.errors[0]["message"], job.errors
    page = client.get(response["Location"])
    assert page.status_code == 200 and expected in page.content.decode()
    assert not StockMove.objects.filter(kind=StockMove.Kind.STOCKTAKE).exists()


def test_a_file_too_large_is_refused_before_reading(settings, suzhou, sku):
    settings.IMPORT_MAX_BYTES = 1000
    client = client_for(staff("warehouse"))
    upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"]] + [["suzhou", "BASIN-01", i] for i in range(500)]))
    job = last_job()
    assert job.status == ImportJob.Status.INVALID
    assert "文件过大" in job.errors[0]["message"]
    assert not job.file  # not even stored


def test_read_table_refuses_empty_bytes_too():
    with pytest.raises(imports.ImportFileError, match="文件为空"):
        imports.read_table(b"", "x.xlsx", imports.KINDS["stock_count"])


# --- scope -----------------------------------------------------------------------------------------
def test_a_suzhou_scoped_user_cannot_count_tianjin(suzhou, tianjin, sku):
    stock(tianjin, sku, 5)
    user = scoped(staff("warehouse"), warehouses=[suzhou])
    client = client_for(user)
    before = state()
    upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 3], ["天津仓", "BASIN-01", 1]]))
    job = last_job()
    assert job.status == ImportJob.Status.INVALID
    assert job.errors == [{"row": 3, "column": "仓库", "message": "仓库“天津仓”不在你的权限范围内"}]
    assert state() == before
    with pytest.raises(imports.NotPermitted):
        from django.db import transaction

        with transaction.atomic():
            imports.stock_count_bulk(counts=[(tianjin, sku, 1, "x")], actor=Actor.of(user, Source.IMPORT))


def test_a_shop_scoped_user_cannot_map_another_shop(sku, shop):
    mine = ShopFactory(code="mine")
    user = scoped(staff("operations"), shops=[mine])
    client = client_for(user)
    upload(client, "sku_mapping", xlsx([["店铺编码", "平台SKU ID", "SKU编码"], ["mine", "P1", "BASIN-01"], ["demo-taobao", "P2", "BASIN-01"]]))
    job = last_job()
    assert [(e["row"], e["column"]) for e in job.errors] == [(3, "店铺编码")]
    assert not SkuMapping.objects.exists()


# --- big files run as a task ------------------------------------------------------------------
def test_a_big_file_is_checked_and_applied_by_a_task_with_a_progress_page(settings, suzhou, sku, monkeypatch,
                                                                         django_capture_on_commit_callbacks):
    settings.IMPORT_ASYNC_ROWS = 2
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: queued.append((func, args)))
    others = [SkuFactory(code=f"S-{i}") for i in range(3)]
    client = client_for(staff("warehouse"))
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"]] + [["suzhou", s.code, 4] for s in others]))
    job = last_job()
    assert job.is_async and job.status == ImportJob.Status.VALIDATING
    assert queued == [("inventory.imports.validate_job", (job.pk,))]
    page = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page and "0 / 3" in page  # the progress bar, no JS needed
    imports.validate_job(job.pk)  # what the worker does
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEW and not StockMove.objects.filter(kind="stocktake").exists()
    with django_capture_on_commit_callbacks(execute=True):
        confirm(client, job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.QUEUED
    assert queued[-1] == ("inventory.imports.apply_job", (job.pk,))
    imports.apply_job(job.pk)
    imports.apply_job(job.pk)  # a retried task applies nothing twice
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert StockMove.objects.filter(kind="stocktake").count() == 3
    assert sorted(StockLevel.objects.filter(warehouse=suzhou).values_list("on_hand", flat=True)) == [4, 4, 4]


# --- the bulk stocktake is the per-row stocktake, in bulk ------------------------------------------
def test_bulk_stocktake_matches_the_per_row_service(suzhou, tianjin, monkeypatch, django_capture_on_commit_callbacks):
    from django.db import transaction

    from config import notify

    alerts = []
    monkeypatch.setattr(notify, "stock_alert", lambda pool_id, available, threshold: alerts.append(
        (StockLevel.objects.get(pk=pool_id).sku.code.replace("T-", "B-"), available, threshold)))
    skus = [SkuFactory(code=f"B-{i}", safety_stock=5) for i in range(4)]
    counts = [(suzhou, skus[0], 3), (suzhou, skus[1], 0), (tianjin, skus[2], 9), (tianjin, skus[3], 2)]
    for s in skus:
        stock(suzhou, s, 2)
    actor = Actor.of(staff("warehouse"), Source.IMPORT)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        imports.stock_count_bulk(counts=[(w, s, n, "盘点") for w, s, n in counts], actor=actor)
    bulk_alerts, alerts[:] = sorted(alerts), []
    bulk = sorted(StockMove.objects.filter(kind="stocktake").values_list(
        "stock_level__warehouse__code", "stock_level__sku__code", "on_hand_delta", "on_hand_after", "reason", "source"))
    bulk_levels = sorted(StockLevel.objects.values_list("warehouse__code", "sku__code", "on_hand"))
    # The same counts through services.stock_count, on twin SKUs in the same starting state.
    twins = [SkuFactory(code=f"T-{i}", safety_stock=5) for i in range(4)]
    for s in twins:
        stock(suzhou, s, 2)
    with django_capture_on_commit_callbacks(execute=True):
        for (w, _s, n), twin in zip(counts, twins):
            services.stock_count(warehouse=w, sku=twin, counted=n, actor=actor, reason="盘点")
    assert sorted(alerts) == bulk_alerts and len(bulk_alerts) == 3  # counts 3, 0 and 2 are below safety stock 5
    single = sorted(StockMove.objects.filter(kind="stocktake", stock_level__sku__code__startswith="T-").values_list(
        "stock_level__warehouse__code", "stock_level__sku__code", "on_hand_delta", "on_hand_after", "reason", "source"))
    assert [(w, c.replace("T-", "B-"), *rest) for w, c, *rest in single] == bulk
    single_levels = sorted(StockLevel.objects.filter(sku__code__startswith="T-").values_list("warehouse__code", "sku__code", "on_hand"))
    assert [(w, c.replace("T-", "B-"), n) for w, c, n in single_levels] == bulk_levels
    assert audit() == []


# --- templates and purging -------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(MAY_IMPORT))
def test_template_has_chinese_headers_an_example_row_and_notes(kind):
    book = openpyxl.load_workbook(io.BytesIO(imports.template_xlsx(kind)))
    assert book.sheetnames == ["数据", "填写说明"]
    data, notes = book["数据"], book["填写说明"]
    headers = [c.value for c in data[1]]
    assert headers == [c.header for c in imports.KINDS[kind].columns]
    assert all(v not in (None, "") for v in [c.value for c in data[2]][:1])  # an example row
    assert [c.value for c in notes[1]] == ["列名", "是否必填", "类型", "说明"]
    assert [notes.cell(row=i + 2, column=1).value for i in range(len(headers))] == headers
    # the template itself passes its own column check
    imports.read_table(imports.template_xlsx(kind), "t.xlsx", imports.KINDS[kind])


def test_purge_deletes_old_files_but_keeps_the_history(suzhou, sku):
    upload(client_for(staff("warehouse")), "stock_count", xlsx([["仓库", "SKU编码", "盘点数量"], ["suzhou", "BASIN-01", 8]]))
    job = last_job()
    path = job.file.path
    assert imports.purge_import_files() == 0
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=31))
    assert imports.purge_import_files() == 1
    job.refresh_from_db()
    import os

    assert not os.path.exists(path) and not job.file and job.file_purged_at
    assert ImportJob.objects.filter(pk=job.pk).exists()


def test_purge_is_scheduled():
    from io import StringIO

    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=StringIO())
    assert Schedule.objects.get(func="inventory.imports.purge_import_files").schedule_type == Schedule.CRON


def test_mapping_import_sets_the_platform_item_id(sku, shop):
    SkuMappingFactory(shop=shop, platform_sku_id="TB-1", sku=sku)
    client = client_for(staff("operations"))
    upload(client, "sku_mapping", xlsx([["店铺编码", "平台SKU ID", "SKU编码", "平台商品ID"],
                                        ["demo-taobao", "TB-1", "BASIN-01", "6012345678"],
                                        ["demo-taobao", "TB-2", "BASIN-01", None]]))
    job = last_job()
    assert (job.created_count, job.updated_count) == (1, 1)
    confirm(client, job)
    assert dict(SkuMapping.objects.values_list("platform_sku_id", "platform_item_id")) == {"TB-1": "6012345678", "TB-2": ""}


@pytest.mark.parametrize("kind", ["safety_stock", "sku"])
def test_sku_imports_mark_the_skus_for_the_channel_stock_push(kind, sku, django_capture_on_commit_callbacks):
    from orders.models import StockPushDirty

    client = client_for(staff("operations"))
    upload(client, kind, good_file(kind))
    with django_capture_on_commit_callbacks(execute=True):
        confirm(client, last_job())
    assert sku.pk in set(StockPushDirty.objects.values_list("sku_id", flat=True))
