"""Timeline events: one small function per kind of thing that happens to an order.

Each writes one `OrderEvent`: `message` is the internal text for staff (it may name
warehouses, staff and what they typed); whether the customer sees the event is decided by
its kind (`orders.models.PUBLIC_WORDING`), and what they read is that fixed wording plus
the safe data (carrier, tracking number), never `message`.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from config.actors import Actor
from orders.models import PUBLIC_WORDING, EventKind, HoldReason, Order, OrderEvent

K = EventKind


def _record(*, order: Order, kind: EventKind, actor: Actor, message: str = "", from_status: str = "",
            data: dict | None = None, at: datetime | None = None, to_status: str | None = None) -> OrderEvent:
    return OrderEvent.objects.create(**event_fields(order=order, kind=kind, actor=actor, message=message,
                                                    from_status=from_status, data=data, at=at, to_status=to_status))


def event_fields(*, order: Order, kind: EventKind, actor: Actor, message: str = "", from_status: str = "",
                 data: dict | None = None, at: datetime | None = None, to_status: str | None = None) -> dict:
    """The fields of one event row (bulk paths build unsaved `OrderEvent(**fields)`)."""
    return dict(
        order=order,
        kind=K(kind).value,
        from_status=from_status or "",
        to_status=order.status if to_status is None else to_status,
        message=message[:500],
        actor=actor.user,
        actor_label=actor.label,
        source=actor.source,
        is_public=K(kind) in PUBLIC_WORDING,
        data=data or {},
        occurred_at=at or timezone.now(),
    )


def _hold_label(reason: str) -> str:
    return str(HoldReason(reason).label) if reason in HoldReason.values else reason


# --- one function per kind --------------------------------------------------------------------
def created_message(order: Order) -> str:
    return f"订单创建({order.shop.name} {order.platform_order_id})"


def order_created(*, order: Order, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.CREATED, actor=actor, at=at, message=created_message(order))


def order_paid(*, order: Order, from_status: str, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.PAID, actor=actor, from_status=from_status, at=at, message="已付款")


# The same rows unsaved, for bulk paths (`orders.ingest`): build them as the order's
# in-memory status moves, then `OrderEvent.objects.bulk_create`.
def created_fields(*, order: Order, actor: Actor, at: datetime | None = None) -> dict:
    return event_fields(order=order, kind=K.CREATED, actor=actor, at=at, message=created_message(order))


def paid_fields(*, order: Order, from_status: str, actor: Actor, at: datetime | None = None) -> dict:
    return event_fields(order=order, kind=K.PAID, actor=actor, from_status=from_status, at=at, message="已付款")


def held_fields(*, order: Order, from_status: str, actor: Actor, reason: str, note: str = "",
                at: datetime | None = None) -> dict:
    return event_fields(order=order, kind=K.HELD, actor=actor, from_status=from_status, at=at,
                        message=held_message(reason, note), data={"reason": reason})


def refund_requested_fields(*, order: Order, actor: Actor, platform_status: str = "",
                            at: datetime | None = None) -> dict:
    return event_fields(order=order, kind=K.REFUND_REQUESTED, actor=actor, at=at, to_status="",
                        message=refund_requested_message(platform_status), data={"platform_status": platform_status})


def refund_requested_message(platform_status: str = "") -> str:
    return "买家在平台申请退款/退货" + (f"({platform_status})" if platform_status else "")


def allocated_message(warehouse_names: list[str]) -> str:
    return f"分配至 {'、'.join(warehouse_names)}" + ("(拆单)" if len(warehouse_names) > 1 else "")


def order_allocated(*, order: Order, from_status: str, actor: Actor, warehouse_names: list[str], data: dict,
                    at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.ALLOCATED, actor=actor, from_status=from_status, at=at, data=data,
                   message=allocated_message(warehouse_names))


def held_message(reason: str, note: str = "") -> str:
    return f"挂起: {_hold_label(reason)}" + (f"({note})" if note else "")


def order_held(*, order: Order, from_status: str, actor: Actor, reason: str, note: str = "",
               at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.HELD, actor=actor, from_status=from_status, at=at,
                   message=held_message(reason, note), data={"reason": reason})


def order_released(*, order: Order, from_status: str, actor: Actor, previous_reason: str, note: str = "",
                   released: int = 0, at: datetime | None = None) -> OrderEvent:
    message = "解除挂起" + (f": {note}" if note else "")
    if released:
        message += f";释放不完整的预占 {released} 件,待重新分仓"
    return _record(order=order, kind=K.RELEASED, actor=actor, from_status=from_status, at=at, message=message,
                   data={"previous_reason": previous_reason, "released_quantity": released})


def order_packed(*, order: Order, from_status: str, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.PACKED, actor=actor, from_status=from_status, at=at, message="已打包")


def order_shipped(*, order: Order, from_status: str, actor: Actor, warehouse_name: str = "", warehouse_code: str = "",
                  carrier: str = "", tracking_number: str = "", shipments: list[int] | None = None,
                  at: datetime | None = None) -> OrderEvent:
    """The shipments (`orders.Shipment`) hold carrier and tracking number; the event keeps a
    copy of both because the customer's wording shows them."""
    kind = K.PARTIALLY_SHIPPED if order.status == "partially_shipped" else K.SHIPPED
    where = f"{warehouse_name} " if warehouse_name else ""
    return _record(order=order, kind=kind, actor=actor, from_status=from_status, at=at,
                   message=f"{where}已发货" + (f",{carrier} {tracking_number}" if tracking_number else ""),
                   data={"warehouse": warehouse_code or None, "carrier": carrier, "tracking_number": tracking_number,
                         "shipments": list(shipments or [])})


