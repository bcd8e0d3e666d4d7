"""Excel imports that act on orders: bulk ship (运单号) and distributor orders (分销订单).

**Bulk ship by Excel**: (订单号, 快递公司, 运单号[, 发货仓]) per row.

An import kind on the inventory import pipeline (`inventory.imports`: read → plan → apply,
the dry-run preview, row-numbered errors, all or nothing, the job history and the admin
pages). It lives here because it ships orders; `OrdersConfig.ready()` registers it with
`inventory.imports.register`, so inventory never imports orders.

The plan checks every row before anything is written:
- the order exists *and* is in the importing person's scope (outside it, it reads as
  unknown, with the same words);
- the order's state allows the ship transition (packed or partially shipped);
- the carrier is one the shipping code knows (`orders.carriers.codes.CARRIERS`);
- the tracking number is well formed, not repeated in the file, not already used by a
  shipment of another order (or a parcel of this order that already left);
- 发货仓, when given, is a warehouse holding an active reservation of the order; it is
  required when the order still has reservations in several warehouses.

Applying ships each row through `orders.services.order_ship` with the person as the actor
(`Actor.of(user, Source.IMPORT)`): permission `orders.ship_order`, stock consumed through
the inventory ledger, one `Shipment` per parcel, the order's timeline event.
"""

from __future__ import annotations

import re
from collections import defaultdict

from django_fsm import can_proceed
from django.utils.translation import gettext as _

from config.actors import Actor
from config.errors import DomainError, InvalidInput
from config.models import ImportJob
from inventory.imports import PREVIEW_ROWS, Column, ImportKind, Plan, _dupe, in_lists, register, row_error
from inventory.models import Reservation, Warehouse
from orders import services
from orders.carriers.codes import CARRIERS
from orders.models import Order, OrderStatus, Platform, Shipment, Shop
from orders.selectors import scope_orders
from orders.shipping import OPEN

_TRACKING = re.compile(r"^[A-Za-z0-9-]{1,40}$")  # what `services.order_ship` accepts


