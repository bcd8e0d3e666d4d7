"""Excel imports for inventory: SKU master, SKU mappings, stock counts, safety stock.

One pipeline for every kind, all or nothing:

1. **read** (`read_table`): the upload's bytes → header + rows. xlsx/xls through
   python-calamine (Rust; ~10× openpyxl's read-only mode on a 50k-row sheet), CSV as
   UTF-8 or GB18030. A file that is not a spreadsheet, empty, too large, or whose
   columns are wrong or missing is refused as a whole with a clear message
   (`ImportFileError`), never a traceback.
2. **plan** (`ImportKind.plan`): every row converted and checked — types, negative or
   non-integer quantities, unknown SKU / warehouse / shop, duplicates, scope, reserved
   stock — with bulk look-ups (a few queries per file, not per row). The plan says what
   would change (the dry-run preview) and lists row-numbered errors. It writes nothing.
3. **apply** (`ImportKind.apply`): only a plan without errors, inside one transaction
   that plans again first (the data may have changed since the preview), through the
   services with the importing person as the actor (`Actor.of(user, Source.IMPORT)`):
   permission checks, warehouse/shop scope, and the ledger (a stocktake writes one
   `StockMove` per changed pool, never an overwrite).

Row numbers are the spreadsheet's own (the header is row 1). The job and its history
live in `config.models.ImportJob`; `run_*` below are what the admin and the django-q2
tasks call. This module never imports the orders app (shops are reached through the
`SkuMapping.shop` relation).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from config.actors import Actor, Source
from config import notify
from config.errors import DomainError, InvalidInput, NotPermitted
from config.models import ImportJob
from inventory import services
from inventory.models import Sku, SkuMapping, StockLevel, StockMove, Warehouse

logger = logging.getLogger(__name__)

Kind = ImportJob.Kind
PREVIEW_ROWS = 200  # changes kept on the job for the preview page
CHUNK = 2000


def max_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_BYTES", 20 * 1024 * 1024))


def async_rows() -> int:
    return int(getattr(settings, "IMPORT_ASYNC_ROWS", 5000))


def keep_days() -> int:
    return int(getattr(settings, "IMPORT_KEEP_DAYS", 30))


# --- errors ---------------------------------------------------------------------------------
class ImportFileError(Exception):
    """The whole file is refused (not a spreadsheet, empty, too large, wrong columns)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def row_error(row: int, column: str, message: str) -> dict:
    return {"row": row, "column": column, "message": message}


# --- columns and cells ----------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    header: str  # the Chinese header the template uses
    kind: str = "text"  # text | int | bool
    required: bool = False  # the column must be in the file
    note: str = ""
    example: Any = ""
    max_length: int | None = None
    aliases: tuple[str, ...] = ()

    def names(self) -> set[str]:
        return {self.header, self.key, *self.aliases}


TRUE = {"是", "y", "yes", "true", "1", "启用", "√"}
FALSE = {"否", "n", "no", "false", "0", "停用", "×"}


class CellError(ValueError):
    pass


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a barcode or code typed as a number
    return str(value).strip()


def convert(column: Column, value):
    """A cell as the column wants it; None for an empty cell; CellError when it is wrong."""
    kind = type(value)
    if column.kind == "int" and (kind is int or (kind is float and value.is_integer())) and 0 <= value <= 2_000_000_000:
        return int(value)  # the common case, fast
    if column.kind == "text" and kind is str:
        text = value.strip()
        if column.max_length is None or len(text) <= column.max_length:
            return text or None
    text = _text(value)
    if text == "":
        return None
    if column.kind == "int":
        if isinstance(value, bool):
            raise CellError(_("必须是整数"))
        if isinstance(value, int):
            number = value
        else:
            try:
                dec = Decimal(text.replace(",", ""))
            except InvalidOperation:
                raise CellError(_("必须是整数(收到“%(value)s”)") % {"value": text}) from None
            if dec != dec.to_integral_value():
                raise CellError(_("必须是整数(收到 %(value)s)") % {"value": text})
            number = int(dec)
        if number < 0:
            raise CellError(_("不能为负数(收到 %(value)s)") % {"value": number})
        if number > 2_000_000_000:
            raise CellError(_("数值过大(收到 %(value)s)") % {"value": number})
        return number
    if column.kind == "bool":
        lowered = text.lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise CellError(_("只能填 是 或 否(收到“%(value)s”)") % {"value": text})
    if column.max_length and len(text) > column.max_length:
        raise CellError(_("不能超过 %(n)s 个字符") % {"n": column.max_length})
    return text


# --- reading ----------------------------------------------------------------------------------
def _sniff(data: bytes, file_name: str) -> str:
    if data[:4] == b"PK\x03\x04":
        return "xlsx"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "xls"
    if file_name.lower().endswith((".csv", ".txt")) and b"\x00" not in data[:4096]:
        return "csv"
    raise ImportFileError(_("“%(name)s”不是电子表格文件:请上传 .xlsx、.xls 或 .csv(可先下载模板)") % {"name": file_name})


