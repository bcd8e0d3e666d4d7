"""Timeline events: one function per kind of thing that happens to an order."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.actors import Actor
from orders.models import Order, OrderEvent

# Which transitions the customer sees on their timeline, and how they read.
PUBLIC_KINDS = {
    "paid": "已付款",
    "allocated": "仓库已接单",
    "packed": "已打包",
    "shipped": "已发货",
    "partially_shipped": "部分商品已发货",
    "delivered": "已签收",
    "completed": "交易完成",
    "cancelled": "订单已取消",
    "returned": "已退货退款",
}


# How each kind reads on screen (translated); stored messages stay as recorded.
KIND_LABELS = {
    "created": _("订单创建"),
    "paid": _("已付款"),
    "allocated": _("仓库已接单"),
    "held": _("挂起"),
    "released": _("解除挂起"),
    "packed": _("已打包"),
    "shipped": _("已发货"),
    "partially_shipped": _("部分商品已发货"),
    "delivered": _("已签收"),
    "completed": _("交易完成"),
    "cancelled": _("订单已取消"),
    "returned": _("已退货退款"),
    "note": _("备注"),
}


def record(*, order: Order, kind: str, actor: Actor, message: str = "", from_status: str = "",
           to_status: str = "", is_public: bool | None = None, data: dict | None = None,
           at: datetime | None = None) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        message=(message or PUBLIC_KINDS.get(kind, ""))[:500],
        actor=actor.user,
        actor_label=actor.label,
        source=actor.source,
        is_public=kind in PUBLIC_KINDS if is_public is None else is_public,
        data=data or {},
        occurred_at=at or timezone.now(),
    )


def order_created(*, order: Order, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return record(order=order, kind="created", actor=actor, to_status=order.status,
                  message=f"订单创建({order.shop.name} {order.platform_order_id})", is_public=True, at=at)


def order_transitioned(*, order: Order, kind: str, from_status: str, actor: Actor, message: str = "",
                       data: dict | None = None, at: datetime | None = None, is_public: bool | None = None) -> OrderEvent:
    return record(order=order, kind=kind, actor=actor, from_status=from_status, to_status=order.status,
                  message=message, data=data, at=at, is_public=is_public)


def order_note(*, order: Order, actor: Actor, message: str, at: datetime | None = None) -> OrderEvent:
    return record(order=order, kind="note", actor=actor, message=message, is_public=False, at=at)