class TrackingImport(ImportKind):
    kind = ImportJob.Kind.TRACKING
    title = _("运单号(批量发货)")
    permissions = ("orders.ship_order",)
    notes = ("每行发货一个订单(或订单在一个仓库的包裹):消耗预占库存、生成包裹并记录运单号。"
             "只有“已打包”或“部分发货”的订单可以发货;快递公司填编码(如 SF、YTO、ZTO、EMS);"
             "运单号不能在文件内重复,也不能已被其他包裹使用。订单在多个仓库有待发货的预占时,"
             "请填写发货仓(每个仓库一行)。")
    columns = (
        Column("order", "订单号", required=True, max_length=32, note="必填,系统订单号,须在你的权限范围内",
               example="OH2026030100001", aliases=("订单编号",)),
        Column("carrier", "快递公司", required=True, max_length=20,
               note="必填,快递公司编码:" + "、".join(CARRIERS), example="SF", aliases=("快递公司编码",)),
        Column("tracking", "运单号", required=True, max_length=40, note="必填,最多 40 位字母、数字或 -",
               example="SF1234567890"),
        Column("warehouse", "发货仓", max_length=64, note="可选,仓库编码或名称;订单在多个仓库有预占时必填",
               example="", aliases=("仓库", "仓库编码")),
    )

    def plan(self, table, actor: Actor, progress=None) -> Plan:
        plan = Plan(total_rows=len(table.rows))
        rows = list(self.cells(table, plan, progress))
        numbers = sorted({v["order"] for _r, v in rows})
        orders: dict[str, Order] = {}
        for lookup in in_lists("number", numbers, "varchar"):
            for order in scope_orders(Order.objects.filter(**lookup), actor=actor):
                orders[order.number] = order
        # Active reservations by order: {order id: {warehouse id: quantity}}.
        reserved: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for lookup in in_lists("order_line__order_id", sorted(o.pk for o in orders.values())):
            for order_id, warehouse_id, quantity in Reservation.objects.filter(
                    status=Reservation.Status.ACTIVE, **lookup).values_list(
                    "order_line__order_id", "stock_level__warehouse_id", "quantity"):
                reserved[order_id][warehouse_id] += quantity
        warehouses: dict[str, Warehouse] = {}
        by_id: dict[int, Warehouse] = {}
        for w in Warehouse.objects.all():
            warehouses[w.code] = warehouses[w.name] = by_id[w.pk] = w
        used: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        tracking_numbers = sorted({v["tracking"] for _r, v in rows})
        for lookup in in_lists("tracking_number", tracking_numbers, "varchar"):
            for number, order_id, order_number, status in Shipment.objects.filter(**lookup).values_list(
                    "tracking_number", "order_id", "order__number", "status"):
                used[number].append((order_id, order_number, status))
        seen_tracking: dict = {}
        seen_order: dict = {}
        scope = actor.scope
        h = self.header
        for row, v in rows:
            order = orders.get(v["order"])
            if order is None:
                plan.errors.append(row_error(row, h("order"), _("订单“%(n)s”不存在") % {"n": v["order"]}))
                continue
            carrier = v["carrier"].upper()
            if carrier not in CARRIERS:
                plan.errors.append(row_error(row, h("carrier"), _("未知的快递公司“%(c)s”(可用编码:%(known)s)")
                                             % {"c": v["carrier"], "known": "、".join(CARRIERS)}))
                continue
            tracking = v["tracking"]
            if not _TRACKING.match(tracking):
                plan.errors.append(row_error(row, h("tracking"), _("运单号“%(t)s”无效(最多 40 位字母、数字或 -)")
                                             % {"t": tracking}))
                continue
            if _dupe(seen_tracking, tracking, row, plan, h("tracking"), tracking):
                continue
            taken = [(number, status) for order_id, number, status in used.get(tracking, ())
                     if order_id != order.pk or status not in OPEN]
            if taken:
                plan.errors.append(row_error(row, h("tracking"), _("运单号“%(t)s”已被订单 %(o)s 的包裹使用")
                                             % {"t": tracking, "o": taken[0][0]}))
                continue
            if not can_proceed(order.ship):
                plan.errors.append(row_error(row, h("order"),
                                             _("订单 %(n)s 当前状态为「%(s)s」,不能发货(只有已打包或部分发货的订单可以发货)")
                                             % {"n": order.number, "s": order.get_status_display()}))
                continue
            pending = reserved.get(order.pk, {})
            warehouse = None
            if v.get("warehouse"):
                warehouse = warehouses.get(v["warehouse"])
                if warehouse is None:
                    plan.errors.append(row_error(row, h("warehouse"), _("仓库“%(w)s”不存在") % {"w": v["warehouse"]}))
                    continue
                if not scope.allows_warehouse(warehouse.pk):
                    plan.errors.append(row_error(row, h("warehouse"), _("仓库“%(w)s”不在你的权限范围内")
                                                 % {"w": warehouse.name}))
                    continue
                if warehouse.pk not in pending:
                    plan.errors.append(row_error(row, h("warehouse"), _("订单 %(n)s 在 %(w)s 没有待发货的预占")
                                                 % {"n": order.number, "w": warehouse.name}))
                    continue
            elif len(pending) == 1 and not scope.allows_warehouse(next(iter(pending))):
                plan.errors.append(row_error(row, h("warehouse"), _("仓库“%(w)s”不在你的权限范围内")
                                             % {"w": by_id[next(iter(pending))].name}))
                continue
            elif len(pending) > 1:
                names = "、".join(sorted(by_id[w].name for w in pending))
                plan.errors.append(row_error(row, h("warehouse"),
                                             _("订单 %(n)s 在多个仓库(%(w)s)有待发货的预占,请填写发货仓,每个仓库一行")
                                             % {"n": order.number, "w": names}))
                continue
            # One row per order, or per (order, warehouse) when it ships from several.
            key = (order.pk, warehouse.pk if warehouse else None)
            first = seen_order.get((order.pk, None))
            if first is None and warehouse is None:
                first = next((r for (o, _w), r in seen_order.items() if o == order.pk), None)
            if first is not None:
                plan.errors.append(row_error(row, h("order"), _("与第 %(first)s 行重复(%(what)s)")
                                             % {"first": first, "what": order.number}))
                continue
            if _dupe(seen_order, key, row, plan, h("order"), order.number):
                continue
            named = {w for (o, w) in seen_order if o == order.pk}
            after = OrderStatus.PARTIALLY_SHIPPED if warehouse is not None and set(pending) - named else OrderStatus.SHIPPED
            plan.work.append((row, order.pk, warehouse, carrier, tracking))
            plan.updated += 1
            if len(plan.preview) < PREVIEW_ROWS:
                where = f" · {warehouse.name}" if warehouse else (f" · {by_id[next(iter(pending))].name}" if pending else "")
                plan.change({"row": row, "action": _("发货"), "key": order.number,
                             "changes": f"{carrier} {CARRIERS[carrier][0]} {tracking}{where}:"
                                        f"{order.get_status_display()} → {OrderStatus(after).label}"})
        return plan

    def apply(self, plan: Plan, actor: Actor) -> None:
        for row, order_id, warehouse, carrier, tracking in plan.work:
            order = Order.objects.get(pk=order_id)
            try:
                services.order_ship(order=order, actor=actor, warehouse=warehouse, carrier=carrier,
                                    tracking_number=tracking)
            except DomainError as exc:
                raise InvalidInput(_("第 %(row)s 行:%(msg)s") % {"row": row, "msg": exc.message}) from exc


