"""Distributor orders (分销订单) through the admin's Excel import: who may import them (by hand
from the role descriptions: creating orders and marking them paid or cancelled is 主管's), the
preview that changes nothing, the orders the same path as a sync creates (lines, paid,
allocated, source import, the person as actor), re-importing updates instead of duplicating,
row-numbered errors that block the whole file, the shop from the form or the file, scope, and
all or nothing when the services refuse one order."""

from __future__ import annotations

import io
from decimal import Decimal

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from config.models import ImportJob
from inventory import imports
from orders.models import Order, OrderEvent, OrderLine, Platform
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, scoped, staff, stock

pytestmark = pytest.mark.django_db
UPLOAD = "admin:core_importjob_upload"
KIND = "distributor_orders"
HEADER = ["分销商订单号", "下单时间", "收货人", "电话", "省", "市", "区", "地址", "SKU编码", "数量", "单价", "运费"]
# Only 主管 creates orders from a file (客服 / 仓管 / 财务 / 运营 do not create or pay orders).
MAY_IMPORT = {"supervisor"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def world():
    wh = WarehouseFactory(code="suzhou", name="苏州仓")
    cup, pan = SkuFactory(code="CUP-1"), SkuFactory(code="PAN-1")
    stock(wh, cup, 50)
    stock(wh, pan, 50)
    return {"shop": ShopFactory(code="dist-a", platform=Platform.DISTRIBUTOR, name="分销商A"),
            "other": ShopFactory(code="dist-b", platform=Platform.DISTRIBUTOR, name="分销商B"),
            "taobao": ShopFactory(code="tb-1", platform=Platform.TAOBAO), "cup": cup, "pan": pan}


def xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def good_rows() -> list[list]:
    return [HEADER,
            ["D-001", "2026-03-01 10:30", "张三", 13800138000, "浙江省", "杭州市", "西湖区", "文三路 1 号", "CUP-1", 2, 12.5, 6],
            ["D-001", "2026-03-01 10:30", "张三", 13800138000, "浙江省", "杭州市", "西湖区", "文三路 1 号", "PAN-1", 1, "30", ""],
            ["D-002", "2026-03-01 11:00", "李四", "139 1234 5678", "江苏省", "苏州市", "", "人民路 8 号", "CUP-1", 1, 12.5, 0]]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client, data: bytes, shop: str = "dist-a", name: str = "dist.xlsx"):
    return client.post(reverse(UPLOAD), {"kind": KIND, "shop": shop, "file": SimpleUploadedFile(name, data)})


def job() -> ImportJob:
    return ImportJob.objects.order_by("-id").first()


def confirm(client, j):
    return client.post(reverse("admin:core_importjob_confirm", args=[j.pk]))


@pytest.mark.parametrize("role", ["customer_service", "warehouse", "finance", "operations", "supervisor"])
def test_who_may_import_distributor_orders(role, world):
    client = client_for(staff(role))
    response = upload(client, xlsx(good_rows()))
    template = client.get(reverse("admin:core_importjob_template", args=[KIND]))
    if role in MAY_IMPORT:
        assert response.status_code == 302 and job().status == "preview", job().errors
        assert template.status_code == 200
    else:
        assert response.status_code == 403 and not ImportJob.objects.exists()
        assert template.status_code == 403
    assert not Order.objects.exists()


def test_preview_changes_nothing_then_confirm_creates_the_orders_through_the_sync_path(world):
    user = staff("supervisor")
    client = client_for(user)
    assert upload(client, xlsx(good_rows())).status_code == 302
    j = job()
    assert (j.status, j.created_count, j.updated_count, j.options) == ("preview", 2, 0, {"shop": "dist-a"})
    assert [(p["action"], p["key"]) for p in j.preview] == [("新建订单", "dist-a · D-001"), ("新建订单", "dist-a · D-002")]
    assert "2 个商品 · 实付 ¥61.00" in j.preview[0]["changes"]
    assert not Order.objects.exists()  # the dry run wrote nothing

    confirm(client, j)
    j.refresh_from_db()
    assert j.status == "done", j.errors
    one = Order.objects.get(shop=world["shop"], platform_order_id="D-001")
    assert (one.status, one.paid_amount, one.shipping_fee, one.receiver_phone) == (
        "allocated", Decimal("61.00"), Decimal("6.00"), "13800138000")
    assert sorted(OrderLine.objects.filter(order=one).values_list("sku__code", "quantity")) == [("CUP-1", 2), ("PAN-1", 1)]
    two = Order.objects.get(platform_order_id="D-002")
    assert (two.receiver_phone, two.province, two.city) == ("13912345678", "江苏省", "苏州市")
    created = OrderEvent.objects.filter(order=one).order_by("id").first()
    assert (created.source, created.actor_label) == ("import", user.get_username())

    # The same file again: updates, never duplicates.
    upload(client, xlsx(good_rows()))
    again = job()
    assert (again.created_count, again.updated_count) == (0, 2)
    assert {p["action"] for p in again.preview} == {"更新订单"}
    confirm(client, again)
    again.refresh_from_db()
    assert again.status == "done" and Order.objects.count() == 2


