"""An order's full chain as one Excel workbook (导出全链路, on the order's admin page).

Sheets: 订单 (header + lines), 时间线 (events), 库存流水 (the order's stock moves: those
written for its reservations or naming the order), 包裹与物流 (shipments and their tracking
events), 面单与回传 (each parcel's e-waybill: who requested and printed it, and the tracking-number
push back to the platform), 解密记录 (receiver decryptions, for those who may read that audit;
the others see a line saying so), 紧急放行 (overrides), 导入记录 (imports that touched it), and 退货 / 退款 / 发票,
which say "售后/财务模块尚未上线" until those apps have models.

What 导入记录 covers: the timeline events and stock moves an import wrote for this order
(source "import", e.g. a tracking-number import that shipped it), and tracking-number import
jobs whose stored preview or error report names the order number (the preview keeps the
first `inventory.imports.PREVIEW_ROWS` rows of a file, so an order further down a very large
file shows through its events only). Stock-count and SKU imports touch pools, not orders.

Rules, as for every export (`orders.exports`): the order is read through the person's scope
(`selectors.order_get`: outside it, NotFound → 404), personal data is masked unless
`pii_fields_for(actor)` is empty, every text cell is formula-escaped and written as a
string, and the export is recorded in `ExportLog` (kind 订单, filters
`{"full_chain": number, "order_id": pk}`).
"""

from __future__ import annotations

import io

from django.db.models import Q

from config.actors import Actor, Source
from config.errors import NotFound, NotPermitted
from config.models import ExportLog, ImportJob
from inventory import selectors as inventory_selectors
from inventory.models import StockMove
from orders import selectors
from orders.exports import _local, escape_cell
from orders.models import (Order, OrderEvent, OrderOverride, ParcelOrder, ReceiverDecryption, Shipment, TrackingEvent,
                           TrackingPush)

NOT_YET = "售后/财务模块尚未上线"
PREVIEW_SCAN = 500  # tracking-import jobs looked through for the order number (newest first)


def _order(order_id, actor: Actor) -> Order:
    if not actor.can("orders.view_order"):
        raise NotPermitted("没有权限导出订单")
    order = selectors.order_list(actor=actor).filter(pk=order_id).select_related("shop", "customer").first()
    if order is None:
        raise NotFound("订单不存在")
    return order


def _sheet_order(order: Order, actor: Actor) -> list[list]:
    hidden = selectors.pii_fields_for(actor)

    def pii(value, kind):
        return selectors.masked(value or "", kind, actor=actor) if hidden else (value or "")

    rows = [["字段", "值"],
            ["订单号", order.number], ["店铺", order.shop.name], ["平台", order.shop.get_platform_display()],
            ["平台订单号", order.platform_order_id], ["状态", order.get_status_display()],
            ["挂起原因", order.get_hold_reason_display() if order.hold_reason else ""], ["挂起说明", order.hold_note],
            ["下单时间", _local(order.placed_at)], ["付款时间", _local(order.paid_at)],
            ["承诺发货时间", _local(order.promised_ship_at)],
            ["收件人", pii(order.receiver_name, "name")], ["收件电话", pii(order.receiver_phone, "phone")],
            ["省份", order.province], ["城市", order.city], ["区县", order.district],
            ["详细地址", pii(order.address, "address")],
            ["商品金额", order.goods_amount], ["优惠金额", order.discount_amount], ["运费", order.shipping_fee],
            ["实付金额", order.paid_amount], ["币种", order.currency],
            ["买家留言", order.buyer_note], ["卖家备注", order.seller_note],
            [], ["SKU", "平台 SKU", "商品", "数量", "单价", "优惠", "赠品"]]
    for line in order.lines.select_related("sku").order_by("id"):
        rows.append([line.sku.code if line.sku_id else "", line.platform_sku_id, line.title, line.quantity,
                     line.unit_price, line.discount_amount, line.is_gift])
    return rows