register(TrackingImport())


# --- distributor orders (分销订单) ------------------------------------------------------------
# Columns as the distributor file drop takes them (`orders.platforms.distributor`), plus the shop.
_DIST_NOTES = {
    "order_no": ("必填,分销商的订单号;同一订单号的多行是一个订单的多个商品", "D20260301-001"),
    "placed_at": ("必填,例 2026-03-01 10:30(北京时间)", "2026-03-01 10:30"),
    "receiver_name": ("必填", "张三"),
    "phone": ("必填,手机号或带区号的电话", "13800138000"),
    "province": ("必填,如 浙江省", "浙江省"),
    "city": ("必填,如 杭州市", "杭州市"),
    "district": ("可选", "西湖区"),
    "address": ("必填,详细地址", "文三路 1 号"),
    "sku_code": ("必填,我方 SKU 编码(或已映射的分销商编码)", "SKU-001"),
    "title": ("可选", "收纳盒"),
    "quantity": ("必填,大于 0 的整数", 2),
    "unit_price": ("必填,单价(元),不能为负", "12.50"),
    "shipping_fee": ("可选,运费(元),每个订单填一次", "0"),
    "note": ("可选,买家留言", ""),
    "gift": ("可选,是/否", "否"),
    "status": ("可选,已付款(默认)、已取消、退款中", "已付款"),
}


