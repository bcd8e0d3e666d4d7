"""Bulk ship by importing an Excel of (订单号, 快递公司, 运单号[, 发货仓]): a good file ships
every order (parcels, order status, stock consumed, timeline events); the dry run changes
nothing; every kind of bad row is reported with its row number and nothing is applied;
who may import it (written by hand from the role descriptions) and scope."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from config.actors import Actor, Source
from config.errors import NotPermitted
from config.models import ImportJob
from inventory import imports
from inventory.models import StockLevel
from orders import services
from orders.models import OrderEvent, Shipment
from tests.factories import SYSTEM, SkuFactory, WarehouseFactory, make_order, scoped, staff, stock

pytestmark = pytest.mark.django_db

KIND = "tracking"
HEAD = ["订单号", "快递公司", "运单号", "发货仓"]
ROLES = ["customer_service", "warehouse", "finance", "operations", "supervisor"]
# Shipping is a warehouse step: 仓管 ships, 主管 may do everything. 客服 (hold/release/cancel/
# complete), 财务 (read-only) and 运营 (allocate/hold/release, config, stock) may not ship.
MAY_SHIP = {"warehouse", "supervisor"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@pytest.fixture
def split_world():
    """A packed order reserved 2 in 甲仓 and 1 in 乙仓, and a packed single-warehouse order."""
    sku = SkuFactory(code="SKU-S")
    a = WarehouseFactory(code="wa", name="甲仓", priority=1)
    b = WarehouseFactory(code="wb", name="乙仓", priority=2)
    stock(a, sku, 3)
    stock(b, sku, 1)
    one = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM),
                              actor=SYSTEM)
    split = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 3)]), actor=SYSTEM),
                                actor=SYSTEM)
    return {"sku": sku, "a": a, "b": b, "one": one, "split": split}


def pools(sku) -> dict[str, tuple[int, int]]:
    return {p.warehouse.code: (p.on_hand, p.reserved)
            for p in StockLevel.objects.filter(sku=sku).select_related("warehouse")}


def start(user, rows: list[list]) -> ImportJob:
    return imports.start_import(kind=KIND, upload=SimpleUploadedFile("ship.xlsx", xlsx(rows)),
                                actor=Actor.of(user, Source.IMPORT))


def good_rows(w) -> list[list]:
    return [HEAD,
            [w["one"].number, "SF", "SF1001", ""],
            [w["split"].number, "yto", "YT2001", "wa"],
            [w["split"].number, "ZTO", "ZT3001", "乙仓"]]


def test_split_world_is_what_the_tests_think(split_world):
    w = split_world
    assert w["one"].status == "packed" and w["split"].status == "packed"
    assert pools(w["sku"]) == {"wa": (3, 3), "wb": (1, 1)}


def test_a_good_file_ships_every_order(split_world):
    w = split_world
    user = staff("warehouse")
    job = start(user, good_rows(w))
    assert job.status == ImportJob.Status.PREVIEW, job.errors
    job = imports.confirm_import(job=job, actor=Actor.of(user, Source.IMPORT))
    assert job.status == ImportJob.Status.DONE and job.updated_count == 3

    w["one"].refresh_from_db()
    w["split"].refresh_from_db()
    assert w["one"].status == "shipped" and w["split"].status == "shipped"
    got = sorted((s.order.number, s.warehouse.code, s.carrier, s.tracking_number, s.status,
                  sorted(l.quantity for l in s.lines.all())) for s in Shipment.objects.all())
    assert got == sorted([(w["one"].number, "wa", "SF", "SF1001", "shipped", [1]),
                          (w["split"].number, "wa", "YTO", "YT2001", "shipped", [2]),
                          (w["split"].number, "wb", "ZTO", "ZT3001", "shipped", [1])])
    # Stock consumed: on hand and reserved both went down by what left.
    assert pools(w["sku"]) == {"wa": (0, 0), "wb": (0, 0)}
    events = OrderEvent.objects.filter(kind__in=["shipped", "partially_shipped"]).order_by("id")
    assert [(e.order_id, e.kind, e.source, e.actor_id, e.data["tracking_number"]) for e in events] == [
        (w["one"].pk, "shipped", Source.IMPORT, user.pk, "SF1001"),
        (w["split"].pk, "partially_shipped", Source.IMPORT, user.pk, "YT2001"),
        (w["split"].pk, "shipped", Source.IMPORT, user.pk, "ZT3001"),
    ]


def test_the_dry_run_shows_each_row_and_changes_nothing(split_world):
    w = split_world
    job = start(staff("warehouse"), good_rows(w))
    assert job.status == ImportJob.Status.PREVIEW and job.error_count == 0
    assert [(p["row"], p["key"]) for p in job.preview] == [(2, w["one"].number), (3, w["split"].number),
                                                             (4, w["split"].number)]
    assert "SF1001" in job.preview[0]["changes"] and "已发货" in job.preview[0]["changes"]
    assert "部分发货" in job.preview[1]["changes"] and "甲仓" in job.preview[1]["changes"]
    assert "ZT3001" in job.preview[2]["changes"] and "乙仓" in job.preview[2]["changes"]
    w["one"].refresh_from_db()
    w["split"].refresh_from_db()
    assert w["one"].status == "packed" and w["split"].status == "packed"
    assert not Shipment.objects.exists()
    assert pools(w["sku"]) == {"wa": (3, 3), "wb": (1, 1)}
    assert not OrderEvent.objects.filter(kind__in=["shipped", "partially_shipped"]).exists()


def test_bad_rows_are_reported_by_row_number_and_nothing_is_applied(split_world):
    w = split_world
    sku = w["sku"]
    stock(w["a"], sku, 5)
    allocated = services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM)  # not packed yet
    shipped = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM),
                                  actor=SYSTEM)
    shipped = services.order_ship(order=shipped, actor=SYSTEM, carrier="SF", tracking_number="SF-USED")
    other = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM),
                                actor=SYSTEM)
    third = services.order_pack(order=services.order_allocate(order=make_order(lines=[(sku, 1)]), actor=SYSTEM),
                                actor=SYSTEM)
    before = pools(sku)
    rows = [HEAD,
            [w["one"].number, "SF", "SF1001", ""],          # 2: good
            ["OH-NOPE", "SF", "SF1002", ""],                # 3: unknown order
            [allocated.number, "SF", "SF1003", ""],         # 4: wrong state (allocated, not packed)
            [other.number, "SF", "SF1001", ""],             # 5: tracking number repeats row 2
            [third.number, "SF", "SF-USED", ""],            # 6: tracking number used by another order
            [w["split"].number, "XYZ", "SF1006", "wa"],     # 7: unknown carrier
            [w["split"].number, "SF", "SF1007", ""],        # 8: split order without 发货仓
            [shipped.number, "SF", "SF1008", ""],           # 9: already shipped
            [w["split"].number, "SF", "SF1010", "nowhere"],  # 10: unknown warehouse
            ]
    job = start(staff("warehouse"), rows)
    assert job.status == ImportJob.Status.INVALID
    by_row = {e["row"]: (e["column"], e["message"]) for e in job.errors}
    assert sorted(by_row) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert by_row[3] == ("订单号", "订单“OH-NOPE”不存在")
    assert by_row[4][0] == "订单号" and "已分仓" in by_row[4][1] and "不能发货" in by_row[4][1]
    assert by_row[5][0] == "运单号" and "第 2 行" in by_row[5][1]
    assert by_row[6][0] == "运单号" and "SF-USED" in by_row[6][1] and shipped.number in by_row[6][1]
    assert by_row[7][0] == "快递公司" and "XYZ" in by_row[7][1]
    assert by_row[8][0] == "发货仓" and "甲仓" in by_row[8][1] and "乙仓" in by_row[8][1]
    assert by_row[9][0] == "订单号" and "不能发货" in by_row[9][1]
    assert by_row[10] == ("发货仓", "仓库“nowhere”不存在")
    # Nothing applied, not even the good row 2.
    w["one"].refresh_from_db()
    assert w["one"].status == "packed"
    assert list(Shipment.objects.values_list("tracking_number", flat=True)) == ["SF-USED"]
    assert pools(sku) == before
    with pytest.raises(Exception):
        imports.confirm_import(job=job, actor=Actor.of(job.user, Source.IMPORT))


def test_the_same_order_twice_without_a_warehouse_is_a_duplicate(split_world):
    w = split_world
    job = start(staff("warehouse"), [HEAD, [w["one"].number, "SF", "SF1", ""], [w["one"].number, "SF", "SF2", ""]])
    assert [(e["row"], e["column"]) for e in job.errors] == [(3, "订单号")]
    assert "第 2 行" in job.errors[0]["message"]


def test_a_missing_column_refuses_the_file(split_world):
    w = split_world
    job = start(staff("warehouse"), [["订单号", "快递公司"], [w["one"].number, "SF"]])
    assert job.status == ImportJob.Status.INVALID
    assert job.errors[0]["row"] == 0 and "缺少必填列" in job.errors[0]["message"] and "运单号" in job.errors[0]["message"]
    assert not Shipment.objects.exists()


def test_an_empty_required_cell_is_a_row_error(split_world):
    w = split_world
    job = start(staff("warehouse"), [HEAD, [w["one"].number, "SF", None, ""]])
    assert [(e["row"], e["column"], e["message"]) for e in job.errors] == [(2, "运单号", "必填")]


def test_data_that_changed_after_the_preview_refuses_the_whole_file(split_world):
    w = split_world
    user = staff("warehouse")
    job = start(user, good_rows(w))
    assert job.status == ImportJob.Status.PREVIEW
    services.order_ship(order=w["one"], actor=SYSTEM, carrier="EMS", tracking_number="E1")  # someone shipped it
    job = imports.confirm_import(job=job, actor=Actor.of(user, Source.IMPORT))
    assert job.status == ImportJob.Status.FAILED and [e["row"] for e in job.errors] == [2]
    w["split"].refresh_from_db()
    assert w["split"].status == "packed"
    assert list(Shipment.objects.values_list("tracking_number", flat=True)) == ["E1"]


@pytest.mark.parametrize("role", ROLES)
def test_who_may_import_tracking_numbers(role, split_world):
    w = split_world
    user = staff(role)
    actor = Actor.of(user, Source.IMPORT)
    assert (KIND in [k.kind for k in imports.kinds_for(actor)]) == (role in MAY_SHIP)
    client = Client()
    client.force_login(user)
    response = client.post(reverse("admin:core_importjob_upload"),
                           {"kind": KIND, "file": SimpleUploadedFile("s.xlsx", xlsx(good_rows(w)))})
    if role in MAY_SHIP:
        assert response.status_code == 302
        job = ImportJob.objects.get()
        assert job.kind == KIND and job.status == ImportJob.Status.PREVIEW
        confirmed = client.post(reverse("admin:core_importjob_confirm", args=[job.pk]))
        assert confirmed.status_code == 302
        w["one"].refresh_from_db()
        assert w["one"].status == "shipped"
        template = client.get(reverse("admin:core_importjob_template", args=[KIND]))
        assert template.status_code == 200
    else:
        assert response.status_code == 403
        assert not ImportJob.objects.exists()
        with pytest.raises(NotPermitted):
            start(user, good_rows(w))
        assert client.get(reverse("admin:core_importjob_template", args=[KIND])).status_code == 403
        w["one"].refresh_from_db()
        assert w["one"].status == "packed"


def test_an_order_outside_the_scope_reads_as_unknown(split_world):
    w = split_world
    # 乙仓's keeper sees the split order (reserved in 乙仓) but not the 甲仓-only order.
    user = scoped(staff("warehouse"), warehouses=[w["b"]])
    job = start(user, [HEAD, [w["one"].number, "SF", "SF1", ""], [w["split"].number, "SF", "SF2", "wa"],
                       [w["split"].number, "SF", "SF3", "wb"]])
    by_row = {e["row"]: (e["column"], e["message"]) for e in job.errors}
    assert by_row[2] == ("订单号", f"订单“{w['one'].number}”不存在")  # the same words as a truly unknown order
    assert by_row[3][0] == "发货仓" and "权限范围" in by_row[3][1]  # 甲仓 is not theirs
    assert 4 not in by_row
    w["one"].refresh_from_db()
    assert w["one"].status == "packed" and not Shipment.objects.exists()


def test_the_template_has_the_headers_an_example_and_notes(split_world):
    book = openpyxl.load_workbook(io.BytesIO(imports.template_xlsx(KIND)))
    assert book.sheetnames == ["数据", "填写说明"]
    assert [c.value for c in book["数据"][1]] == HEAD
    assert book["数据"]["B2"].value == "SF"
    notes = " ".join(str(c.value) for row in book["填写说明"].iter_rows() for c in row if c.value)
    assert "SF" in notes and "已打包" in notes


def test_a_row_without_a_warehouse_may_not_ship_from_a_warehouse_outside_the_scope(split_world):
    w = split_world
    services.order_ship(order=w["split"], actor=SYSTEM, warehouse=w["b"], carrier="SF", tracking_number="SF-B")
    user = scoped(staff("warehouse"), warehouses=[w["b"]])  # still sees the order: it had stock in 乙仓
    job = start(user, [HEAD, [w["split"].number, "SF", "SF-A", ""]])
    assert [(e["row"], e["column"]) for e in job.errors] == [(2, "发货仓")]
    assert "甲仓" in job.errors[0]["message"] and "权限范围" in job.errors[0]["message"]
    assert pools(w["sku"])["wa"] == (3, 3)