def _sheet_rows(data: bytes, fmt: str) -> list[list]:
    if fmt == "csv":
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ImportFileError(_("CSV 文件编码无法识别:请另存为 UTF-8 或直接上传 .xlsx"))
        return [row for row in csv.reader(io.StringIO(text))]
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not workbook.sheet_names:
            return []
        return workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except ImportFileError:
        raise
    except Exception as exc:  # a damaged or disguised file: calamine's own error kinds vary
        logger.info("unreadable spreadsheet: %s", exc)
        raise ImportFileError(_("文件无法读取(不是有效的电子表格或已损坏):请用 Excel 另存为 .xlsx 后重试")) from None


@dataclass
class Table:
    columns: list[Column]  # in file order (None-free: unknown headers refuse the file)
    rows: list[tuple[int, dict]]  # (spreadsheet row number, {key: raw value})
    options: dict = field(default_factory=dict)  # the upload's options (ImportJob.options)


def read_table(data: bytes, file_name: str, spec: "ImportKind") -> Table:
    """The first sheet of the upload as (row number, raw cells by column key)."""
    if len(data) > max_bytes():
        raise ImportFileError(_("文件过大(%(size)s MB,上限 %(max)s MB):请拆分后分批导入")
                              % {"size": round(len(data) / 1048576, 1), "max": round(max_bytes() / 1048576, 1)})
    if not data:
        raise ImportFileError(_("文件为空"))
    raw = _sheet_rows(data, _sniff(data, file_name))
    # The header is the first non-empty row (usually row 1).
    header_index = next((i for i, r in enumerate(raw) if any(_text(c) for c in r)), None)
    if header_index is None:
        raise ImportFileError(_("文件为空:没有表头,也没有数据行"))
    by_name = {name: col for col in spec.columns for name in col.names()}
    columns: list[Column | None] = []
    unknown, seen, duplicated = [], set(), []
    for cell in raw[header_index]:
        name = _text(cell)
        if not name:
            columns.append(None)
            continue
        col = by_name.get(name) or by_name.get(name.lower())
        if col is None:
            unknown.append(name)
            columns.append(None)
        elif col.key in seen:
            duplicated.append(name)
            columns.append(None)
        else:
            seen.add(col.key)
            columns.append(col)
    problems = []
    missing = [c.header for c in spec.columns if c.required and c.key not in seen]
    if missing:
        problems.append(_("缺少必填列:%(cols)s") % {"cols": "、".join(missing)})
    if unknown:
        problems.append(_("无法识别的列:%(cols)s(可用列:%(known)s)")
                        % {"cols": "、".join(unknown), "known": "、".join(c.header for c in spec.columns)})
    if duplicated:
        problems.append(_("重复的列:%(cols)s") % {"cols": "、".join(duplicated)})
    if problems:
        raise ImportFileError(";".join(problems))
    rows = []
    for offset, cells in enumerate(raw[header_index + 1:], start=header_index + 2):
        if not any(_text(c) for c in cells):
            continue
        rows.append((offset, {col.key: cells[i] if i < len(cells) else None
                              for i, col in enumerate(columns) if col is not None}))
    if not rows:
        raise ImportFileError(_("文件里没有数据行(只有表头)"))
    return Table(columns=[c for c in columns if c is not None], rows=rows)


# --- plans ------------------------------------------------------------------------------------
@dataclass
class Plan:
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)
    work: list = field(default_factory=list)  # what apply() writes (kind-specific)

    def change(self, entry: dict) -> None:
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append(entry)


def _chunks(items: list, size: int = 900) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def update_rows(model, fields: list[str], rows: list[tuple]) -> None:
    """Set `fields` on many rows by primary key: `rows` are (pk, *values) already prepared
    for the database. PostgreSQL: one `UPDATE … FROM unnest(arrays)` per 20,000 rows; elsewhere
    one `executemany` (SQLite runs in-process: no round trips). Django's `bulk_update`
    builds a CASE per batch instead, which is slow on big files. Sends no signals."""
    if not rows:
        return
    connection = transaction.get_connection()
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    pk = model._meta.pk
    cols = [model._meta.get_field(f) for f in fields]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement with one array parameter per column: no giant query text to parse.
            types = [_pg_type(pk, connection), *[_pg_type(c, connection) for c in cols]]
            names = ", ".join(qn(n) for n in ["pk", *[c.column for c in cols]])
            sets = ", ".join(f"{qn(c.column)} = v.{qn(c.column)}" for c in cols)
            sql = (f"UPDATE {table} AS t SET {sets} FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) "
                   f"AS v({names}) WHERE t.{qn(pk.column)} = v.{qn('pk')}")
            for chunk in _chunks(rows, 20000):
                cursor.execute(sql, [list(column) for column in zip(*chunk)])
        else:
            sql = (f"UPDATE {table} SET {', '.join(f'{qn(c.column)} = %s' for c in cols)} "
                   f"WHERE {qn(pk.column)} = %s")
            cursor.executemany(sql, [(*r[1:], r[0]) for r in rows])


def _pg_type(field, connection) -> str:
    if field.get_internal_type() == "BigAutoField":
        return "bigint"
    if field.get_internal_type() == "AutoField":
        return "integer"
    return field.cast_db_type(connection)