def order_delivered(*, order: Order, from_status: str, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return OrderEvent.objects.create(**delivered_fields(order=order, from_status=from_status, actor=actor, at=at))


def delivered_fields(*, order: Order, from_status: str, actor: Actor, at: datetime | None = None) -> dict:
    """`order_delivered`'s row, unsaved (the batched scans write many in one insert)."""
    return event_fields(order=order, kind=K.DELIVERED, actor=actor, from_status=from_status, at=at, message="已签收")


def order_completed(*, order: Order, from_status: str, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.COMPLETED, actor=actor, from_status=from_status, at=at, message="交易完成")


def order_cancelled(*, order: Order, from_status: str, actor: Actor, reason: str = "", released: int = 0,
                    at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.CANCELLED, actor=actor, from_status=from_status, at=at,
                   message="订单已取消" + (f": {reason}" if reason else ""),
                   data={"reason": reason, "released_quantity": released})


def order_returned(*, order: Order, from_status: str, actor: Actor, reason: str = "",
                   at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.RETURNED, actor=actor, from_status=from_status, at=at,
                   message="已退货退款" + (f": {reason}" if reason else ""), data={"reason": reason})


def order_note(*, order: Order, actor: Actor, message: str, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.NOTE, actor=actor, message=message, at=at, to_status="")


def _stock_lines(*, order: Order, kind: EventKind, actor: Actor, lines: list[tuple[str, str, int]], key: str,
                 prefix: str, at: datetime | None) -> OrderEvent:
    """One event listing (warehouse name, SKU code, quantity) lines, stored under `data[key]`."""
    parts = "、".join(f"{w} {sku}×{q}" for w, sku, q in lines)
    return _record(order=order, kind=kind, actor=actor, at=at, to_status="", message=f"{prefix}: {parts}",
                   data={key: [[w, sku, q] for w, sku, q in lines]})


def reservations_expired(*, order: Order, actor: Actor, released: list[tuple[str, str, int]],
                         at: datetime | None = None) -> OrderEvent:
    """`released`: (warehouse name, SKU code, quantity) of each expired reservation."""
    return _stock_lines(order=order, kind=K.RESERVATIONS_EXPIRED, actor=actor, lines=released, key="released",
                        prefix="备货预占未在时限内确认,已释放", at=at)


def stock_confirmed(*, order: Order, actor: Actor, confirmed: list[tuple[str, str, int]],
                    at: datetime | None = None) -> OrderEvent:
    """`confirmed`: (warehouse name, SKU code, quantity) of each reservation confirmed."""
    return _stock_lines(order=order, kind=K.STOCK_CONFIRMED, actor=actor, lines=confirmed, key="confirmed",
                        prefix="备货已确认,预占不再过期", at=at)


def skus_resolved(*, order: Order, actor: Actor, resolved: list[tuple[str, str]], at: datetime | None = None) -> OrderEvent:
    """`resolved`: (platform SKU id, SKU code) of each line matched again."""
    parts = "、".join(f"{p} → {code}" for p, code in resolved)
    return _record(order=order, kind=K.SKUS_RESOLVED, actor=actor, at=at, to_status="",
                   message=f"SKU 映射已补齐: {parts}", data={"resolved": [list(r) for r in resolved]})


# --- what the platform changes (orders.ingest) -------------------------------------------------
# Messages name the fields that changed, never their values: receiver data is personal, and
# the timeline is read by roles that see it masked.
def platform_updated(*, order: Order, actor: Actor, fields: list[str], data: dict | None = None,
                     at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.PLATFORM_UPDATED, actor=actor, at=at, to_status="",
                   message="平台更新: " + "、".join(fields), data=data or {})


def address_changed(*, order: Order, actor: Actor, fields: list[str], rerouted: bool = False,
                    at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.ADDRESS_CHANGED, actor=actor, at=at, to_status="",
                   message="平台修改收货信息(" + "、".join(fields) + ")" + (",已重新分仓" if rerouted else ""),
                   data={"fields": fields, "rerouted": rerouted})


def address_change_refused(*, order: Order, actor: Actor, fields: list[str], what: str = "收货信息",
                           at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.ADDRESS_CHANGE_REFUSED, actor=actor, at=at, to_status="",
                   message=f"订单已打包,平台修改的{what}未生效(" + "、".join(fields) + "),请人工联系买家或平台",
                   data={"fields": fields, "what": what})


def platform_cancelled(*, order: Order, actor: Actor, platform_status: str, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.PLATFORM_CANCELLED, actor=actor, at=at, to_status="",
                   message=f"平台已取消订单({platform_status}),但订单已发货,未取消,请跟进售后",
                   data={"platform_status": platform_status})


def refund_requested(*, order: Order, actor: Actor, platform_status: str = "", at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.REFUND_REQUESTED, actor=actor, at=at, to_status="",
                   message=refund_requested_message(platform_status), data={"platform_status": platform_status})


def refund_closed(*, order: Order, actor: Actor, at: datetime | None = None) -> OrderEvent:
    return _record(order=order, kind=K.REFUND_CLOSED, actor=actor, at=at, to_status="",
                   message="平台退款申请已关闭")


# --- carrier tracking (orders.shipping) --------------------------------------------------------
TRACKING_KINDS = {
    "picked_up": K.TRACKING_PICKED_UP, "in_transit": K.TRACKING_IN_TRANSIT,
    "out_for_delivery": K.TRACKING_OUT_FOR_DELIVERY, "delivered": K.TRACKING_DELIVERED,
    "exception": K.TRACKING_EXCEPTION, "returned": K.TRACKING_RETURNED,
}


def tracking_scan(*, order: Order, actor: Actor, shipment_id: int, state: str, carrier_name: str,
                  tracking_number: str, description: str, scan_id: int, at: datetime) -> OrderEvent:
    """One carrier scan on the customer's timeline: the fixed wording of its state plus the
    carrier's name and the tracking number. The carrier's text (which may name couriers and
    their phones) is the internal message only, with phone numbers masked."""
    return OrderEvent.objects.create(**tracking_scan_fields(
        order=order, actor=actor, shipment_id=shipment_id, state=state, carrier_name=carrier_name,
        tracking_number=tracking_number, description=description, scan_id=scan_id, at=at))


def tracking_scan_fields(*, order: Order, actor: Actor, shipment_id: int, state: str, carrier_name: str,
                         tracking_number: str, description: str, scan_id: int, at: datetime) -> dict:
    """`tracking_scan`'s row, unsaved (many scans are written in one bulk insert)."""
    from orders.carriers.base import mask_phones

    return event_fields(order=order, kind=TRACKING_KINDS[state], actor=actor, at=at, to_status="",
                        message=f"{carrier_name} {tracking_number}: {mask_phones(description)}",
                        data={"carrier": carrier_name, "tracking_number": tracking_number, "state": state,
                              "shipment": shipment_id, "scan": scan_id})


def shipment_exception(*, order: Order, actor: Actor, shipment_id: int, tracking_number: str, note: str,
                       at: datetime | None = None) -> OrderEvent:
    """Internal: the carrier reports a problem with a parcel; staff follow it up."""
    return OrderEvent.objects.create(**shipment_exception_fields(
        order=order, actor=actor, shipment_id=shipment_id, tracking_number=tracking_number, note=note, at=at))


def shipment_exception_fields(*, order: Order, actor: Actor, shipment_id: int, tracking_number: str, note: str,
                              at: datetime | None = None) -> dict:
    from orders.carriers.base import mask_phones

    return event_fields(order=order, kind=K.SHIPMENT_EXCEPTION, actor=actor, at=at, to_status="",
                        message=f"包裹 {tracking_number} 异常: {mask_phones(note)}",
                        data={"shipment": shipment_id, "tracking_number": tracking_number})


def shipment_returned(*, order: Order, actor: Actor, shipment_id: int, tracking_number: str, note: str = "",
                      at: datetime | None = None) -> OrderEvent:
    """Internal: a parcel went back to the sender (退回/退签)."""
    return OrderEvent.objects.create(**shipment_returned_fields(
        order=order, actor=actor, shipment_id=shipment_id, tracking_number=tracking_number, note=note, at=at))


def shipment_returned_fields(*, order: Order, actor: Actor, shipment_id: int, tracking_number: str, note: str = "",
                             at: datetime | None = None) -> dict:
    from orders.carriers.base import mask_phones

    return event_fields(order=order, kind=K.SHIPMENT_RETURNED, actor=actor, at=at, to_status="",
                        message=f"包裹 {tracking_number} 已退回" + (f": {mask_phones(note)}" if note else ""),
                        data={"shipment": shipment_id, "tracking_number": tracking_number})


def order_override_released(*, order: Order, from_status: str, actor: Actor, previous_reason: str, reason: str,
                            released: int = 0, at: datetime | None = None) -> OrderEvent:
    message = f"紧急放行:解除系统挂起「{_hold_label(previous_reason)}」,原因: {reason}"
    if released:
        message += f";释放不完整的预占 {released} 件,待重新分仓"
    return _record(order=order, kind=K.OVERRIDE_RELEASED, actor=actor, from_status=from_status, at=at,
                   message=message, data={"previous_reason": previous_reason, "reason": reason,
                                          "released_quantity": released})


def order_override_shipped(*, order: Order, from_status: str, actor: Actor, reason: str, warehouse_name: str,
                           warehouse_code: str, unreserved: list[tuple[str, int]], carrier: str = "",
                           tracking_number: str = "", shipments: list[int] | None = None,
                           at: datetime | None = None) -> OrderEvent:
    """Internal: names the warehouse, the quantities shipped without a lock and the reason."""
    shipped = "、".join(f"{code}×{q}" for code, q in unreserved)
    message = f"紧急放行:无库存锁发货({warehouse_name})" + (f",未预占 {shipped}" if shipped else "") + f";原因: {reason}"
    return _record(order=order, kind=K.OVERRIDE_SHIPPED, actor=actor, from_status=from_status, at=at,
                   message=message, data={"reason": reason, "warehouse": warehouse_code,
                                          "unreserved": [[c, q] for c, q in unreserved], "carrier": carrier,
                                          "tracking_number": tracking_number, "shipments": shipments or []})


def tracking_pushed(*, order: Order, actor: Actor, shipment_id: int, platform: str, tracking_number: str,
                    reference: str = "", at: datetime | None = None) -> OrderEvent:
    """Internal: the platform recorded a parcel's tracking number (orders.tracking_push)."""
    return _record(order=order, kind=K.TRACKING_PUSHED, actor=actor, at=at, to_status="",
                   message=f"运单号 {tracking_number} 已回传 {platform}" + (f"({reference})" if reference else ""),
                   data={"shipment": shipment_id, "tracking_number": tracking_number, "reference": reference})


def tracking_push_failed(*, order: Order, actor: Actor, shipment_id: int, platform: str, tracking_number: str,
                         error: str, attempts: int, at: datetime | None = None) -> OrderEvent:
    """Internal: pushing a tracking number gave up (permanent error or out of tries); staff follow up."""
    return _record(order=order, kind=K.TRACKING_PUSH_FAILED, actor=actor, at=at, to_status="",
                   message=f"运单号 {tracking_number} 回传 {platform} 失败({attempts} 次): {error}"[:500],
                   data={"shipment": shipment_id, "tracking_number": tracking_number, "attempts": attempts})


def record_many(fields: list[dict], *, batch_size: int = 500) -> list[OrderEvent]:
    """Append many events (each built by an `*_fields` helper) in bulk inserts. The timeline
    stays append-only: its trigger refuses UPDATE and DELETE, inserts are what it is for."""
    return OrderEvent.objects.bulk_create([OrderEvent(**f) for f in fields], batch_size=batch_size)
