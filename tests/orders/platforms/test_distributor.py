import io
import json
import zipfile
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from openpyxl import Workbook

from orders.platforms.base import NormalizedLine
from orders.platforms.distributor import DistributorAdapter, DistributorFileRefused, FileRowError, parse_file
from orders.platforms.interface import PlatformAdapter
from tests.orders.platforms.shared import without_raw

UTC = timezone.utc
HEADER = ["分销商订单号", "下单时间", "收货人", "电话", "省", "市", "区", "地址", "SKU编码", "商品名称", "数量", "单价",
          "运费", "备注", "赠品"]
ROWS = [
    ["FX1001", "2024-01-02 15:04:05", "张三", "13800000000", "浙江省", "杭州市", "西湖区", "文三路100号", "SKU-A", "保温杯",
     "2", "12.50", "6", "尽快发货", ""],
    ["FX1001", "", "", "", "", "", "", "", "SKU-B", "杯垫", "1", "0", "", "", "是"],
    ["FX1002", "2024-01-03 09:00:00", "李四", "13800000001", "北京市", "北京市", "朝阳区", "示例小区1号", "SKU-A", "保温杯",
     "1", "12.50", "", "", ""],
]


def csv_bytes(header=HEADER, rows=ROWS, *, delimiter=",", encoding="utf-8-sig"):
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode(encoding)


def xlsx_bytes(header=HEADER, rows=ROWS, *, title_row=None):
    book = Workbook()
    sheet = book.active
    if title_row:
        sheet.append([title_row])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def orders(content, filename=""):
    return DistributorAdapter().normalize_file(content, filename)


def refused(content, filename="") -> list[FileRowError]:
    with pytest.raises(DistributorFileRefused) as info:
        parse_file(content, filename)
    return info.value.errors


def test_is_a_platform_adapter():
    assert isinstance(DistributorAdapter(), PlatformAdapter) and DistributorAdapter.code == "distributor"


def test_csv_rows_group_into_orders_exactly():
    first, second = orders(csv_bytes())
    assert first.platform_order_id == "FX1001" and first.platform_status == "已付款" and first.paid is True
    assert first.lines == [
        NormalizedLine(title="保温杯", quantity=2, unit_price=Decimal("12.50"), platform_sku_id="SKU-A",
                       sku_code="SKU-A", platform_line_id="SKU-A"),
        NormalizedLine(title="杯垫", quantity=1, unit_price=Decimal("0.00"), platform_sku_id="SKU-B",
                       sku_code="SKU-B", is_gift=True, platform_line_id="gift:SKU-B"),
    ]
    assert (first.goods_amount, first.discount_amount, first.shipping_fee, first.paid_amount) == (
        Decimal("25.00"), Decimal("0.00"), Decimal("6.00"), Decimal("31.00"))
    assert (first.receiver_name, first.receiver_phone, first.buyer_phone) == ("张三", "13800000000", "13800000000")
    assert (first.province, first.city, first.district, first.address) == ("浙江省", "杭州市", "西湖区", "文三路100号")
    assert first.placed_at == first.paid_at == datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)  # Beijing time
    assert first.buyer_note == "尽快发货" and first.currency == "CNY"
    assert second.platform_order_id == "FX1002" and (second.province, second.city) == ("北京市", "北京市")
    assert second.shipping_fee == Decimal("0.00") and second.paid_amount == Decimal("12.50")


def test_excel_with_typed_cells_gives_the_same_orders():
    rows = [list(r) for r in ROWS]
    rows[0][1], rows[0][3], rows[0][10], rows[0][11], rows[0][12] = datetime(2024, 1, 2, 15, 4, 5), 13800000000, 2, 12.5, 6
    rows[1][10], rows[1][11] = 1.0, 0
    rows[2][1], rows[2][3], rows[2][10], rows[2][11] = datetime(2024, 1, 3, 9, 0), 13800000001, 1, 12.5
    from_excel = orders(xlsx_bytes(rows=rows), "订单.xlsx")
    assert [without_raw(o) for o in from_excel] == [without_raw(o) for o in orders(csv_bytes())]


def test_excel_serial_date_number_is_read_as_a_date():
    rows = [list(r) for r in ROWS]
    rows[0][1] = 45293.6278125  # 2024-01-02 15:04:03 as an Excel serial
    first = orders(xlsx_bytes(rows=rows))[0]
    assert first.placed_at == datetime(2024, 1, 2, 7, 4, 3, tzinfo=UTC)


def test_header_aliases_spacing_full_width_and_a_title_row():
    header = ["订单号 *", "下单日期", "收件人", "手机号码", "省份", "城市", "区县", "详细地址", "商家编码", "品名", "购买数量",
              "单价（元）", "邮费", "买家留言", "是否赠品", "无关的列"]
    rows = [list(r) + ["x"] for r in ROWS]
    rows[0][3] = "138 0000 0000"  # spaces in the phone
    rows[0][10], rows[0][11] = "２", "￥12.50"  # full-width digits and yuan sign
    rows[0][7] = "文三路１００号"
    rows[2][3] = "+86-138-0000-0001"
    content = xlsx_bytes(header, rows, title_row="某某分销商 1 月订单")
    assert [without_raw(o) for o in orders(content)] == [without_raw(o) for o in orders(csv_bytes())]