def insert_rows(model, columns: list[str], rows: list[tuple]) -> None:
    """Insert many rows of prepared values (`columns` are attnames). PostgreSQL:
    `INSERT … SELECT * FROM unnest(arrays)`; elsewhere multi-row VALUES, 1,000 a statement."""
    if not rows:
        return
    connection = transaction.get_connection()
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(c) for c in columns]
    head = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = head + f"SELECT * FROM unnest({', '.join(f'%s::{_pg_type(f, connection)}[]' for f in fields)})"
            for chunk in _chunks(rows, 20000):
                cursor.execute(sql, [list(column) for column in zip(*chunk)])
            return
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for chunk in _chunks(rows, 1000):
            cursor.execute(head + "VALUES " + ", ".join([row] * len(chunk)), [value for r in chunk for value in r])


def bulk_set(model, objs: list, fields: Iterable[str]) -> None:
    """Write `fields` of each (already loaded) object back with `update_rows`."""
    connection = transaction.get_connection()
    fields = list(fields)
    cols = [model._meta.get_field(f) for f in fields]
    update_rows(model, fields, [(o.pk, *[c.get_db_prep_save(getattr(o, c.attname), connection) for c in cols])
                                for o in objs])


def record_history(model, objs: list, actor: Actor) -> None:
    """Audit (issue 17): one history row per object updated by `bulk_set` (which skips
    post_save, where django-simple-history would write it), with the importing user."""
    if objs:
        model.history.bulk_history_create(objs, update=True, batch_size=1000, default_user=actor.user,
                                          default_change_reason="import")


def in_lists(field: str, values: list, db_type: str = "bigint") -> Iterable[dict]:
    """Filter kwargs `{field__in: …}` covering `values`. PostgreSQL: one filter on an array
    parameter (`IN (SELECT unnest(%s))`) instead of a statement with thousands of
    placeholders for the driver to parse; elsewhere chunks of 5,000."""
    if not values:
        return
    if transaction.get_connection().vendor == "postgresql":
        from django.db.models.expressions import RawSQL

        yield {f"{field}__in": RawSQL(f"SELECT unnest(%s::{db_type}[])", [list(values)])}
        return
    for chunk in _chunks(list(values), 5000):
        yield {f"{field}__in": chunk}


def _saved(model, rows: Iterable[tuple[bool, Any]]) -> None:
    """Bulk writes send no signals: send `post_save` for each (created, object) written, so
    whoever listens (orders re-resolving held lines, the channel stock push marking SKUs)
    hears about an import exactly as about a save in the admin."""
    using = transaction.get_connection().alias
    for created, obj in rows:
        post_save.send(sender=model, instance=obj, created=created, update_fields=None, raw=False, using=using)


# Sent once per SKU import (SKU master, safety stock) with the ids of the SKUs it changed,
# instead of one `post_save` per SKU: a listener that reacts to a SKU edit (the channel
# stock push marks it for a push) can do it once for 50,000 SKUs. New SKUs are not in it
# (nothing is listed on a channel before it has a mapping).
skus_imported = Signal()


def _skus_saved(sku_ids: list[int]) -> None:
    if sku_ids:
        skus_imported.send(sender=Sku, sku_ids=sku_ids)


def _in_bulk(source, field_name: str, values: Iterable) -> dict:
    """{value: object} for the model (or queryset) rows whose `field_name` is in `values`."""
    qs = source.objects.all() if isinstance(source, type) else source
    values = sorted({v for v in values if v})
    found = {}
    for lookup in in_lists(field_name, values, "varchar"):
        found.update({getattr(o, field_name): o for o in qs.filter(**lookup)})
    return found


class ImportKind:
    kind: str = ""
    title: str = ""
    columns: tuple[Column, ...] = ()
    permissions: tuple[str, ...] = ()
    notes: str = ""
    options: tuple[str, ...] = ()  # upload-form choices this kind reads from `Table.options` (e.g. "shop")

    def may_import(self, actor: Actor) -> bool:
        return all(actor.can(p) for p in self.permissions)

    def check_permission(self, actor: Actor) -> None:
        if not self.may_import(actor):
            raise NotPermitted(_("%(who)s 没有权限导入%(what)s") % {"who": actor.label, "what": self.title})

    def header(self, key: str) -> str:
        return next(c.header for c in self.columns if c.key == key)

    def cells(self, table: Table, plan: Plan, progress: Callable[[int], None] | None = None):
        """Each row converted: yields (row number, {key: value}) for rows without a cell error."""
        cols = {c.key: c for c in table.columns}
        for n, (row, raw) in enumerate(table.rows, start=1):
            if progress and n % CHUNK == 0:
                progress(n)
            values, bad = {}, False
            for key, value in raw.items():
                try:
                    values[key] = convert(cols[key], value)
                except CellError as exc:
                    plan.errors.append(row_error(row, cols[key].header, str(exc)))
                    bad = True
            for col in self.columns:
                if col.required and values.get(col.key) is None and not bad:
                    plan.errors.append(row_error(row, col.header, _("必填")))
                    bad = True
            if not bad:
                yield row, values

    def plan(self, table: Table, actor: Actor, progress=None) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, plan: Plan, actor: Actor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _dupe(seen: dict, key, row: int, plan: Plan, column: str, what: str) -> bool:
    if key in seen:
        plan.errors.append(row_error(row, column, _("与第 %(first)s 行重复(%(what)s)") % {"first": seen[key], "what": what}))
        return True
    seen[key] = row
    return False


