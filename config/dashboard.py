"""The admin home: the day at a glance (issue 17) and the warehouse board (issue 15).

Read-only. `home(request)` returns the panels the person may see, each computed in their
shop / warehouse scope (`orders.selectors.scope_orders`, `inventory.selectors.warehouse_list`)
and cached for `CACHE_SECONDS` per scope in the configured cache (Redis or the database
cache). Every number comes with the admin changelist URL that lists exactly those rows:
the filters are the changelists' own (`status__exact`, `shop__platform__exact`,
`hold_reason__exact`, the `warehouse` and `batch_warehouse` filters, the placing-time
filter) or plain lookups on the order's own columns (`status__in`, `promised_ship_at__lt`),
so following the link shows the same count. (A filter with a single choice on the page —
e.g. the webhook inbox's shop filter when one shop has events — takes its parameter but
does not apply it, so links to such lists use the plain lookup, `?shop=<id>`.)

Speed at a million orders: each panel is one or two grouped queries on indexed columns —
today's orders walk the placing-time index for one day; backlog, overdue and holds start
from the status index (`(status, promised_ship_at)` for the ship-by cut-offs) and only
ever read open orders; sync health reads one row per shop; failing webhooks the status
index; safety-stock alerts the partial index of open alerts. Nothing counts the whole
order table.

Who sees what (`PANELS`): a panel appears only for a person holding the view permissions
of the list its numbers link to. Every role (客服, 仓管, 财务, 运营, 主管) may view orders,
stock, warehouses and shops, so they all get the same panels; failing webhooks need
`orders.change_shop` or `orders.view_webhookevent` (运营, 主管), like the webhook inbox.
The home shows counts only, never personal data.

The first-day guide (`guide`): three pointers tied to real numbers, each only when the role
can do it, until the person dismisses it (`guide_dismiss`, stored in `core.GuideDismissal`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Min, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from config.actors import Actor, Source
from config.errors import NotPermitted

CACHE_SECONDS = 45
CACHE_VERSION = 2
MAX_SHOPS = 50  # rows of the sync-health table (most troubled first)

# panel → the permissions it needs (all of them). Superusers hold every permission.
PANELS: dict[str, tuple[str, ...]] = {
    "orders_today": ("orders.view_order",),
    "board": ("orders.view_order", "inventory.view_warehouse"),  # warehouse board + backlog
    "overdue": ("orders.view_order",),
    "holds": ("orders.view_order",),
    "low_stock": ("orders.view_shop", "inventory.view_sku"),  # the safety-stock alert list
    "sync": ("orders.view_shop",),
}
WEBHOOK_PERMS = ("orders.change_shop", "orders.view_webhookevent")  # any one, like the webhook inbox


def panels_for(user) -> list[str]:
    """The panels `user` may see on the home page."""
    if not (user.is_active and user.is_staff):
        return []
    return [name for name, perms in PANELS.items() if all(user.has_perm(p) for p in perms)]


def may_see_webhooks(user) -> bool:
    return bool(user.is_active and user.is_staff and any(user.has_perm(p) for p in WEBHOOK_PERMS))


# --- time, scope, links -----------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    now: datetime  # UTC, whole seconds (the same value goes into the query and the link)
    start: datetime  # today 00:00 in the shop time zone
    end: datetime  # tomorrow 00:00

    @classmethod
    def at(cls, now: datetime | None = None) -> "Day":
        zone = ZoneInfo(settings.TIME_ZONE)
        now = (now or timezone.now()).replace(microsecond=0)
        local = timezone.localtime(now, zone)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=zone)
        return cls(now=now, start=start, end=end)


def scope_key(actor: Actor) -> str:
    scope = actor.scope
    if scope.unrestricted:
        return "all"
    raw = f"s{sorted(scope.shop_ids) if scope.shop_ids is not None else '*'}" \
          f"w{sorted(scope.warehouse_ids) if scope.warehouse_ids is not None else '*'}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _cached(panel: str, actor: Actor, day: Day, compute):
    key = f"dash:{CACHE_VERSION}:{panel}:{scope_key(actor)}:{day.start:%Y%m%d}"
    data = cache.get(key)
    if data is None:
        data = compute()
        cache.set(key, data, CACHE_SECONDS)
    return data


def order_list_url(**params) -> str:
    return _url("admin:orders_order_changelist", params)


def _url(name: str, params: dict) -> str:
    query = urlencode({k: (",".join(v) if isinstance(v, (list, tuple)) else str(v)) for k, v in params.items()})
    return f"{reverse(name)}?{query}" if query else reverse(name)


def _scoped_orders(actor: Actor, **filters):
    from orders.models import Order
    from orders.selectors import scope_orders

    return scope_orders(Order.objects.filter(**filters), actor=actor).order_by()


def _in_scope_ids(actor: Actor):
    """None for an unrestricted actor, else the ids of the orders in scope (a subquery)."""
    if actor.scope.unrestricted:
        return None
    return _scoped_orders(actor).values("pk")


OPEN = ("paid", "on_hold", "allocated", "packed")  # before shipping: what a ship-by applies to
AT_WAREHOUSE = ("allocated", "packed")  # in a warehouse's hands, not shipped yet


# --- panels ------------------------------------------------------------------------------
def orders_today(actor: Actor, day: Day) -> dict:
    """Today's orders (placed today, Asia/Shanghai) per channel × status."""

    def compute():
        rows = (_scoped_orders(actor, placed_at__gte=day.start, placed_at__lt=day.end)
                .values_list("shop__platform", "status").annotate(n=Count("id")))
        return sorted(rows)

    cells = _cached("orders_today", actor, day, compute)
    base = {"placed_at__gte": str(day.start), "placed_at__lt": str(day.end)}
    from orders.models import OrderStatus, Platform

    platforms = {}
    by_status: dict[str, int] = {}
    for platform, status, n in cells:
        entry = platforms.setdefault(platform, {"code": platform, "label": Platform(platform).label
                                                if platform in Platform.values else platform,
                                                "total": 0, "cells": {}})
        entry["total"] += n
        entry["cells"][status] = n
        by_status[status] = by_status.get(status, 0) + n
    statuses = [s for s in OrderStatus.values if s in by_status]
    channels = []
    for entry in sorted(platforms.values(), key=lambda e: -e["total"]):
        channels.append({
            "label": entry["label"], "total": entry["total"],
            "url": order_list_url(**base, shop__platform__exact=entry["code"]),
            "cells": [{"n": entry["cells"].get(s, 0),
                       "url": order_list_url(**base, shop__platform__exact=entry["code"], status__exact=s)}
                      for s in statuses],
        })
    total = sum(by_status.values())
    return {
        "total": total, "url": order_list_url(**base),
        "statuses": [{"code": s, "label": OrderStatus(s).label, "n": by_status[s],
                      "url": order_list_url(**base, status__exact=s)} for s in statuses],
        "channels": channels,
        "chart": bars([(c["label"], c["total"], c["url"]) for c in channels]),
    }


