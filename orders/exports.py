"""Excel / CSV exports: orders and shipments (the admin's current filters, scoped and
masked for the role), stock levels, and the stock ledger for a period.

- **Scope and masking**: rows come from the read-side selectors with the person as the
  actor (`orders.selectors.order_list`, `inventory.selectors.stock_level_list` /
  `scope_stock_moves`); personal data goes through `selectors.masked` unless the role may
  see it (`pii_fields_for(actor)` is empty).
- **Formula injection**: every text cell starting with `=`, `+`, `-`, `@`, a tab or a
  carriage return is written with a leading apostrophe (`escape_cell`), in xlsx and CSV
  alike, and xlsx cells are always written as strings (never parsed as formulas).
- **Memory stays flat**: rows are read with `.iterator()` in chunks; xlsx is written by
  xlsxwriter in `constant_memory` mode (each row goes to a temporary file as it is
  written) into a temporary file that is then streamed; CSV is a `StreamingHttpResponse`
  generated row by row.
- **Every export is logged** (`config.models.ExportLog`): who, when, what, the filters,
  the row count, and whether personal data was included.
"""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone

from config.actors import Actor
from config.errors import InvalidInput, NotPermitted
from config.models import ExportLog
from inventory import selectors as inventory_selectors
from inventory.models import StockMove
from orders import selectors
from orders.models import HoldReason, OrderStatus, Shipment, ShipmentLine, ShipmentStatus

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHUNK = 2000


def escape_cell(value):
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _local(value: datetime | None) -> str:
    if value is None:
        return ""
    zone = ZoneInfo(settings.TIME_ZONE)
    return timezone.localtime(value, zone).strftime("%Y-%m-%d %H:%M:%S")


# --- one export: headers + a row iterator ------------------------------------------------
@dataclass
class Table:
    kind: str
    headers: list[str]
    rows: Iterable[list]
    includes_pii: bool
    filters: dict
    file_stem: str
    count: Callable[[], int] | None = None  # how many rows, without reading them


def order_table(*, actor: Actor, orders=None, filters: dict | None = None) -> Table:
    """Orders in the actor's scope (optionally limited to `orders`, e.g. the admin
    changelist's filtered queryset), personal data masked unless the role may see it."""
    if not actor.can("orders.view_order"):
        raise NotPermitted("没有权限导出订单")
    qs = selectors.order_list(actor=actor)
    if orders is not None:
        qs = qs.filter(pk__in=orders.values("pk"))
    hidden = selectors.pii_fields_for(actor)
    statuses, reasons = dict(OrderStatus.choices), dict(HoldReason.choices)
    fields = ("number", "shop__name", "shop__platform", "platform_order_id", "status", "hold_reason",
              "receiver_name", "receiver_phone", "province", "city", "district", "address",
              "goods_amount", "discount_amount", "shipping_fee", "paid_amount", "currency",
              "placed_at", "paid_at", "buyer_note", "seller_note")
    headers = ["订单号", "店铺", "平台", "平台订单号", "状态", "挂起原因", "收件人", "收件电话", "省份", "城市", "区县",
               "详细地址", "商品金额", "优惠金额", "运费", "实付金额", "币种", "下单时间", "付款时间", "买家留言", "卖家备注"]

    def rows() -> Iterator[list]:
        for (number, shop, platform, poid, status, hold, name, phone, province, city, district, address,
             goods, discount, fee, paid, currency, placed, paid_at, buyer_note, seller_note) in (
                qs.values_list(*fields).order_by("-placed_at", "-id").iterator(chunk_size=CHUNK)):
            if hidden:
                name = selectors.masked(name, "name", actor=actor)
                phone = selectors.masked(phone, "phone", actor=actor)
                address = selectors.masked(address, "address", actor=actor)
            yield [number, shop, platform, poid, str(statuses.get(status, status)), str(reasons.get(hold, hold or "")),
                   name, phone, province, city, district, address, goods, discount, fee, paid, currency,
                   _local(placed), _local(paid_at), buyer_note, seller_note]

    return Table(ExportLog.Kind.ORDERS, headers, rows(), includes_pii=not hidden, filters=filters or {}, file_stem="orders",
                 count=qs.count)