# --- SKU master ---------------------------------------------------------------------------------
class SkuImport(ImportKind):
    kind = Kind.SKU
    title = _("SKU 主数据")
    permissions = ("inventory.add_sku", "inventory.change_sku")
    notes = "按 SKU 编码新增或更新;空白单元格 = 不修改该字段。"
    columns = (
        Column("code", "SKU编码", required=True, max_length=64, note="必填。已存在则更新,不存在则新增", example="BASIN-01"),
        Column("name", "名称", max_length=200, note="新增 SKU 时必填", example="折叠盆 大号"),
        Column("category", "类目", max_length=64, note="可选,分仓规则按类目匹配", example="折叠盆"),
        Column("barcode", "条码", max_length=64, note="可选", example="6901234567890"),
        Column("safety_stock", "安全库存", "int", note="可选,不小于 0 的整数", example=10),
        Column("emergency_buffer", "应急保留", "int", note="可选,不小于 0 的整数,不向渠道展示", example=2),
        Column("tax_exempt", "免税", "bool", note="可选,是 / 否", example="否"),
        Column("is_active", "启用", "bool", note="可选,是 / 否(新增默认 是)", example="是"),
    )
    FIELDS = ("name", "category", "barcode", "safety_stock", "emergency_buffer", "tax_exempt", "is_active")

    def plan(self, table, actor, progress=None):
        plan = Plan(total_rows=len(table.rows))
        rows = list(self.cells(table, plan, progress))
        existing = _in_bulk(Sku, "code", (v["code"] for _r, v in rows))
        seen: dict = {}
        for row, v in rows:
            if _dupe(seen, v["code"], row, plan, self.header("code"), v["code"]):
                continue
            sku = existing.get(v["code"])
            if sku is None:
                if not v.get("name"):
                    plan.errors.append(row_error(row, self.header("name"), _("新增 SKU 必须填写名称")))
                    continue
                sku = Sku(code=v["code"], **{f: v[f] for f in self.FIELDS if v.get(f) is not None})
                plan.created += 1
                plan.work.append(("create", sku, ()))
                plan.change({"row": row, "action": "新增", "key": v["code"], "changes": v.get("name", "")})
                continue
            changed = [f for f in self.FIELDS if v.get(f) is not None and getattr(sku, f) != v[f]]
            if not changed:
                plan.unchanged += 1
                continue
            text = ";".join(f"{Sku._meta.get_field(f).verbose_name}: {getattr(sku, f)} → {v[f]}" for f in changed)
            for f in changed:
                setattr(sku, f, v[f])
            plan.updated += 1
            plan.work.append(("update", sku, tuple(changed)))
            plan.change({"row": row, "action": "更新", "key": v["code"], "changes": text})
        return plan

    def apply(self, plan, actor):
        self.check_permission(actor)
        creates = [sku for action, sku, _f in plan.work if action == "create"]
        bulk_create_with_history(creates, Sku, batch_size=1000, default_user=actor.user, default_change_reason="import")
        updates = [sku for action, sku, _f in plan.work if action == "update"]
        bulk_set(Sku, updates, self.FIELDS)
        record_history(Sku, updates, actor)
        _skus_saved([sku.pk for action, sku, _f in plan.work if action == "update"])


# --- safety stock -----------------------------------------------------------------------------
class SafetyStockImport(ImportKind):
    kind = Kind.SAFETY_STOCK
    title = _("安全库存")
    permissions = ("inventory.change_sku",)
    notes = "按 SKU 编码更新安全库存与应急保留;SKU 必须已存在。"
    columns = (
        Column("code", "SKU编码", required=True, max_length=64, note="必填,必须是已存在的 SKU", example="BASIN-01"),
        Column("safety_stock", "安全库存", "int", required=True, note="必填,不小于 0 的整数;可用库存低于它时告警", example=10),
        Column("emergency_buffer", "应急保留", "int", note="可选,不小于 0 的整数;不向渠道展示的保留数量", example=2),
    )

    def plan(self, table, actor, progress=None):
        plan = Plan(total_rows=len(table.rows))
        rows = list(self.cells(table, plan, progress))
        existing = _in_bulk(Sku, "code", (v["code"] for _r, v in rows))
        seen: dict = {}
        for row, v in rows:
            if _dupe(seen, v["code"], row, plan, self.header("code"), v["code"]):
                continue
            sku = existing.get(v["code"])
            if sku is None:
                plan.errors.append(row_error(row, self.header("code"), _("SKU“%(code)s”不存在") % {"code": v["code"]}))
                continue
            changed = [f for f in ("safety_stock", "emergency_buffer") if v.get(f) is not None and getattr(sku, f) != v[f]]
            if not changed:
                plan.unchanged += 1
                continue
            text = ";".join(f"{Sku._meta.get_field(f).verbose_name}: {getattr(sku, f)} → {v[f]}" for f in changed)
            for f in changed:
                setattr(sku, f, v[f])
            plan.updated += 1
            plan.work.append(sku)
            plan.change({"row": row, "action": "更新", "key": v["code"], "changes": text})
        return plan

    def apply(self, plan, actor):
        self.check_permission(actor)
        bulk_set(Sku, plan.work, ["safety_stock", "emergency_buffer"])
        record_history(Sku, plan.work, actor)
        _skus_saved([sku.pk for sku in plan.work])


