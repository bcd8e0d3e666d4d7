"""Distributor file drop (分销商导入): CSV or Excel (.xlsx) files from distributors without an API.

No platform sample in ``../shared/fixtures/`` covers this (there is no platform): the columns
below are our own, documented here and in the README. One row is one order line; rows with the
same 分销商订单号 are one order, and the order-level columns (time, receiver, phone, address,
shipping fee, note) must agree between its rows (blank cells take the value of the other rows).

| column (header) | also accepted | required | value |
|---|---|---|---|
| 分销商订单号 | 订单号, 订单编号, 外部订单号, 分销订单号, 原始单号 | yes | text |
| 下单时间 | 订单时间, 下单日期, 创建时间 | yes | ``2024-01-02 15:04``, ``2024/1/2 15:04:05``, an Excel date; Beijing time unless an offset is given |
| 收货人 | 收件人, 收货人姓名, 收件人姓名 | yes | text |
| 电话 | 手机, 手机号, 手机号码, 联系电话, 收货人电话, 收货人手机, 收件人电话 | yes | mobile ``13800000000`` (``+86``, spaces, dashes allowed) or landline with area code |
| 省 | 省份 | yes | ``浙江省`` or ``浙江`` |
| 市 | 城市 | yes | ``杭州市`` or ``杭州`` |
| 区 | 区县, 县区, 区/县 | no | ``西湖区`` |
| 地址 | 详细地址, 收货地址 | yes | street address |
| SKU编码 | SKU, 商品编码, 商家编码, 货号 | yes | our SKU code (also the platform SKU id, so a mapping can translate a distributor's own codes) |
| 商品名称 | 品名, 商品 | no | text |
| 数量 | 购买数量, 件数 | yes | whole number ≥ 1 |
| 单价 | 价格, 销售单价 | yes | amount in yuan ≥ 0 (``¥12.50``, ``12.5`` fine) |
| 运费 | 邮费 | no | amount in yuan, once per order |
| 备注 | 买家留言, 订单备注 | no | text |
| 赠品 | 是否赠品 | no | 是/否 (``赠品``, ``Y``, ``1`` count as yes) |
| 状态 | 订单状态 | no | 已付款 (default), 已取消, 退款中 |

Headers are matched after removing spaces, ``*`` markers, a trailing colon and a
parenthesised unit (``单价(元)``), full-width forms folded (NFKC: ``１２`` → ``12``, ``（`` →
``(``); unknown columns are ignored. Distributor orders are paid on account: an order is paid
when placed unless 状态 says otherwise. The whole file is refused when any row is bad, with every
problem listed as ``FileRowError(row, column, message)``; row numbers are the spreadsheet's (the
header is row 1). Old binary ``.xls`` files are refused with a hint to save as .xlsx or CSV.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

from django.utils.translation import gettext as _, gettext_noop

from config.errors import InvalidInput
from orders.platforms.base import NormalizedLine, NormalizedOrder, OrderPage
from orders.platforms.interface import AdapterBase, PlatformRequest, PlatformTransition as T
from orders.platforms.parsing import ParseError, parse_time, split_region, to_int, to_money, to_str
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

MAX_ROWS = 20_000


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    per_order: bool = False  # an order-level value: the same on every row of the order


COLUMNS = (
    Column("order_no", "分销商订单号", ("订单号", "订单编号", "外部订单号", "分销订单号", "原始单号", "order_no"), True),
    Column("placed_at", "下单时间", ("订单时间", "下单日期", "创建时间"), True, True),
    Column("receiver_name", "收货人", ("收件人", "收货人姓名", "收件人姓名"), True, True),
    Column("phone", "电话", ("手机", "手机号", "手机号码", "联系电话", "收货人电话", "收货人手机", "收件人电话"), True, True),
    Column("province", "省", ("省份",), True, True),
    Column("city", "市", ("城市",), True, True),
    Column("district", "区", ("区县", "县区", "区/县"), False, True),
    Column("address", "地址", ("详细地址", "收货地址"), True, True),
    Column("sku_code", "SKU编码", ("sku", "商品编码", "商家编码", "货号"), True),
    Column("title", "商品名称", ("品名", "商品")),
    Column("quantity", "数量", ("购买数量", "件数"), True),
    Column("unit_price", "单价", ("价格", "销售单价"), True),
    Column("shipping_fee", "运费", ("邮费",), False, True),
    Column("note", "备注", ("买家留言", "订单备注"), False, True),
    Column("gift", "赠品", ("是否赠品",)),
    Column("status", "状态", ("订单状态",), False, True),
)
BY_KEY = {c.key: c for c in COLUMNS}
STATUS = {"已付款": T.PAY, "已支付": T.PAY, "待发货": T.PAY, "paid": T.PAY,
          "已取消": T.CANCEL, "取消": T.CANCEL, "cancelled": T.CANCEL,
          "退款中": T.REFUND_REQUESTED, "申请退款": T.REFUND_REQUESTED, "refund_requested": T.REFUND_REQUESTED}
_GIFT_YES = {"是", "赠品", "y", "yes", "1", "true", "赠"}
_GIFT_NO = {"", "否", "n", "no", "0", "false"}
_PHONE = re.compile(r"^(1\d{10}|0\d{9,11})$")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def header_key(text: Any) -> str:
    """The normalized form a header is matched on."""
    value = _fold(to_str(text)).lower()
    value = re.sub(r"\s+|\*", "", value)
    value = re.sub(r"\([^()]*\)$", "", value)  # 单价(元)
    return value.rstrip(":")


_HEADERS = {header_key(name): c.key for c in COLUMNS for name in (c.header, *c.aliases)}


@dataclass(frozen=True)
class FileRowError:
    row: int  # the spreadsheet's row number (header = 1); 0 for the file as a whole
    column: str  # the column's header as we name it ("" for the whole row or file)
    message: str

    def __str__(self) -> str:
        where = _("第 %(row)s 行") % {"row": self.row} if self.row else _("文件")
        return f"{where} {self.column}: {self.message}" if self.column else f"{where}: {self.message}"


class DistributorFileRefused(InvalidInput, ValueError):
    """The file (or a replayed payload) is refused as a whole; ``errors`` says every problem.
    A ValueError too, so a replay (ingest) counts it failed like any unreadable payload."""

    default_message = gettext_noop("分销商文件有误，未导入任何订单")  # translated when raised

    def __init__(self, errors: list[FileRowError]):
        self.errors = sorted(errors, key=lambda e: (e.row, e.column))
        detail = "; ".join(str(e) for e in self.errors[:20])
        more = len(self.errors) - 20
        if more > 0:
            detail += _("；另有 %(n)s 处错误") % {"n": more}
        super().__init__(f"{_(self.default_message)}：{detail}")


# --- reading the file --------------------------------------------------------------------------

def _not_a_sheet() -> DistributorFileRefused:
    return DistributorFileRefused([FileRowError(0, "", _("不是 CSV 或 Excel (.xlsx) 表格"))])


def read_table(content: bytes, filename: str = "") -> list[tuple[int, list[Any]]]:
    """(row number, cells) for every non-blank row, header included. Excel cells keep their
    type (datetime, number); CSV cells are text."""
    if not content or not content.strip():
        raise DistributorFileRefused([FileRowError(0, "", _("文件为空"))])
    name = filename.lower()
    if content[:4] == b"\xd0\xcf\x11\xe0" or (name.endswith(".xls") and content[:2] != b"PK"):
        raise DistributorFileRefused([FileRowError(0, "", _("不支持旧版 .xls 文件，请另存为 .xlsx 或 CSV 后再导入"))])
    if content[:4] == b"PK\x03\x04":
        return _read_xlsx(content)
    if name.endswith((".xlsx", ".xlsm")) or content[:5] == b"%PDF-" or b"\x00" in content[:4096]:
        raise _not_a_sheet()
    return _read_csv(content)


def _read_xlsx(content: bytes) -> list[tuple[int, list[Any]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise _not_a_sheet() from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise _not_a_sheet()
        rows = []
        for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            if any(not _blank_cell(c) for c in cells):
                rows.append((number, list(cells)))
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        book.close()


def _read_csv(content: bytes) -> list[tuple[int, list[Any]]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _not_a_sheet()
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = max(",\t;", key=first_line.count)
    rows = []
    for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
        if any(not _blank_cell(c) for c in cells):
            rows.append((number, cells))
        if len(rows) > MAX_ROWS + 1:
            break
    return rows


def _blank_cell(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not _fold(value).strip())


# --- validating rows -------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return re.sub(r"\s+", " ", _fold(to_str(value))).strip()


def _clean(key: str, value: Any, *, excel: bool) -> Any:
    """One cell → its JSON-safe canonical value; raises ValueError with a user message."""
    if key == "placed_at":
        if isinstance(value, (int, float)) and excel and 1 < value < 2958466:  # an Excel serial date
            from openpyxl.utils.datetime import from_excel
            value = from_excel(value)
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        try:
            when = parse_time(value if isinstance(value, datetime) else _text(value))
        except ParseError:
            when = None
        if when is None:
            raise ValueError(_("不是有效的时间（例：2024-01-02 15:04:05）"))
        return when.astimezone(timezone.utc).isoformat()
    if key == "phone":
        phone = re.sub(r"[\s\-()]", "", _text(value))
        phone = re.sub(r"^(\+?86|0086)(?=1\d{10}$)", "", phone)
        if not _PHONE.match(phone):
            raise ValueError(_("不是有效的手机号或带区号的电话"))
        return phone
    if key == "quantity":
        try:
            quantity = to_int(_text(value) if not isinstance(value, (int, float)) else value)
        except ParseError:
            quantity = 0
        if quantity < 1:
            raise ValueError(_("必须是大于 0 的整数"))
        return quantity
    if key in ("unit_price", "shipping_fee"):
        try:
            amount = to_money(_text(value) if not isinstance(value, (int, float)) else value)
        except ParseError:
            raise ValueError(_("不是有效的金额")) from None
        if amount < 0:
            raise ValueError(_("金额不能为负数"))
        return str(amount)
    if key == "gift":
        text = _text(value).lower()
        if text in _GIFT_YES:
            return True
        if text in _GIFT_NO:
            return False
        raise ValueError(_("请填写 是 或 否"))
    if key == "status":
        text = _text(value)
        if text and text not in STATUS:
            raise ValueError(_("未知状态（可填：已付款、已取消、退款中）"))
        return text
    return _text(value)


def _row_values(cells: dict[str, Any], number: int, *, excel: bool) -> tuple[dict, list[FileRowError]]:
    values: dict[str, Any] = {"row": number}
    errors = []
    for key, column in BY_KEY.items():
        raw = cells.get(key)
        if _blank_cell(raw):
            if column.required and not column.per_order:
                errors.append(FileRowError(number, column.header, _("不能为空")))
            continue
        try:
            values[key] = _clean(key, raw, excel=excel)
        except ValueError as exc:
            errors.append(FileRowError(number, column.header, str(exc)))
            values.setdefault("_bad", []).append(key)  # given but wrong: not also "missing"
    return values, errors


def _known_headers(cells: list[Any]) -> int:
    return len({_HEADERS[k] for k in map(header_key, cells) if k in _HEADERS})


def _map_header(cells: list[Any], number: int) -> tuple[dict[int, str], list[FileRowError]]:
    positions: dict[int, str] = {}
    seen: dict[str, int] = {}
    errors = []
    for index, cell in enumerate(cells):
        key = _HEADERS.get(header_key(cell))
        if key is None:
            continue
        if key in seen:
            errors.append(FileRowError(number, BY_KEY[key].header, _("表头重复")))
            continue
        seen[key] = index
        positions[index] = key
    missing = [c.header for c in COLUMNS if c.required and c.key not in seen]
    for header in missing:
        errors.append(FileRowError(number, header, _("缺少列")))
    return positions, errors


def group_rows(rows: Iterable[dict]) -> tuple[list[dict], list[FileRowError]]:
    """Cleaned rows → one raw payload per order number (first appearance order), checking that
    the order-level values of its rows agree and that every order has them."""
    orders: dict[str, dict] = {}
    for row in rows:
        key = row.get("order_no")
        if key:
            orders.setdefault(key, {"distributor_order_no": key, "rows": []})["rows"].append(row)
    errors = []
    for payload in orders.values():
        for column in COLUMNS:
            if not column.per_order:
                continue
            given = [(r["row"], r[column.key]) for r in payload["rows"] if column.key in r]
            bad = any(column.key in r.get("_bad", ()) for r in payload["rows"])
            if column.required and not given and not bad:
                errors.append(FileRowError(payload["rows"][0]["row"], column.header, _("不能为空")))
            distinct = {v for _row, v in given}
            if len(distinct) > 1:
                errors.extend(FileRowError(r, column.header, _("同一订单（%(no)s）各行的值不一致") %
                                           {"no": payload["distributor_order_no"]})
                              for r, v in given[1:] if v != given[0][1])
    return list(orders.values()), errors


def parse_file(content: bytes, filename: str = "") -> list[dict]:
    """The raw payloads (one per order) of a distributor file; raises DistributorFileRefused
    listing every problem when anything in the file is wrong."""
    table = read_table(content, filename)
    if not table:  # only blank rows (or a byte-order mark)
        raise DistributorFileRefused([FileRowError(0, "", _("文件为空"))])
    excel = content[:4] == b"PK\x03\x04"
    # The header is the first row naming the most known columns among the first ten (a title
    # line above it, as some distributors' exports have, is skipped).
    at = max(range(min(10, len(table))), key=lambda i: (_known_headers(table[i][1]), -i))
    (header_row, header_cells), body = table[at], table[at + 1:]
    positions, errors = _map_header(header_cells, header_row)
    if errors:
        raise DistributorFileRefused(errors)
    if not body:
        raise DistributorFileRefused([FileRowError(0, "", _("文件里没有订单行"))])
    if len(body) > MAX_ROWS:
        raise DistributorFileRefused([FileRowError(0, "", _("行数超过 %(n)s，请分多个文件导入") % {"n": MAX_ROWS})])
    payloads, errors = payloads_from_rows(
        ((number, {key: cells[i] for i, key in positions.items() if i < len(cells)}) for number, cells in body),
        excel=excel)
    if errors:
        raise DistributorFileRefused(errors)
    return payloads


def payloads_from_rows(rows: Iterable[tuple[int, dict[str, Any]]], *, excel: bool) -> tuple[list[dict], list[FileRowError]]:
    """(spreadsheet row number, {column key: raw cell}) rows → one raw payload per order, and
    every problem found (each cell checked, then the rows of each order against each other).
    `parse_file` and the admin's Excel import (`orders.imports`) share it."""
    cleaned, errors = [], []
    for number, cells in rows:
        values, row_errors = _row_values(cells, number, excel=excel)
        errors.extend(row_errors)
        cleaned.append(values)
    payloads, group_errors = group_rows(cleaned)
    return payloads, errors + group_errors