def board(actor: Actor, day: Day) -> dict:
    """Per warehouse in scope: today's parcels to ship (allocated or packed, ship-by before
    tomorrow 00:00), the backlog (allocated / of which in a pick batch / packed not shipped),
    the overdue ones (ship-by passed) and the parcels in a carrier exception right now."""
    from inventory.models import Reservation
    from inventory.selectors import warehouse_list
    from orders.models import ParcelOrder, Shipment, ShipmentStatus

    def compute():
        warehouses = list(warehouse_list(actor=actor).filter(is_active=True).values_list("pk", "name"))
        ids = [pk for pk, _name in warehouses]
        scoped = _in_scope_ids(actor)
        reservations = Reservation.objects.filter(stock_level__warehouse_id__in=ids,
                                                  order_line__order__status__in=AT_WAREHOUSE)
        if scoped is not None:
            reservations = reservations.filter(order_line__order_id__in=scoped)
        order = "order_line__order_id"
        ship_by = "order_line__order__promised_ship_at"
        counts = {row["stock_level__warehouse_id"]: row for row in reservations.order_by().values(
            "stock_level__warehouse_id").annotate(
            allocated=Count(order, distinct=True, filter=Q(order_line__order__status="allocated")),
            packed=Count(order, distinct=True, filter=Q(order_line__order__status="packed")),
            due_today=Count(order, distinct=True, filter=Q(**{f"{ship_by}__lt": day.end})),
            overdue=Count(order, distinct=True, filter=Q(**{f"{ship_by}__lt": day.now})),
        )}
        batched = ParcelOrder.objects.filter(warehouse_id__in=ids, order__status="allocated")
        if scoped is not None:
            batched = batched.filter(order_id__in=scoped)
        in_batch = dict(batched.order_by().values("warehouse_id").annotate(n=Count("order_id", distinct=True))
                        .values_list("warehouse_id", "n"))
        troubled = Shipment.objects.filter(warehouse_id__in=ids, status=ShipmentStatus.EXCEPTION)
        if scoped is not None:
            troubled = troubled.filter(order_id__in=scoped)
        exceptions = dict(troubled.order_by().values("warehouse_id").annotate(n=Count("id"))
                          .values_list("warehouse_id", "n"))
        rows = []
        for pk, name in warehouses:
            c = counts.get(pk, {})
            rows.append({"pk": pk, "name": name, "allocated": c.get("allocated", 0), "packed": c.get("packed", 0),
                         "due_today": c.get("due_today", 0), "overdue": c.get("overdue", 0),
                         "in_batch": in_batch.get(pk, 0), "exceptions": exceptions.get(pk, 0)})
        return rows

    rows = _cached("board", actor, day, compute)
    for row in rows:
        w = row["pk"]
        row["urls"] = {
            "due_today": order_list_url(status__in=AT_WAREHOUSE, warehouse=w, promised_ship_at__lt=str(day.end)),
            "overdue": order_list_url(status__in=AT_WAREHOUSE, warehouse=w, promised_ship_at__lt=str(day.now)),
            "allocated": order_list_url(status__exact="allocated", warehouse=w),
            "in_batch": order_list_url(status__exact="allocated", batch_warehouse=w),
            "packed": order_list_url(status__exact="packed", warehouse=w),
            "exceptions": _url("admin:orders_shipment_changelist", {"status__exact": "exception",
                                                                    "warehouse__id__exact": w}),
        }
    return {"rows": rows, "chart": bars([(r["name"], r["due_today"], r["urls"]["due_today"]) for r in rows])}