# --- SKU mappings -----------------------------------------------------------------------------
class SkuMappingImport(ImportKind):
    kind = Kind.SKU_MAPPING
    title = _("SKU 映射")
    permissions = ("inventory.add_skumapping", "inventory.change_skumapping")
    notes = "店铺 + 平台 SKU ID 对应到一个 SKU;已有映射则改为新的 SKU。保存后,因未映射而挂起的订单会自动重新匹配。"
    columns = (
        Column("shop", "店铺编码", required=True, note="必填,店铺的编码(不是名称),须在你的权限范围内", example="demo-taobao"),
        Column("platform_sku_id", "平台SKU ID", required=True, max_length=100, note="必填,平台上的 SKU ID", example="5012345678"),
        Column("sku", "SKU编码", required=True, max_length=64, note="必填,必须是已存在的 SKU", example="BASIN-01"),
        Column("platform_item_id", "平台商品ID", max_length=100,
               note="可选,回写库存时部分平台需要(淘宝 num_iid、拼多多 goods_id、抖音 product_id);空白 = 不修改",
               example="6012345678"),
    )

    def plan(self, table, actor, progress=None):
        plan = Plan(total_rows=len(table.rows))
        rows = list(self.cells(table, plan, progress))
        shop_model = SkuMapping._meta.get_field("shop").related_model
        shops = _in_bulk(shop_model, "code", (v["shop"] for _r, v in rows))
        skus = _in_bulk(Sku, "code", (v["sku"] for _r, v in rows))
        shop_ids = [s.pk for s in shops.values() if actor.scope.allows_shop(s.pk)]
        existing = {}
        for chunk in _chunks(shop_ids):
            for m in SkuMapping.objects.filter(shop_id__in=chunk).select_related("sku"):
                existing[(m.shop_id, m.platform_sku_id)] = m
        seen: dict = {}
        for row, v in rows:
            shop = shops.get(v["shop"])
            if shop is None or not actor.scope.allows_shop(shop.pk):
                plan.errors.append(row_error(row, self.header("shop"), _("店铺“%(code)s”不存在或不在你的权限范围内") % {"code": v["shop"]}))
                continue
            sku = skus.get(v["sku"])
            if sku is None:
                plan.errors.append(row_error(row, self.header("sku"), _("SKU“%(code)s”不存在") % {"code": v["sku"]}))
                continue
            if _dupe(seen, (shop.pk, v["platform_sku_id"]), row, plan, self.header("platform_sku_id"),
                     f"{v['shop']} / {v['platform_sku_id']}"):
                continue
            mapping = existing.get((shop.pk, v["platform_sku_id"]))
            item_id = v.get("platform_item_id")
            if mapping is None:
                plan.created += 1
                plan.work.append((True, SkuMapping(shop=shop, platform_sku_id=v["platform_sku_id"], sku=sku,
                                                   **({"platform_item_id": item_id} if item_id else {}))))
                plan.change({"row": row, "action": "新增", "key": f"{v['shop']} / {v['platform_sku_id']}", "changes": f"→ {sku.code}"})
                continue
            changes = []
            if mapping.sku_id != sku.pk:
                changes.append(f"{mapping.sku.code} → {sku.code}")
                mapping.sku = sku
            if item_id and item_id != mapping.platform_item_id:
                changes.append(f"平台商品ID: {mapping.platform_item_id or '(空)'} → {item_id}")
                mapping.platform_item_id = item_id
            if not changes:
                plan.unchanged += 1
            else:
                plan.updated += 1
                plan.work.append((False, mapping))
                plan.change({"row": row, "action": "更新", "key": f"{v['shop']} / {v['platform_sku_id']}", "changes": ";".join(changes)})
        return plan

    def apply(self, plan, actor):
        self.check_permission(actor)
        for mapping in (m for created, m in plan.work if not created and not actor.scope.allows_shop(m.shop_id)):
            raise NotPermitted(_("店铺不在你的权限范围内"))
        creates = [m for created, m in plan.work if created]
        SkuMapping.objects.bulk_create(creates, batch_size=1000)
        bulk_set(SkuMapping, [m for created, m in plan.work if not created], ["sku", "platform_item_id"])
        for _created, m in plan.work:  # the post_save sent below writes each history row (audit, issue 17)
            m._history_user, m._change_reason = actor.user, "import"
        _saved(SkuMapping, plan.work)  # held orders re-resolve, channel stock is marked for a push