# --- normalizing -----------------------------------------------------------------------------

def _canonical(row: dict) -> dict:
    """A row with our keys, whether it uses them or the Chinese headers (hand-written JSON)."""
    out = {}
    for name, value in row.items():
        key = name if name in BY_KEY or name == "row" else _HEADERS.get(header_key(name))
        if key:
            out[key] = value
    return out


class DistributorAdapter(AdapterBase):
    """Files, not an API: ``parse_file`` gives the payloads, ``normalize`` one order."""

    code = "distributor"
    base_url = ""

    def parse_file(self, content: bytes, filename: str = "") -> list[dict]:
        return parse_file(content, filename)

    def normalize_file(self, content: bytes, filename: str = "") -> list[NormalizedOrder]:
        return [self.normalize(payload) for payload in parse_file(content, filename)]

    def initial_cursor(self, since: datetime) -> str:
        return ""

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        raise NotImplementedError("distributors drop files; there is no list API to poll")

    def parse_list_response(self, body: dict, *, cursor: str = "") -> OrderPage:
        """``{"orders": [payload, …]}`` (an ingest file) → one page."""
        return OrderPage(orders=list(body.get("orders") or []), next_cursor="", has_more=False)

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        raise NotImplementedError("distributors have no stock API")

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        raise TrackingNotApplicable("分销商文件订单:没有平台接口,无需回传")

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        mapped = STATUS.get(to_str(platform_status) or "已付款")
        return mapped.value if mapped else None

    def normalize(self, raw: dict) -> NormalizedOrder:
        """One order payload (``{"distributor_order_no", "rows": [...]}``, as ``parse_file``
        gives it) → NormalizedOrder; the rows are validated again (a replayed payload may be
        hand-made), DistributorFileRefused when one is bad."""
        rows, errors = [], []
        for index, row in enumerate(raw.get("rows") or [], start=1):
            row = _canonical(row)
            row.setdefault("order_no", raw.get("distributor_order_no"))
            number = to_int(row.pop("row", index), index)
            values, row_errors = _row_values(row, number, excel=False)
            rows.append(values)
            errors.extend(row_errors)
        if not rows and not errors:
            errors.append(FileRowError(0, "", _("订单没有明细行")))
        order_no = to_str(raw.get("distributor_order_no"))
        for values in rows:
            if order_no and values.get("order_no", order_no) != order_no:
                errors.append(FileRowError(values["row"], BY_KEY["order_no"].header, _("与订单号不一致")))
        payloads, group_errors = group_rows(rows)
        errors.extend(group_errors)
        if errors:
            raise DistributorFileRefused(errors)

        def order_value(key: str, default: Any = "") -> Any:
            return next((r[key] for r in rows if key in r), default)

        lines, seen = [], {}
        goods = Decimal("0.00")
        gifts = Decimal("0.00")
        for r in rows:
            gift = bool(r.get("gift"))
            price = Decimal(r["unit_price"])
            line_id = ("gift:" if gift else "") + r["sku_code"]
            seen[line_id] = seen.get(line_id, 0) + 1
            if seen[line_id] > 1:
                line_id = f"{line_id}#{seen[line_id]}"
            amount = price * r["quantity"]
            goods += amount
            if gift:
                gifts += amount
            lines.append(NormalizedLine(
                title=r.get("title", ""), quantity=r["quantity"], unit_price=price, platform_sku_id=r["sku_code"],
                sku_code=r["sku_code"], discount_amount=amount if gift else Decimal("0.00"), is_gift=gift,
                platform_line_id=line_id,
            ))
        shipping = Decimal(order_value("shipping_fee", "0.00"))
        status = order_value("status", "") or "已付款"
        transition = self.status_transition(status)
        region = split_region(province=order_value("province"), city=order_value("city"),
                              district=order_value("district"), address=order_value("address"))
        placed_at = parse_time(order_value("placed_at"))
        name, phone = order_value("receiver_name"), order_value("phone")
        return NormalizedOrder(
            platform_order_id=payloads[0]["distributor_order_no"], lines=lines, platform_status=status,
            paid=transition != T.CANCEL, currency="CNY", goods_amount=goods, discount_amount=gifts,
            shipping_fee=shipping, paid_amount=goods - gifts + shipping,
            buyer_name=name, buyer_phone=phone, receiver_name=name, receiver_phone=phone, country="CN",
            province=region.province, city=region.city, district=region.district, address=region.address,
            source_detail="distributor_file", buyer_note=order_value("note"),
            placed_at=placed_at, paid_at=placed_at if transition != T.CANCEL else None, raw=raw,
            refund_requested=transition == T.REFUND_REQUESTED, cancelled=transition == T.CANCEL,
        )


__all__ = ["COLUMNS", "DistributorAdapter", "DistributorFileRefused", "FileRowError", "parse_file", "payloads_from_rows",
           "read_table"]