def overdue(actor: Actor, day: Day) -> dict:
    """Open orders (paid, on hold, allocated, packed) past their promised ship-by time, the
    oldest of them, and those due by the end of today."""
    def compute():
        agg = _scoped_orders(actor, status__in=OPEN, promised_ship_at__lt=day.end).aggregate(
            # Counting the indexed column itself (never null here): an index-only scan.
            due_today=Count("promised_ship_at"), overdue=Count("promised_ship_at", filter=Q(promised_ship_at__lt=day.now)),
            oldest=Min("promised_ship_at"))
        oldest = None
        if agg["oldest"] is not None and agg["oldest"] < day.now:
            first = (_scoped_orders(actor, status__in=OPEN, promised_ship_at=agg["oldest"])
                     .values_list("pk", "number").first())
            if first:
                oldest = {"pk": first[0], "number": first[1], "at": agg["oldest"]}
        return {"due_today": agg["due_today"], "overdue": agg["overdue"], "oldest": oldest}

    data = dict(_cached("overdue", actor, day, compute))
    data["url"] = order_list_url(status__in=OPEN, promised_ship_at__lt=str(day.now))
    data["due_today_url"] = order_list_url(status__in=OPEN, promised_ship_at__lt=str(day.end))
    if data["oldest"]:
        data["oldest"] = {**data["oldest"], "url": reverse("admin:orders_order_change", args=[data["oldest"]["pk"]]),
                          "late": _age((day.now - data["oldest"]["at"]).total_seconds())}
    return data


def holds(actor: Actor, day: Day) -> dict:
    """Orders on hold, per reason."""
    from orders.models import HoldReason

    def compute():
        return sorted(_scoped_orders(actor, status="on_hold").values_list("hold_reason").annotate(n=Count("id")),
                      key=lambda r: -r[1])

    rows = []
    for reason, n in _cached("holds", actor, day, compute):
        label = HoldReason(reason).label if reason in HoldReason.values else (reason or _("未注明"))
        # A hold without a reason: `hold_reason__exact=` filters the empty value.
        rows.append({"code": reason, "label": str(label), "n": n,
                     "url": order_list_url(status__exact="on_hold", hold_reason__exact=reason)})
    return {"rows": rows, "total": sum(r["n"] for r in rows), "url": order_list_url(status__exact="on_hold"),
            "chart": bars([(r["label"], r["n"], r["url"]) for r in rows])}