def _sheet_events(order: Order) -> list[list]:
    rows = [["时间", "事件", "原状态", "新状态", "说明", "操作人", "来源", "客户可见"]]
    for e in OrderEvent.objects.filter(order=order).order_by("occurred_at", "id"):
        rows.append([_local(e.occurred_at), str(e.kind_label), e.from_status, e.to_status, e.message, e.actor_label,
                     e.source, e.is_public])
    return rows


def _moves(order: Order, actor: Actor):
    qs = StockMove.objects.filter(Q(order=order) | Q(reservation__order_line__order=order))
    return inventory_selectors.scope_stock_moves(qs, actor=actor).select_related(
        "stock_level__warehouse", "stock_level__sku").order_by("id")


def _sheet_moves(order: Order, actor: Actor) -> list[list]:
    rows = [["时间", "仓库", "SKU", "类型", "在库变动", "预占变动", "变动后在库", "变动后预占", "原因", "操作人", "来源"]]
    for m in _moves(order, actor):
        rows.append([_local(m.created_at), m.stock_level.warehouse.name, m.stock_level.sku.code, m.get_kind_display(),
                     m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after, m.reason, m.actor_label,
                     m.source])
    return rows


def _sheet_shipments(order: Order) -> list[list]:
    rows = [["包裹", "发货仓", "快递公司", "运单号", "状态", "揽收时间", "签收时间", "轨迹时间", "轨迹状态", "地点", "轨迹描述"]]
    shipments = Shipment.objects.filter(order=order).select_related("warehouse").order_by("id")
    tracking: dict[int, list[TrackingEvent]] = {}
    for t in TrackingEvent.objects.filter(shipment__order=order).order_by("occurred_at", "id"):
        tracking.setdefault(t.shipment_id, []).append(t)
    for s in shipments:
        head = [f"#{s.pk}", s.warehouse.name if s.warehouse_id else "", s.carrier, s.tracking_number,
                s.get_status_display(), _local(s.shipped_at), _local(s.delivered_at)]
        events = tracking.get(s.pk) or [None]
        for t in events:
            tail = ["", "", "", ""] if t is None else [_local(t.occurred_at), t.get_state_display(), t.location,
                                                     t.description]
            rows.append(head + tail)
    return rows


def _sheet_waybills(order: Order) -> list[list]:
    rows = [["包裹", "批次包裹", "快递公司", "运单号", "面单服务商", "申请时间", "申请人", "打印时间", "打印人", "打印次数",
             "平台回传", "回传尝试", "平台记录号", "回传说明"]]
    members = {m.shipment_id: m for m in ParcelOrder.objects.filter(order=order, shipment__isnull=False)
               .select_related("parcel__waybill")}
    pushes = {p.shipment_id: p for p in TrackingPush.objects.filter(order=order)}
    for s in Shipment.objects.filter(order=order).order_by("id"):
        member, push = members.get(s.pk), pushes.get(s.pk)
        waybill = getattr(member.parcel, "waybill", None) if member else None
        rows.append([f"#{s.pk}", member.parcel.code if member else "", s.carrier, s.tracking_number,
                     waybill.get_provider_display() if waybill else "",
                     _local(waybill.requested_at) if waybill else "", waybill.requested_by if waybill else "",
                     _local(waybill.printed_at) if waybill else "", waybill.printed_by if waybill else "",
                     waybill.print_count if waybill else 0,
                     push.get_status_display() if push else "", push.attempts if push else 0,
                     push.platform_reference if push else "",
                     (push.note or push.last_error) if push else ""])
    return rows


def _sheet_decryptions(order: Order, actor: Actor) -> list[list]:
    rows = [["时间", "原因", "平台", "解密字段", "成功", "说明", "操作人"]]
    if not actor.can("orders.view_receiverdecryption"):
        return rows + [["", "", "", "", "", "无权查看解密记录", ""]]
    for d in ReceiverDecryption.objects.filter(order=order).order_by("at", "id"):
        rows.append([_local(d.at), d.get_reason_display(), d.platform, "、".join(map(str, d.fields or [])),
                     d.succeeded, d.detail, d.actor_label])
    return rows