def shipment_table(*, actor: Actor, shipments=None, filters: dict | None = None) -> Table:
    """Parcels of the orders in the actor's scope (and, for a person limited to some
    warehouses, only the parcels leaving those), optionally limited to `shipments` (the
    shipment changelist's filtered queryset); the receiver masked unless the role may see it.
    One row per parcel; 商品 sums its lines as "SKU×qty" (one query per chunk of parcels)."""
    if not actor.can("orders.view_shipment"):
        raise NotPermitted("没有权限导出发货包裹")
    qs = scope_shipments(Shipment.objects.all(), actor=actor)
    if shipments is not None:
        qs = qs.filter(pk__in=shipments.values("pk"))
    hidden = selectors.pii_fields_for(actor)
    statuses = dict(ShipmentStatus.choices)
    fields = ("pk", "order__number", "order__shop__name", "order__shop__platform", "order__platform_order_id",
              "warehouse__name", "carrier", "tracking_number", "status", "exception_flag", "exception_note",
              "order__receiver_name", "order__receiver_phone", "order__province", "order__city", "order__district",
              "order__address", "created_at", "shipped_at", "delivered_at", "last_scan_at")
    headers = ["包裹", "订单号", "店铺", "平台", "平台订单号", "发货仓", "快递公司", "运单号", "状态", "异常", "异常说明",
               "收件人", "收件电话", "省份", "城市", "区县", "详细地址", "商品", "建包时间", "发货时间", "签收时间",
               "最近轨迹时间"]

    def items(ids: list[int]) -> dict[int, str]:
        found: dict[int, list[str]] = {}
        for shipment_id, code, platform_sku, quantity in ShipmentLine.objects.filter(shipment_id__in=ids).values_list(
                "shipment_id", "order_line__sku__code", "order_line__platform_sku_id", "quantity").order_by("id"):
            found.setdefault(shipment_id, []).append(f"{code or platform_sku}×{quantity}")
        return {k: "、".join(v) for k, v in found.items()}

    def rows() -> Iterator[list]:
        chunk: list[tuple] = []
        for row in qs.values_list(*fields).order_by("-created_at", "-id").iterator(chunk_size=CHUNK):
            chunk.append(row)
            if len(chunk) == CHUNK:
                yield from emit(chunk)
                chunk = []
        yield from emit(chunk)

    def emit(chunk: list[tuple]) -> Iterator[list]:
        lines = items([row[0] for row in chunk]) if chunk else {}
        for (pk, number, shop, platform, poid, warehouse, carrier, tracking, status, flag, note, name, phone, province,
             city, district, address, created, shipped, delivered, last_scan) in chunk:
            if hidden:
                name = selectors.masked(name, "name", actor=actor)
                phone = selectors.masked(phone, "phone", actor=actor)
                address = selectors.masked(address, "address", actor=actor)
            yield [f"#{pk}", number, shop, platform, poid, warehouse or "", carrier, tracking,
                   str(statuses.get(status, status)), bool(flag), note, name, phone, province, city, district, address,
                   lines.get(pk, ""), _local(created), _local(shipped), _local(delivered), _local(last_scan)]

    return Table(ExportLog.Kind.SHIPMENTS, headers, rows(), includes_pii=not hidden, filters=filters or {},
                 file_stem="shipments", count=qs.count)


def scope_shipments(queryset, *, actor: Actor):
    """Parcels of orders in the actor's scope; a person limited to some warehouses sees only
    the parcels leaving those (a split order's other parcel is another warehouse's)."""
    from orders.models import Order

    queryset = queryset.filter(order__in=selectors.scope_orders(Order.objects.all(), actor=actor))
    if actor.scope.warehouse_ids is not None:
        queryset = queryset.filter(warehouse_id__in=actor.scope.warehouse_ids)
    return queryset


def stock_level_table(*, actor: Actor, sku: str | None = None, warehouse: str | None = None,
                      category: str | None = None) -> Table:
    if not actor.can("inventory.view_stocklevel"):
        raise NotPermitted("没有权限导出库存")
    qs = inventory_selectors.stock_level_list(actor=actor, sku=sku, warehouse=warehouse, category=category)
    headers = ["仓库编码", "仓库", "SKU编码", "名称", "类目", "在库", "已预占", "可用", "在途", "预计到货", "安全库存"]

    def rows():
        for wcode, wname, code, name, category_, on_hand, reserved, inbound, eta, safety in qs.values_list(
                "warehouse__code", "warehouse__name", "sku__code", "sku__name", "sku__category", "on_hand", "reserved",
                "inbound", "inbound_eta", "sku__safety_stock").iterator(chunk_size=CHUNK):
            yield [wcode, wname, code, name, category_, on_hand, reserved, on_hand - reserved, inbound,
                   eta.isoformat() if eta else "", safety]

    filters = {k: v for k, v in {"sku": sku, "warehouse": warehouse, "category": category}.items() if v}
    return Table(ExportLog.Kind.STOCK_LEVELS, headers, rows(), includes_pii=False, filters=filters, file_stem="stock",
                 count=qs.count)