# --- stock counts -----------------------------------------------------------------------------
def stock_count_bulk(*, counts: list[tuple[Warehouse, Sku, int, str]], actor: Actor) -> int:
    """Many stocktake counts at once, with exactly the outcome `services.stock_count` gives
    each one (the same permission, the same refusal below reserved, one STOCKTAKE move per
    changed pool with the counted quantity as on_hand_after, the actor and source on the
    move, the same safety-stock alert after commit), but with the pools locked in one
    id-ordered `SELECT … FOR UPDATE` (the one lock order every stock path uses) and the
    pool updates and ledger rows written with `executemany`. Must run inside the caller's
    transaction; raises on the first refusal, so the caller's transaction rolls back all of
    it. Returns the number of ledger moves written."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("stock_count_bulk must run inside a transaction")
    services._require(actor, "inventory.adjust_stock", "盘点")
    for warehouse, _sku, counted, _reason in counts:
        if not actor.scope.allows_warehouse(warehouse.pk):
            raise NotPermitted(_("仓库“%(name)s”不在你的权限范围内") % {"name": warehouse.name})
        if isinstance(counted, bool) or not isinstance(counted, int) or counted < 0:
            raise InvalidInput(f"盘点数量必须是不小于 0 的整数(收到 {counted!r})")
    pairs = {(w.pk, s.pk) for w, s, _c, _r in counts}
    warehouse_ids = sorted({w for w, _s in pairs})
    sku_ids = sorted({s for _w, s in pairs})
    # A pool appears with its first count, as with `stock_count`'s get_or_create.
    have = set()
    for lookup in in_lists("sku_id", sku_ids):
        have |= set(StockLevel.objects.filter(warehouse_id__in=warehouse_ids, **lookup)
                    .values_list("warehouse_id", "sku_id"))
    StockLevel.objects.bulk_create([StockLevel(warehouse_id=w, sku_id=s) for w, s in sorted(pairs - have)],
                                   batch_size=1000, ignore_conflicts=True)
    ids = []
    for lookup in in_lists("sku_id", sku_ids):
        ids += [pk for pk, w, s in StockLevel.objects.filter(warehouse_id__in=warehouse_ids, **lookup)
                .values_list("pk", "warehouse_id", "sku_id") if (w, s) in pairs]
    pools: dict[tuple[int, int], list] = {}
    for lookup in in_lists("pk", sorted(ids)):
        for pk, w, s, on_hand, reserved in (StockLevel.objects.select_for_update().filter(**lookup).order_by("id")
                                            .values_list("pk", "warehouse_id", "sku_id", "on_hand", "reserved")):
            pools[(w, s)] = [pk, on_hand, reserved]
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    user_id = getattr(actor.user, "pk", None)
    label, source = actor.label, actor.source
    updates, moves, alerts = [], [], []
    for warehouse, sku, counted, reason in counts:
        pool = pools[(warehouse.pk, sku.pk)]
        pk, on_hand, reserved = pool
        if counted < reserved:
            raise InvalidInput(
                f"{warehouse.name} {sku.code}: 盘点数 {counted} 小于已预占 {reserved},请先处理相关订单",
                code="below_reserved",
            )
        delta = counted - on_hand
        if not delta:
            continue
        pool[1] = counted
        updates.append((pk, counted, at))
        moves.append((pk, StockMove.Kind.STOCKTAKE.value, delta, 0, counted, reserved, (reason or "盘点")[:255],
                      user_id, label, source, at))
        if sku.safety_stock and counted - reserved < sku.safety_stock:
            alerts.append((pk, counted - reserved, sku.safety_stock))
    update_rows(StockLevel, ["on_hand", "updated_at"], updates)
    insert_rows(StockMove, ["stock_level_id", "kind", "on_hand_delta", "reserved_delta", "on_hand_after", "reserved_after",
                            "reason", "actor_id", "actor_label", "source", "created_at"], moves)
    for pool_id, available, threshold in alerts:
        transaction.on_commit(lambda p=pool_id, a=available, t=threshold: notify.stock_alert(p, available=a, threshold=t))
    return len(moves)


class StockCountImport(ImportKind):
    kind = Kind.STOCK_COUNT
    title = _("盘点")
    permissions = ("inventory.adjust_stock",)
    notes = ("盘点数量成为在库数,差额记为一条“盘点”库存流水(不是直接覆盖)。"
             "盘点数不能小于已预占数量;同一仓库 + SKU 只能出现一次。")
    columns = (
        Column("warehouse", "仓库", required=True, note="必填,仓库编码或名称,须在你的权限范围内", example="suzhou", aliases=("仓库编码",)),
        Column("sku", "SKU编码", required=True, max_length=64, note="必填,必须是已存在的 SKU", example="BASIN-01"),
        Column("counted", "盘点数量", "int", required=True, note="必填,不小于 0 的整数", example=120),
        Column("reason", "备注", max_length=200, note="可选,写入库存流水的原因", example="月末盘点"),
    )

    def plan(self, table, actor, progress=None):
        plan = Plan(total_rows=len(table.rows))
        rows = list(self.cells(table, plan, progress))
        warehouses = {}
        for w in Warehouse.objects.all():
            warehouses[w.code] = warehouses[w.name] = w
        skus = _in_bulk(Sku.objects.only("id", "code", "safety_stock"), "code", (v["sku"] for _r, v in rows))
        scope = actor.scope
        wanted_wh = sorted({w.pk for w in warehouses.values() if scope.allows_warehouse(w.pk)})
        pools = {}
        sku_ids = sorted({s.pk for s in skus.values()})
        for lookup in in_lists("sku_id", sku_ids):
            for w, s, on_hand, reserved in StockLevel.objects.filter(warehouse_id__in=wanted_wh, **lookup).values_list(
                    "warehouse_id", "sku_id", "on_hand", "reserved"):
                pools[(w, s)] = (on_hand, reserved)
        seen: dict = {}
        for row, v in rows:
            wh = warehouses.get(v["warehouse"])
            if wh is None:
                plan.errors.append(row_error(row, self.header("warehouse"), _("仓库“%(code)s”不存在") % {"code": v["warehouse"]}))
                continue
            if not scope.allows_warehouse(wh.pk):
                plan.errors.append(row_error(row, self.header("warehouse"), _("仓库“%(name)s”不在你的权限范围内") % {"name": wh.name}))
                continue
            sku = skus.get(v["sku"])
            if sku is None:
                plan.errors.append(row_error(row, self.header("sku"), _("SKU“%(code)s”不存在") % {"code": v["sku"]}))
                continue
            if _dupe(seen, (wh.pk, sku.pk), row, plan, self.header("sku"), f"{wh.name} / {sku.code}"):
                continue
            pool = pools.get((wh.pk, sku.pk))
            on_hand, reserved = pool or (0, 0)
            counted = v["counted"]
            if counted < reserved:
                plan.errors.append(row_error(row, self.header("counted"),
                                             _("盘点数 %(c)s 小于已预占 %(r)s(%(w)s / %(s)s),请先处理相关订单")
                                             % {"c": counted, "r": reserved, "w": wh.name, "s": sku.code}))
                continue
            plan.work.append((wh, sku, counted, v.get("reason") or "盘点导入"))
            if counted == on_hand:
                plan.unchanged += 1
                continue
            if pool is None:
                plan.created += 1
            else:
                plan.updated += 1
            if len(plan.preview) < PREVIEW_ROWS:
                plan.change({"row": row, "action": "盘点", "key": f"{wh.name} / {sku.code}",
                             "changes": f"在库 {on_hand} → {counted}({counted - on_hand:+d})"})
        return plan

    def apply(self, plan, actor):
        stock_count_bulk(counts=plan.work, actor=actor)


KINDS: dict[str, ImportKind] = {k.kind: k for k in (SkuImport(), SkuMappingImport(), StockCountImport(), SafetyStockImport())}


def register(kind: ImportKind) -> ImportKind:
    """Add another app's import kind to the registry (the orders app registers its bulk
    ship import from its `ready()`), so this module never has to import that app."""
    KINDS[kind.kind] = kind
    return kind


def kinds_for(actor: Actor) -> list[ImportKind]:
    return [k for k in KINDS.values() if k.may_import(actor)]


# --- templates ----------------------------------------------------------------------------
def template_xlsx(kind: str) -> bytes:
    """The kind's template: Chinese headers and an example row on sheet 1, a notes sheet."""
    import xlsxwriter

    spec = KINDS[kind]
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False})
    bold = book.add_format({"bold": True, "bg_color": "#DDEBF7"})
    sheet = book.add_worksheet("数据")
    notes = book.add_worksheet("填写说明")
    for i, col in enumerate(spec.columns):
        sheet.write_string(0, i, col.header, bold)
        if isinstance(col.example, int):
            sheet.write_number(1, i, col.example)
        else:
            sheet.write_string(1, i, str(col.example))
        sheet.set_column(i, i, max(12, len(col.header) * 2 + 4))
    notes.write_row(0, 0, ["列名", "是否必填", "类型", "说明"], bold)
    kinds = {"text": "文本", "int": "整数(≥0)", "bool": "是 / 否"}
    for i, col in enumerate(spec.columns, start=1):
        notes.write_string(i, 0, col.header)
        notes.write_string(i, 1, "必填" if col.required else "可选")
        notes.write_string(i, 2, kinds[col.kind] + (f",最多 {col.max_length} 字" if col.max_length else ""))
        notes.write_string(i, 3, col.note)
    last = len(spec.columns) + 2
    notes.write_string(last, 0, "说明")
    notes.write_string(last, 3, spec.notes)
    notes.write_string(last + 1, 3, "第 1 行是表头,请勿修改;示例行(第 2 行)请替换或删除。导入时只读取第一个工作表。")
    notes.write_string(last + 2, 3, "任何一行有错误,整个文件都不会导入;错误按行号列出,改正后重新上传即可。")
    notes.set_column(0, 2, 16)
    notes.set_column(3, 3, 80)
    book.close()
    return buf.getvalue()