class DistributorOrderImport(ImportKind):
    """A distributor's order file, in the admin: the rows are checked exactly as the file drop
    checks them (`distributor.payloads_from_rows` and the adapter's `normalize`), the preview
    says which orders would be created or updated, and applying sends them through the same
    path as a sync or `manage.py ingest` (`orders.ingest.ingest_payloads`: upsert, customer
    match, batched allocation) with the importing person as the actor — all or nothing: one
    order the services refuse rolls the whole file back. The shop is the upload form's 店铺编码
    or the file's 店铺编码 column (a distributor shop in the person's scope)."""

    kind = ImportJob.Kind.DISTRIBUTOR_ORDERS
    title = _("分销订单")
    # 主管 (and superusers). Importing the file stands for creating its orders and marking them
    # paid, cancelled and allocated as the sync path would: `apply` grants exactly those.
    permissions = ("orders.import_distributor_orders",)
    GRANTS = ("orders.add_order", "orders.pay_order", "orders.cancel_order", "orders.allocate_order")
    options = ("shop",)
    notes = ("一行是订单的一个商品,同一分销商订单号的行合并为一个订单(收货信息各行须一致)。"
             "上传时选择店铺编码,或在文件中加“店铺编码”列;只能导入分销商店铺。"
             "已存在的订单按分销商订单号更新(已发货的不会被改回)。")

    @property
    def columns(self):
        from orders.platforms import distributor

        cols = [Column("shop", "店铺编码", max_length=50, note="可选,分销商店铺的编码;不填则用上传时选择的店铺",
                       example="dist-a", aliases=("店铺",))]
        for c in distributor.COLUMNS:
            note, example = _DIST_NOTES.get(c.key, ("", ""))
            cols.append(Column(c.key, c.header, required=c.required, note=note, example=example, aliases=c.aliases))
        return tuple(cols)

    def plan(self, table, actor: Actor, progress=None) -> Plan:
        from orders.platforms import distributor
        from orders.platforms.registry import adapter_for
        from orders.selectors import shop_list

        plan = Plan(total_rows=len(table.rows))
        if len(table.rows) > distributor.MAX_ROWS:
            plan.errors.append(row_error(0, "", _("行数超过 %(n)s,请分多个文件导入") % {"n": distributor.MAX_ROWS}))
            return plan
        shops = {s.code: s for s in shop_list(actor=actor).filter(platform=Platform.DISTRIBUTOR, is_active=True)}
        default = str(table.options.get("shop") or "").strip()
        if default and default not in shops:
            plan.errors.append(row_error(0, self.header("shop"), _("店铺“%(c)s”不存在、不是分销商店铺或不在你的权限范围内")
                                         % {"c": default}))
            return plan
        by_shop: dict[str, list] = defaultdict(list)
        for row, raw in table.rows:
            code = str(raw.get("shop") or "").strip() or default
            if not code:
                plan.errors.append(row_error(row, self.header("shop"), _("请在文件中填写店铺编码,或上传时在表单中填写")))
            elif code not in shops:
                plan.errors.append(row_error(row, self.header("shop"), _("店铺“%(c)s”不存在、不是分销商店铺或不在你的权限范围内")
                                             % {"c": code}))
            else:
                # A number typed in Excel (a phone, a quantity) arrives as a float: 13800138000.0 → 13800138000.
                by_shop[code].append((row, {k: int(v) if isinstance(v, float) and v.is_integer() else v
                                            for k, v in raw.items() if k != "shop"}))
        for code, rows in by_shop.items():
            payloads, problems = distributor.payloads_from_rows(rows, excel=True)
            plan.errors.extend(row_error(p.row, p.column, p.message) for p in problems)
            if problems:
                continue
            adapter = adapter_for(shops[code])
            numbers = [p["distributor_order_no"] for p in payloads]
            stored = set()
            for lookup in in_lists("platform_order_id", numbers, "varchar"):
                stored.update(Order.objects.filter(shop=shops[code], **lookup).values_list("platform_order_id", flat=True))
            for payload in payloads:
                first = payload["rows"][0]["row"]
                try:
                    data = adapter.normalize(payload)
                except distributor.DistributorFileRefused as exc:
                    plan.errors.extend(row_error(p.row or first, p.column, p.message) for p in exc.errors)
                    continue
                new = data.platform_order_id not in stored
                if new:
                    plan.created += 1
                else:
                    plan.updated += 1
                plan.work.append((code, payload))
                if len(plan.preview) < PREVIEW_ROWS:
                    plan.change({"row": first, "action": _("新建订单") if new else _("更新订单"),
                                 "key": f"{code} · {data.platform_order_id}",
                                 "changes": _("%(n)s 个商品 · 实付 ¥%(paid)s · %(status)s")
                                 % {"n": len(data.lines), "paid": data.paid_amount, "status": data.platform_status}})
        return plan

    def apply(self, plan: Plan, actor: Actor) -> None:
        from orders.ingest import ingest_payloads

        groups: dict[str, list[dict]] = defaultdict(list)
        for code, payload in plan.work:
            groups[code].append(payload)
        shops = {s.code: s for s in Shop.objects.filter(code__in=list(groups))}
        self.check_permission(actor)
        acting = actor.granting(*self.GRANTS)
        for code, payloads in groups.items():
            report = ingest_payloads(shop=shops[code], payloads=payloads, actor=acting)
            if report.failures:
                problems = []
                for position, reason in report.failures[:20]:
                    payload = payloads[position - 1]
                    problems.append(_("第 %(row)s 行(订单 %(no)s):%(msg)s") % {
                        "row": payload["rows"][0]["row"], "no": payload["distributor_order_no"], "msg": reason})
                raise InvalidInput(";".join(problems))


register(DistributorOrderImport())