def stock_move_table(*, actor: Actor, start: date, end: date, warehouse: str | None = None) -> Table:
    """The ledger from `start` to `end` inclusive (dates in the shop time zone of the site)."""
    if not actor.can("inventory.view_stockmove"):
        raise NotPermitted("没有权限导出库存流水")
    if end < start:
        raise InvalidInput("结束日期不能早于开始日期")
    zone = ZoneInfo(settings.TIME_ZONE)
    since = datetime.combine(start, datetime.min.time(), zone)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone)
    qs = inventory_selectors.scope_stock_moves(
        StockMove.objects.filter(created_at__gte=since, created_at__lt=until), actor=actor)
    if warehouse:
        qs = qs.filter(stock_level__warehouse__code=warehouse)
    kinds = dict(StockMove.Kind.choices)
    headers = ["时间", "仓库", "SKU编码", "类型", "在库变动", "预占变动", "变动后在库", "变动后预占", "订单号", "原因", "操作人", "来源"]

    def rows():
        for at, wname, code, kind, dq, dr, qa, ra, number, reason, who, source in qs.values_list(
                "created_at", "stock_level__warehouse__name", "stock_level__sku__code", "kind", "on_hand_delta",
                "reserved_delta", "on_hand_after", "reserved_after", "order__number", "reason", "actor_label",
                "source").order_by("id").iterator(chunk_size=CHUNK):
            yield [_local(at), wname, code, str(kinds.get(kind, kind)), dq, dr, qa, ra, number or "", reason, who, source]

    filters = {"start": start.isoformat(), "end": end.isoformat(), **({"warehouse": warehouse} if warehouse else {})}
    return Table(ExportLog.Kind.STOCK_MOVES, headers, rows(), includes_pii=False, filters=filters, file_stem="stock-moves",
                 count=qs.count)


# --- writing ------------------------------------------------------------------------------
def _cell_value(value):
    if isinstance(value, Decimal):
        return value
    return escape_cell(value if value is not None else "")


def write_xlsx(table: Table, out, on_row: Callable[[int], None] | None = None) -> int:
    """Write the table to a file object with flat memory; returns the row count."""
    import xlsxwriter

    book = xlsxwriter.Workbook(out, {"constant_memory": True, "strings_to_formulas": False,
                                     "strings_to_numbers": False, "strings_to_urls": False,
                                     "tmpdir": tempfile.gettempdir()})
    sheet = book.add_worksheet("导出")
    bold = book.add_format({"bold": True})
    for c, header in enumerate(table.headers):
        sheet.write_string(0, c, header, bold)
    n = 0
    for n, row in enumerate(table.rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, bool):
                sheet.write_string(n, c, "是" if value else "否")
            elif isinstance(value, (int, float, Decimal)):
                sheet.write_number(n, c, value)
            else:
                sheet.write_string(n, c, escape_cell("" if value is None else str(value)))
        if on_row and n % 10000 == 0:
            on_row(n)
    book.close()
    return n