def low_stock(actor: Actor, day: Day) -> dict:
    """Open safety-stock alerts (a SKU below its safety stock in one country), per country.
    The alert list is not limited by shop or warehouse (an alert is per SKU and country),
    so neither is this count."""
    from orders.models import StockAlert

    def compute():
        return sorted(StockAlert.objects.filter(resolved_at__isnull=True).order_by()
                      .values_list("country").annotate(n=Count("id")))

    rows = [{"country": country, "n": n,
             "url": _url("admin:orders_stockalert_changelist", {"resolved_at__isempty": 1, "country": country})}
            for country, n in _cached("low_stock", actor, day, compute)]
    return {"rows": rows, "total": sum(r["n"] for r in rows),
            "url": _url("admin:orders_stockalert_changelist", {"resolved_at__isempty": 1})}


def sync(actor: Actor, day: Day, *, webhooks: bool) -> dict:
    """Per shop in scope: the last sync run, its lag and error; failing webhooks (failed or
    given up) when the person may see the webhook inbox."""
    from orders.models import ShopSyncState, WebhookEvent
    from orders.selectors import shop_list

    def compute():
        shops = shop_list(actor=actor).filter(is_active=True).values("pk")
        severity = {"failed": 0, "partial": 1, "running": 2, "never": 3, "ok": 4}
        states = list(ShopSyncState.objects.filter(shop__in=shops).values_list(
            "pk", "shop_id", "shop__code", "status", "last_finished_at", "lag_seconds", "last_error",
            "consecutive_failures")[: MAX_SHOPS * 4])
        states.sort(key=lambda s: (severity.get(s[3], 9), s[2]))
        return [{"pk": s[0], "shop_id": s[1], "shop": s[2], "status": s[3], "last_finished_at": s[4],
                 "lag_seconds": s[5], "last_error": (s[6] or "")[:120], "failures": s[7]} for s in states[:MAX_SHOPS]]

    def compute_hooks():
        shops = shop_list(actor=actor).values("pk")
        rows = (WebhookEvent.objects.filter(status__in=("failed", "dead"), shop__in=shops).order_by()
                .values_list("shop_id").annotate(n=Count("id")))
        return dict(rows)

    from orders.models import SyncStatus

    rows = [dict(r) for r in _cached("sync", actor, day, compute)]
    failing = _cached("webhooks", actor, day, compute_hooks) if webhooks else {}
    for row in rows:
        row["status_label"] = str(SyncStatus(row["status"]).label) if row["status"] in SyncStatus.values else row["status"]
        row["url"] = reverse("admin:orders_shopsyncstate_change", args=[row["pk"]])
        row["lag"] = _age(row["lag_seconds"])
        if webhooks:
            row["webhooks"] = failing.get(row["shop_id"], 0)
            row["webhooks_url"] = _url("admin:orders_webhookevent_changelist",
                                       {"shop": row["shop_id"], "status__in": ("failed", "dead")})
    failed = sum(1 for r in rows if r["status"] == "failed")
    return {"rows": rows, "webhooks": webhooks, "failed": failed,
            "failed_url": _url("admin:orders_shopsyncstate_changelist", {"status": "failed"})}