def test_bad_rows_are_reported_by_row_number_and_nothing_is_stored(world):
    rows = good_rows()
    rows[1][3] = "12345"  # not a phone
    rows[2][9] = 0  # quantity
    rows[2][2] = "王五"  # the same order's receiver differs between its rows
    rows.append(["D-003", "昨天", "赵六", "13700000000", "浙江省", "杭州市", "", "路 1 号", "CUP-1", 1, -5, ""])
    client = client_for(staff("supervisor"))
    upload(client, xlsx(rows))
    j = job()
    assert j.status == "invalid"
    found = {(e["row"], e["column"]) for e in j.errors}
    assert {(2, "电话"), (3, "数量"), (3, "收货人"), (5, "下单时间"), (5, "单价")} <= found
    assert not Order.objects.exists()


def test_the_shop_can_come_from_the_file_and_must_be_a_distributor_in_scope(world):
    rows = [["店铺编码", *good_rows()[0]]] + [["dist-b", *r] for r in good_rows()[1:]]
    rows[3][0] = "dist-a"
    client = client_for(staff("supervisor"))
    upload(client, xlsx(rows), shop="")
    j = job()
    assert j.status == "preview", j.errors
    assert [p["key"] for p in j.preview] == ["dist-b · D-001", "dist-a · D-002"]

    rows[1][0] = rows[2][0] = "tb-1"  # a Taobao shop is not a distributor
    upload(client, xlsx(rows), shop="")
    assert {(e["row"], e["column"]) for e in job().errors} == {(2, "店铺编码"), (3, "店铺编码")}

    upload(client, xlsx(good_rows()), shop="")  # no column, no shop chosen
    assert job().status == "invalid" and "请在文件中填写店铺编码" in job().errors[0]["message"]
    upload(client, xlsx(good_rows()), shop="nope")
    assert job().status == "invalid" and "nope" in job().errors[0]["message"]

    lead = scoped(staff("supervisor", "lead-b"), shops=[world["other"]])
    upload(client_for(lead), xlsx(good_rows()), shop="dist-a")  # not their shop: reads as unknown
    assert job().status == "invalid" and "不在你的权限范围内" in job().errors[0]["message"]
    assert not Order.objects.exists()


def test_one_order_refused_by_the_services_rolls_the_whole_file_back(world, monkeypatch):
    from orders import ingest

    real = ingest.ingest_payloads

    def one_refused(**kwargs):
        report = real(**kwargs)
        report.failures.append((2, "测试:服务拒绝了这个订单"))
        return report

    monkeypatch.setattr(ingest, "ingest_payloads", one_refused)
    client = client_for(staff("supervisor"))
    upload(client, xlsx(good_rows()))
    confirm(client, job())
    j = job()
    assert j.status == "failed" and "第 4 行(订单 D-002)" in j.errors[0]["message"]
    assert not Order.objects.exists() and not OrderEvent.objects.exists()


def test_template_columns_and_the_upload_form_box():
    book = openpyxl.load_workbook(io.BytesIO(imports.template_xlsx(KIND)))
    headers = [c.value for c in book["数据"][1]]
    assert headers[:2] == ["店铺编码", "分销商订单号"] and "SKU编码" in headers
    imports.read_table(imports.template_xlsx(KIND), "t.xlsx", imports.KINDS[KIND])  # passes its own check
    page = client_for(staff("supervisor")).get(reverse(UPLOAD)).content.decode()
    assert 'name="shop"' in page
    assert 'name="shop"' not in client_for(staff("warehouse")).get(reverse(UPLOAD)).content.decode()