# --- jobs ---------------------------------------------------------------------------------
def _actor(job: ImportJob) -> Actor:
    return Actor.of(job.user, Source.IMPORT) if job.user_id else Actor.system("import", Source.IMPORT)


def _fail_file(job: ImportJob, message: str) -> ImportJob:
    job.status = ImportJob.Status.INVALID
    job.errors = [row_error(0, "", message)]
    job.error_count = 1
    job.finished_at = timezone.now()
    job.save()
    return job


def _store_plan(job: ImportJob, plan: Plan) -> None:
    job.total_rows = plan.total_rows
    job.processed_rows = plan.total_rows
    job.created_count, job.updated_count, job.unchanged_count = plan.created, plan.updated, plan.unchanged
    job.errors = sorted(plan.errors, key=lambda e: e["row"])[:1000]
    job.error_count = len(plan.errors)
    job.preview = plan.preview


def start_import(*, kind: str, upload, actor: Actor, options: dict | None = None) -> ImportJob:
    """An uploaded file becomes a job and is checked (a dry run: nothing changes). Small
    files are checked here; files over IMPORT_ASYNC_ROWS rows by a django-q2 task.
    `options`: the upload form's extra choices the kind takes (`ImportKind.options`)."""
    spec = KINDS[kind]
    spec.check_permission(actor)
    name = getattr(upload, "name", "upload")[:255]
    size = getattr(upload, "size", None) or 0
    options = {k: v for k, v in (options or {}).items() if k in spec.options and v}
    job = ImportJob(kind=kind, user=actor.user, actor_label=actor.label, file_name=name, file_size=size,
                    options=options)
    if size > max_bytes():
        job.save()
        return _fail_file(job, _("文件过大(%(size)s MB,上限 %(max)s MB):请拆分后分批导入")
                          % {"size": round(size / 1048576, 1), "max": round(max_bytes() / 1048576, 1)})
    job.file.save(name, upload, save=False)
    job.save()
    try:
        table = read_table(_read(job), name, spec)
    except ImportFileError as exc:
        return _fail_file(job, exc.message)
    table.options = dict(job.options)
    job.total_rows = len(table.rows)
    if job.total_rows > async_rows():
        job.is_async = True
        job.save(update_fields=["total_rows", "is_async"])
        _enqueue("inventory.imports.validate_job", job.pk)
        return job
    job.save(update_fields=["total_rows"])
    return validate_job(job.pk, table=table)