def csv_lines(table: Table, done: Callable[[int], None] | None = None) -> Iterator[str]:
    """CSV for Excel (UTF-8 with BOM), one chunk of rows per yield."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(table.headers)
    n = 0
    for n, row in enumerate(table.rows, start=1):
        writer.writerow([_cell_value(v) for v in row])
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
    if done:
        done(n)


def _log(table: Table, actor: Actor, fmt: str) -> ExportLog:
    return ExportLog.objects.create(kind=table.kind, user=actor.user, actor_label=actor.label, filters=table.filters,
                                    file_format=fmt, includes_pii=table.includes_pii)


def async_rows() -> int:
    return int(getattr(settings, "EXPORT_ASYNC_ROWS", 20000))


def _file_name(table: Table, fmt: str) -> str:
    return f"{table.file_stem}-{timezone.localtime().strftime('%Y%m%d-%H%M%S')}.{fmt}"


def respond(table: Table, *, actor: Actor, fmt: str = "xlsx", params: dict | None = None):
    """The export as a download, logged. csv: streamed as it is generated, whatever its
    size. xlsx: built in a temporary file with flat memory, then streamed from disk; over
    EXPORT_ASYNC_ROWS rows a django-q2 task writes it instead (`params` rebuild the same
    table there) and the answer is a redirect to the export's page with its download link."""
    if fmt not in ("xlsx", "csv"):
        raise InvalidInput("导出格式只能是 xlsx 或 csv")
    if fmt == "xlsx" and table.count is not None and table.count() > async_rows():
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        log = queue_export(table, actor=actor, params=params if params is not None else table.filters)
        return HttpResponseRedirect(reverse("admin:core_exportlog_status", args=[log.pk]))
    log = _log(table, actor, fmt)
    name = _file_name(table, fmt)

    def done(n: int) -> None:
        ExportLog.objects.filter(pk=log.pk).update(row_count=n)

    if fmt == "csv":
        response = StreamingHttpResponse(csv_lines(table, done), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    out = tempfile.TemporaryFile()
    done(write_xlsx(table, out))
    out.seek(0)
    return FileResponse(out, as_attachment=True, filename=name, content_type=XLSX_TYPE)


def order_export_filters(params) -> dict:
    """The changelist's query string as it was (for the log): {param: value}."""
    return {k: params.get(k) for k in sorted(params) if k not in ("format", "o", "p")}



# --- big xlsx exports: a task writes the file -------------------------------------------------
def queue_export(table: Table, *, actor: Actor, params: dict) -> ExportLog:
    from django.db import transaction
    from django_q.tasks import async_task

    log = ExportLog.objects.create(kind=table.kind, status=ExportLog.Status.QUEUED, user=actor.user,
                                   actor_label=actor.label, filters=table.filters, file_format="xlsx",
                                   includes_pii=table.includes_pii)
    transaction.on_commit(lambda: async_task("orders.exports.run_export", log.pk, params,
                                             task_name=f"export-{log.pk}", group="exports"))
    return log


def _rebuild(log: ExportLog, params: dict) -> Table:
    from config.actors import Source

    actor = Actor.of(log.user, Source.ADMIN)
    if log.kind in (ExportLog.Kind.ORDERS, ExportLog.Kind.SHIPMENTS):
        from orders.admin_exports import table_from_changelist
        from orders.models import Order, Shipment

        model = Order if log.kind == ExportLog.Kind.ORDERS else Shipment
        return table_from_changelist(model, user=log.user, params=params)
    if log.kind == ExportLog.Kind.STOCK_LEVELS:
        return stock_level_table(actor=actor, **{k: params.get(k) for k in ("sku", "warehouse", "category")})
    return stock_move_table(actor=actor, start=date.fromisoformat(params["start"]), end=date.fromisoformat(params["end"]),
                            warehouse=params.get("warehouse") or None)


def run_export(log_id: int, params: dict) -> int:
    """The django-q2 task: write the export's xlsx into MEDIA_ROOT/exports/ (safe to retry)."""
    from django.core.files import File

    from config.errors import DomainError

    if not ExportLog.objects.filter(pk=log_id, status=ExportLog.Status.QUEUED).update(status=ExportLog.Status.RUNNING):
        return 0
    log = ExportLog.objects.get(pk=log_id)
    try:
        table = _rebuild(log, params)
        with tempfile.TemporaryFile() as out:
            log.row_count = write_xlsx(table, out)
            out.seek(0)
            log.file.save(_file_name(table, "xlsx"), File(out), save=False)
        log.status = ExportLog.Status.DONE
    except DomainError as exc:
        log.status, log.error = ExportLog.Status.FAILED, exc.message[:255]
    except Exception as exc:  # shown on the export's page; the task log has the traceback
        log.status, log.error = ExportLog.Status.FAILED, f"导出失败: {type(exc).__name__}"[:255]
        raise
    finally:
        log.finished_at = timezone.now()
        log.save()
    return log.row_count or 0


def purge_export_files(days: int | None = None) -> int:
    """Delete task export files older than EXPORT_KEEP_DAYS (the log rows stay). A job."""
    keep = int(getattr(settings, "EXPORT_KEEP_DAYS", 7)) if days is None else days
    purged = 0
    for log in ExportLog.objects.filter(created_at__lt=timezone.now() - timedelta(days=keep)).exclude(file=""):
        log.file.delete(save=False)
        log.save(update_fields=["file"])
        purged += 1
    return purged