def _age(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return _("%(n)d 秒") % {"n": seconds}
    if seconds < 7200:
        return _("%(n)d 分钟") % {"n": seconds // 60}
    if seconds < 172800:
        return _("%(n)d 小时") % {"n": seconds // 3600}
    return _("%(n)d 天") % {"n": seconds // 86400}


# --- charts: inline SVG bars, drawn on the server --------------------------------------------
BAR_WIDTH = 260
ROW_HEIGHT = 24


def bars(rows: list[tuple[str, int, str]]) -> dict:
    """An SVG bar chart's geometry: one bar per (label, value, url), scaled to the largest."""
    top = max([v for _l, v, _u in rows] or [0]) or 1
    out = []
    for i, (label, value, url) in enumerate(rows):
        width = round(BAR_WIDTH * value / top) if value else 0
        out.append({"label": str(label), "value": value, "url": url, "y": i * ROW_HEIGHT + 4,
                    "ty": i * ROW_HEIGHT + 17, "w": max(width, 1 if value else 0), "vx": 124 + width})
    return {"rows": out, "height": len(rows) * ROW_HEIGHT + 8,
            "summary": ",".join(f"{r['label']} {r['value']}" for r in out)}


# --- the first-day guide -----------------------------------------------------------------
ACT_ON_ORDERS = ("orders.hold_order", "orders.allocate_order", "orders.pack_order", "orders.ship_order",
                 "orders.release_order", "orders.cancel_order")
# Buyers' refund requests on orders not shipped yet (the partial index `order_refund_idx`).
REFUND_OPEN = ("paid", "on_hold", "allocated", "packed", "partially_shipped")
REFUND_REVIEW = "orders.cancel_order"  # refunds before shipping end in a cancel: 客服, 主管


def guide_dismissed(user) -> bool:
    from config.models import GuideDismissal

    return GuideDismissal.objects.filter(user_id=user.pk).exists()


def guide(actor: Actor, day: Day) -> list[dict]:
    """The first-day pointers the person can act on (empty once dismissed)."""
    user = actor.user
    if user is None or not (user.is_active and user.is_staff) or guide_dismissed(user):
        return []
    tips = []
    if user.has_perm("orders.view_order") and any(user.has_perm(p) for p in ACT_ON_ORDERS):
        n = overdue(actor, day)["due_today"]
        tips.append({"key": "today", "text": _("今天待处理的订单 %(n)d 单") % {"n": n},
                     "hint": _("已付款、挂起、已分仓、已打包且承诺发货时间在今天结束前的订单"),
                     "url": order_list_url(status__in=OPEN, promised_ship_at__lt=str(day.end))})
    if user.has_perm("orders.view_order") and user.has_perm(REFUND_REVIEW):
        def compute():
            return _scoped_orders(actor, refund_requested=True, status__in=REFUND_OPEN).count()

        n = _cached("refunds", actor, day, compute)
        tips.append({"key": "refund", "text": _("开始一次退货审核"),
                     "hint": _("售后模块尚未上线:这里列出买家在平台申请退款的订单(%(n)d 单)") % {"n": n},
                     "url": order_list_url(refund_requested__exact=1, status__in=REFUND_OPEN)})
    if user.has_perm("orders.view_order") or user.has_perm("inventory.view_stocklevel"):
        tips.append({"key": "export", "text": _("导出对账"),
                     "hint": _("导出记录页:按期间导出库存流水,或在订单列表按筛选导出订单"),
                     "url": reverse("admin:core_exportlog_changelist")})
    return tips


@transaction.atomic
def guide_dismiss(*, actor: Actor) -> bool:
    """The person hides the first-day guide for good. True when it was shown until now."""
    from config.models import GuideDismissal

    user = actor.user
    if user is None or not (user.is_active and user.is_staff):
        raise NotPermitted(_("只有后台员工可以关闭新手指引"))
    _row, created = GuideDismissal.objects.get_or_create(user=user)
    return created


# --- the page ---------------------------------------------------------------------------
def home(request, *, now: datetime | None = None) -> dict:
    """Everything the admin index shows above the app list, for this person."""
    user = request.user
    actor = getattr(request, "_orderhub_admin_actor", None)
    if actor is None or actor.user is not user:
        actor = Actor.of(user, Source.ADMIN)
    day = Day.at(now)
    names = panels_for(user)
    panels = {}
    if "orders_today" in names:
        panels["orders_today"] = orders_today(actor, day)
    if "board" in names:
        panels["board"] = board(actor, day)
    if "overdue" in names:
        panels["overdue"] = overdue(actor, day)
    if "holds" in names:
        panels["holds"] = holds(actor, day)
    if "low_stock" in names:
        panels["low_stock"] = low_stock(actor, day)
    if "sync" in names:
        panels["sync"] = sync(actor, day, webhooks=may_see_webhooks(user))
    return {"panels": panels, "guide": guide(actor, day), "day": day, "cache_seconds": CACHE_SECONDS,
            "day_label": f"{day.start:%Y-%m-%d}"}
