"""A warehouse clerk imports a stock count in a real browser: upload a small xlsx, see the
dry-run preview (nothing changed yet), confirm, see the result. Screenshots of each step go
to test-results/e2e/; the pages must log no console errors."""

from __future__ import annotations

import io

import openpyxl
import pytest

from config.models import ImportJob
from inventory.audit import audit
from inventory.models import StockLevel, StockMove
from tests.factories import SkuFactory, WarehouseFactory, staff, stock

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def login(page, base_url: str, username: str, password: str = "pass-1234") -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def count_file(path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "数据"
    for row in (["仓库", "SKU编码", "盘点数量", "备注"], ["suzhou", "E2E-COUNT", 7, "月末盘点"]):
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    path.write_bytes(buf.getvalue())


def test_warehouse_clerk_imports_a_stock_count_with_a_preview(live_server, transactional_db, browser_page,
                                                              results_dir, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    warehouse = WarehouseFactory(code="suzhou", name="苏州仓")
    sku = SkuFactory(code="E2E-COUNT", name="折叠盆 盘点")
    stock(warehouse, sku, 5)
    clerk = staff("warehouse", "e2e-keeper")
    upload = tmp_path / "盘点.xlsx"
    count_file(upload)

    page = browser_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"{msg.location.get('url', '')}: {msg.text}")
            if msg.type == "error" and "favicon" not in msg.location.get("url", "") else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    login(page, live_server.url, clerk.username)
    page.goto(f"{live_server.url}/admin/core/importjob/new/")
    page.select_option("#id_kind", "stock_count")
    page.set_input_files("#id_file", str(upload))
    page.screenshot(path=str(results_dir / "import_1_upload.png"), full_page=True)
    page.click("input[type=submit][value='上传并预览']")
    page.wait_for_url("**/admin/core/importjob/*/status/")

    # The dry run: the change is shown, nothing is applied yet.
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.PREVIEW, job.errors
    assert page.locator(".job-status").inner_text().strip() == "待确认"
    preview = page.locator("table.import-preview").inner_text()
    assert "E2E-COUNT" in preview and "7" in preview
    assert StockLevel.objects.get(sku=sku).on_hand == 5
    page.screenshot(path=str(results_dir / "import_2_preview.png"), full_page=True)

    page.click("input[name=confirm]")
    page.wait_for_url(f"**/admin/core/importjob/{job.pk}/status/")
    assert "导入完成" in page.locator("ul.messagelist").inner_text()
    assert page.locator(".job-status").inner_text().strip() == "已完成"
    page.screenshot(path=str(results_dir / "import_3_done.png"), full_page=True)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.user == clerk
    assert StockLevel.objects.get(sku=sku).on_hand == 7
    assert StockMove.objects.filter(stock_level__sku=sku, kind=StockMove.Kind.STOCKTAKE, actor=clerk).count() == 1
    assert audit() == []
    assert errors == []