def _sheet_overrides(order: Order) -> list[list]:
    rows = [["时间", "类型", "原因", "操作人", "复核人", "复核时间"]]
    for o in OrderOverride.objects.filter(order=order).select_related("reviewed_by").order_by("at", "id"):
        rows.append([_local(o.at), o.get_kind_display(), o.reason, o.actor_label,
                     o.reviewed_by.get_username() if o.reviewed_by_id else "", _local(o.reviewed_at)])
    return rows


def _sheet_imports(order: Order, actor: Actor) -> list[list]:
    rows = [["来源", "时间", "说明", "导入人"]]
    for e in OrderEvent.objects.filter(order=order, source=Source.IMPORT).order_by("occurred_at", "id"):
        rows.append(["时间线(导入)", _local(e.occurred_at), f"{e.kind_label}: {e.message}", e.actor_label])
    for m in _moves(order, actor).filter(source=Source.IMPORT):
        rows.append(["库存流水(导入)", _local(m.created_at), f"{m.get_kind_display()} {m.stock_level.sku.code} {m.reason}",
                     m.actor_label])
    jobs = ImportJob.objects.filter(kind=ImportJob.Kind.TRACKING, created_at__gte=order.created_at).order_by("-id")
    for job in jobs[:PREVIEW_SCAN]:
        if order.number in str(job.preview) or order.number in str(job.errors):
            rows.append([f"导入任务 #{job.pk}({job.get_kind_display()})", _local(job.created_at),
                         f"{job.file_name} · {job.get_status_display()}", job.actor_label])
    if len(rows) == 1:
        rows.append(["", "", "没有导入记录涉及此订单", ""])
    return rows


def sheets(*, order_id, actor: Actor) -> tuple[Order, list[tuple[str, list[list]]]]:
    """The workbook's sheets as (name, rows), the first row of each the header."""
    order = _order(order_id, actor)
    return order, [
        ("订单", _sheet_order(order, actor)),
        ("时间线", _sheet_events(order)),
        ("库存流水", _sheet_moves(order, actor)),
        ("包裹与物流", _sheet_shipments(order)),
        ("面单与回传", _sheet_waybills(order)),
        ("解密记录", _sheet_decryptions(order, actor)),
        ("紧急放行", _sheet_overrides(order)),
        ("导入记录", _sheet_imports(order, actor)),
        ("退货", [["说明"], [NOT_YET]]),
        ("退款", [["说明"], [NOT_YET]]),
        ("发票", [["说明"], [NOT_YET]]),
    ]


def _write(book_sheets: list[tuple[str, list[list]]]) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                                     "strings_to_urls": False})
    bold = book.add_format({"bold": True})
    for name, rows in book_sheets:
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                fmt = bold if r == 0 else None
                if isinstance(value, bool):
                    sheet.write_string(r, c, "是" if value else "否", fmt)
                elif isinstance(value, (int, float)) or value.__class__.__name__ == "Decimal":
                    sheet.write_number(r, c, value, fmt)
                else:
                    sheet.write_string(r, c, escape_cell("" if value is None else str(value)), fmt)
    book.close()
    return out.getvalue()


def order_chain_workbook(*, order_id, actor: Actor) -> tuple[Order, bytes]:
    """The xlsx bytes of the order's full chain, recorded in ExportLog."""
    order, book_sheets = sheets(order_id=order_id, actor=actor)
    data = _write(book_sheets)
    ExportLog.objects.create(kind=ExportLog.Kind.ORDERS, user=actor.user, actor_label=actor.label,
                             filters={"full_chain": order.number, "order_id": order.pk}, file_format="xlsx",
                             row_count=sum(max(len(rows) - 1, 0) for _n, rows in book_sheets),
                             includes_pii=not selectors.pii_fields_for(actor))
    return order, data