@pytest.mark.parametrize("delimiter, encoding", [("\t", "utf-8"), (";", "utf-8-sig"), (",", "gb18030")])
def test_csv_delimiters_and_chinese_encodings(delimiter, encoding):
    content = csv_bytes(delimiter=delimiter, encoding=encoding)
    assert [without_raw(o) for o in orders(content)] == [without_raw(o) for o in orders(csv_bytes())]


def test_payload_replays_to_the_same_order_and_is_json():
    payloads = parse_file(csv_bytes())
    assert json.loads(json.dumps(payloads)) == payloads  # storable as the raw payload
    again = DistributorAdapter().normalize(json.loads(json.dumps(payloads[0])))
    assert without_raw(again) == without_raw(orders(csv_bytes())[0])


def test_hand_written_payload_with_chinese_keys():
    payload = {"distributor_order_no": "FX1002", "rows": [dict(zip(HEADER, ROWS[2]))]}
    assert without_raw(DistributorAdapter().normalize(payload)) == without_raw(orders(csv_bytes())[1])


def test_status_column_cancels_or_flags_a_refund():
    header = HEADER + ["状态"]
    rows = [list(r) + [s] for r, s in zip(ROWS, ["已取消", "", "退款中"])]
    first, second = orders(csv_bytes(header, rows))
    assert first.cancelled is True and first.paid is False
    assert DistributorAdapter().status_transition(first.platform_status) == "cancel"
    assert second.refund_requested is True and second.cancelled is False
    assert DistributorAdapter().status_transition("") == "pay"


def test_same_sku_twice_gets_distinct_line_ids():
    rows = [ROWS[0], list(ROWS[0])]
    rows[1][1:8] = [""] * 7
    (order,) = orders(csv_bytes(rows=rows))
    assert [line.platform_line_id for line in order.lines] == ["SKU-A", "SKU-A#2"]


# --- refusals ---------------------------------------------------------------------------------

def test_missing_column_is_named():
    header = [h for h in HEADER if h != "SKU编码"]
    rows = [[c for h, c in zip(HEADER, r) if h != "SKU编码"] for r in ROWS]
    assert refused(csv_bytes(header, rows)) == [FileRowError(1, "SKU编码", "缺少列")]


@pytest.mark.parametrize("quantity", ["0", "-1", "1.5", "two", ""])
def test_bad_quantity_names_its_row_and_refuses_the_whole_file(quantity):
    rows = [list(r) for r in ROWS]
    rows[2][10] = quantity
    errors = refused(csv_bytes(rows=rows))
    assert [(e.row, e.column) for e in errors] == [(4, "数量")]


def test_every_bad_row_is_listed():
    rows = [list(r) for r in ROWS]
    rows[0][3] = "12345"  # not a phone
    rows[1][11] = "-3"  # negative price
    rows[2][1] = "昨天"  # not a time
    errors = refused(csv_bytes(rows=rows))
    assert [(e.row, e.column) for e in errors] == [(2, "电话"), (3, "单价"), (4, "下单时间")]
    assert str(errors[0]).startswith("第 2 行 电话")


def test_rows_of_one_order_must_agree():
    rows = [list(r) for r in ROWS]
    rows[1][2] = "王五"  # another receiver on the second row of FX1001
    assert refused(csv_bytes(rows=rows)) == [FileRowError(3, "收货人", "同一订单（FX1001）各行的值不一致")]


def test_an_order_without_receiver_is_refused():
    rows = [list(r) for r in ROWS]
    rows[2][2] = ""
    assert refused(csv_bytes(rows=rows)) == [FileRowError(4, "收货人", "不能为空")]


def test_duplicate_header_is_refused():
    errors = refused(csv_bytes(HEADER + ["数量"], [r + ["1"] for r in ROWS]))
    assert errors == [FileRowError(1, "数量", "表头重复")]


@pytest.mark.parametrize("content", [b"", b"   \n\n", "\ufeff".encode()])
def test_empty_file_is_refused(content):
    assert [e.message for e in refused(content)] == ["文件为空"]


def test_header_only_file_is_refused():
    assert [e.message for e in refused(csv_bytes(rows=[]))] == ["文件里没有订单行"]


def _zip_not_xlsx():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "hello")
    return out.getvalue()


@pytest.mark.parametrize("content, filename", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "orders.png"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "orders.pdf"),
    (_zip_not_xlsx(), "orders.xlsx"),
    (b"just some text, not ours", "orders.xlsx"),
])
def test_not_a_spreadsheet_is_refused(content, filename):
    assert [e.message for e in refused(content, filename)] == ["不是 CSV 或 Excel (.xlsx) 表格"]


def test_old_xls_is_refused_with_a_hint():
    (error,) = refused(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "orders.xls")
    assert ".xlsx" in error.message and error.row == 0


def test_refusal_is_an_invalid_input_domain_error():
    from config.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        parse_file(b"")
    assert info.value.as_dict()["code"] == "invalid" and "文件为空" in info.value.message


def test_keeps_the_adapter_contract():
    from tests.orders.platforms.test_shopify import check_contract

    for payload in parse_file(csv_bytes()):
        check_contract(DistributorAdapter(), payload)