def _read(job: ImportJob) -> bytes:
    job.file.open("rb")
    try:
        return job.file.read()
    finally:
        job.file.close()


def _enqueue(func: str, job_id: int) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(func, job_id, task_name=f"import-{job_id}", group="imports"))


def validate_job(job_id: int, table: Table | None = None) -> ImportJob:
    """The dry run: plan every row, store the preview and the errors, change nothing."""
    job = ImportJob.objects.get(pk=job_id)
    spec = KINDS[job.kind]
    actor = _actor(job)

    def progress(n: int) -> None:
        ImportJob.objects.filter(pk=job_id).update(processed_rows=n)

    try:
        if table is None:
            table = read_table(_read(job), job.file_name, spec)
            table.options = dict(job.options)
        plan = spec.plan(table, actor, progress=progress if job.is_async else None)
    except ImportFileError as exc:
        return _fail_file(job, exc.message)
    except DomainError as exc:
        return _fail_file(job, exc.message)
    _store_plan(job, plan)
    job.status = ImportJob.Status.INVALID if plan.errors else ImportJob.Status.PREVIEW
    if plan.errors:
        job.finished_at = timezone.now()
    job.save()
    return job


def confirm_import(*, job: ImportJob, actor: Actor) -> ImportJob:
    """Apply a previewed job (the person who uploaded it); big jobs go to a task."""
    if job.user_id != getattr(actor.user, "pk", None):
        raise NotPermitted(_("只有上传文件的人可以确认导入"))
    KINDS[job.kind].check_permission(actor)
    updated = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).update(
        status=ImportJob.Status.QUEUED, confirmed_at=timezone.now())
    if not updated:
        raise InvalidInput(_("这个导入已确认或已结束"))
    job.refresh_from_db()
    if job.is_async:
        _enqueue("inventory.imports.apply_job", job.pk)
        return job
    return apply_job(job.pk)


def cancel_import(*, job: ImportJob, actor: Actor) -> ImportJob:
    if job.user_id != getattr(actor.user, "pk", None):
        raise NotPermitted(_("只有上传文件的人可以放弃导入"))
    ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).update(
        status=ImportJob.Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return job


class _Refused(Exception):
    def __init__(self, plan: Plan):
        self.plan = plan


def apply_job(job_id: int) -> ImportJob:
    """All or nothing: plan again and write, in one transaction, through the services."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status != ImportJob.Status.QUEUED:
        return job  # a retried task: already applied or refused
    ImportJob.objects.filter(pk=job_id).update(status=ImportJob.Status.RUNNING, processed_rows=0)
    spec = KINDS[job.kind]
    actor = _actor(job)
    try:
        table = read_table(_read(job), job.file_name, spec)
        table.options = dict(job.options)
        with transaction.atomic():
            plan = spec.plan(table, actor)
            if plan.errors:
                raise _Refused(plan)
            spec.apply(plan, actor)
    except _Refused as refused:
        _store_plan(job, refused.plan)
        job.status = ImportJob.Status.FAILED
    except ImportFileError as exc:
        job.status, job.errors, job.error_count = ImportJob.Status.FAILED, [row_error(0, "", exc.message)], 1
    except DomainError as exc:
        job.status, job.errors, job.error_count = ImportJob.Status.FAILED, [row_error(0, "", exc.message)], 1
    else:
        _store_plan(job, plan)
        job.status = ImportJob.Status.DONE
    job.finished_at = timezone.now()
    job.save()
    return job


def import_file(*, kind: str, data: bytes, file_name: str, actor: Actor, options: dict | None = None) -> Plan:
    """Read, plan and apply in one go (no job): for scripts and the benchmark."""
    spec = KINDS[kind]
    spec.check_permission(actor)
    table = read_table(data, file_name, spec)
    table.options = {k: v for k, v in (options or {}).items() if k in spec.options and v}
    with transaction.atomic():
        plan = spec.plan(table, actor)
        if plan.errors:
            raise _Refused(plan)
        spec.apply(plan, actor)
    return plan


def purge_import_files(days: int | None = None) -> int:
    """Delete uploaded files older than IMPORT_KEEP_DAYS (the job rows stay). A job."""
    cutoff = timezone.now() - timedelta(days=keep_days() if days is None else days)
    purged = 0
    for job in ImportJob.objects.filter(created_at__lt=cutoff, file_purged_at__isnull=True).exclude(file=""):
        job.file.delete(save=False)
        job.file_purged_at = timezone.now()
        job.save(update_fields=["file", "file_purged_at"])
        purged += 1
    return purged
