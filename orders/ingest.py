"""Orders from the platforms: one upsert for sync, webhooks and `manage.py ingest`.

`upsert_order` creates (through `orders.services.order_create`) or updates the order of
(shop, platform_order_id), in one transaction:

- an identical version (same normalized content) or an older one (`platform_updated_at`
  before the stored one) changes nothing and counts ``unchanged``;
- lines are matched by the platform's line id (`OrderLine.platform_line_id`);
- the platform's seller memo goes to `Order.platform_memo`; `seller_note` is what staff type
  and the platform never writes it;
- a platform cancellation before shipment cancels through `order_cancel` (stock released);
  after shipment the order is flagged (`platform_flags`) with an event, not cancelled;
- an address change before packing is applied, recorded, and re-routed (reservations
  released, the order allocated again by the routing rules); after packing it is refused
  and flagged with an event; line changes follow the same rule;
- a refund request sets `Order.refund_requested` with an event;
- a valid but incomplete order (no lines, an unmapped SKU) is stored and held with the
  reason (`order_create` → `order_pay` does that);
- the customer is matched across platforms (`orders.customers.match_customer`).

`ingest_payloads` normalizes raw payloads with the shop's adapter and stores them (a bad
payload is a failure with its position, its neighbours are stored): the batch's new orders
in bulk (`_ingest_batch`: same rows and events as `upsert_order`, one transaction per
`BULK_BATCH`), the others through `upsert_order`, each in its own transaction; then it
allocates the paid orders through the batched allocation service. Every change is an event
on the order's timeline under the actor given (`platform_actor(shop)` for platform traffic).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterable

from django.db import transaction
from django.utils import timezone

from config.actors import Actor, Source
from config.errors import DomainError, ErrorCode, InvalidInput, NotPermitted
from inventory import services as inventory
from inventory.models import Reservation
from orders import customers, events, services
from orders.models import HoldReason, Order, OrderEvent, OrderLine, OrderStatus, Shop, new_order_numbers
from orders.platforms.base import NormalizedLine, NormalizedOrder, PlatformError
from orders.platforms.parsing import ParseError


logger = logging.getLogger(__name__)

S = OrderStatus
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
SHIPPED_OR_LATER = {S.PARTIALLY_SHIPPED, S.SHIPPED, S.DELIVERED, S.COMPLETED, S.RETURNED}
PACKED_OR_LATER = {S.PACKED} | SHIPPED_OR_LATER
ALLOCATION_BATCH = 200

# Flags an order carries when the platform changed something we could not apply.
FLAG_CANCELLED_AFTER_SHIPMENT = "cancelled_after_shipment"
FLAG_ADDRESS_AFTER_PACKING = "address_change_after_packing"
FLAG_LINES_AFTER_PACKING = "lines_change_after_packing"
FLAG_LINE_REMOVED_KEPT = "line_removed_kept"
FLAG_SHIPPED_ON_PLATFORM = "shipped_on_platform"

# Order fields the platform owns (plain values; receiver fields are handled as the address).
PLAIN_FIELDS = ("platform_status", "currency", "is_presale", "source_detail", "coupon_codes", "member_level", "is_vip",
                "buyer_note", "invoice_title", "invoice_tax_number", "platform_updated_at")
MONEY_FIELDS = ("goods_amount", "discount_amount", "shipping_fee", "paid_amount")
ADDRESS_FIELDS = ("receiver_name", "receiver_phone", "country", "province", "city", "district", "address", "postcode")


def platform_actor(shop: Shop) -> Actor:
    """Who platform traffic acts as on the timeline: the shop, via platform sync."""
    return Actor.system(shop.code, Source.PLATFORM)


@dataclass
class UpsertResult:
    outcome: str  # created | updated | unchanged
    order: Order
    changes: list[str] = field(default_factory=list)  # what changed (field names, "lines", "cancelled" …)
    allocate: bool = False  # paid and waiting for allocation


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (1-based position, reason)
    order_ids: list[int] = field(default_factory=list)  # orders created or updated
    allocation_errors: list[tuple[int, str]] = field(default_factory=list)  # (order id, reason)
    # 1-based position → (created | updated | unchanged, order id or None): lets a caller that
    # ingested several sources' payloads together (the webhook inbox drain) tell each its outcome.
    outcomes: dict[int, tuple[str, int | None]] = field(default_factory=dict)

    def summary(self) -> str:
        return f"created={self.created} updated={self.updated} unchanged={self.unchanged} failed={self.failed}"

    __str__ = summary


# --- helpers ------------------------------------------------------------------------------
def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def fingerprint(data: NormalizedOrder) -> str:
    """A digest of the normalized order (without the raw payload): equal for the same version
    whatever form the payload came in (numbers as strings, key order, extra keys)."""
    content = {f.name: getattr(data, f.name) for f in fields(data) if f.name != "raw"}
    content["lines"] = [{f.name: getattr(line, f.name) for f in fields(line)} for line in data.lines]
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _money(value, what: str) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"{what}不是有效金额: {value!r}") from exc
    if amount < 0:
        raise InvalidInput(f"{what}不能为负数: {amount}")
    return amount


def line_keys(lines: list[NormalizedLine]) -> list[str]:
    """Each line's key: the platform line id, or (without one) its SKU id and occurrence."""
    seen: Counter = Counter()
    keys = []
    for line in lines:
        if line.platform_line_id:
            key = line.platform_line_id
        else:
            base = line.platform_sku_id or line.sku_code or line.title
            seen[base] += 1
            key = f"{base}#{seen[base]}"
        keys.append(key[:100])
    return keys


def _label(name: str) -> str:
    return str(Order._meta.get_field(name).verbose_name)


def _check_lines(data: NormalizedOrder) -> None:
    for i, line in enumerate(data.lines, start=1):
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) or line.quantity <= 0:
            raise InvalidInput(f"第 {i} 行数量必须是正整数(收到 {line.quantity!r})")
    keys = line_keys(data.lines)
    if len(set(keys)) != len(keys):
        raise InvalidInput("平台行 ID 重复: " + ", ".join(sorted(k for k, n in Counter(keys).items() if n > 1)))


def _has_reservations(order: Order) -> bool:
    return Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE).exists()


def _flag(order: Order, flag: str) -> bool:
    flags = list(order.platform_flags or [])
    if flag in flags:
        return False
    flags.append(flag)
    order.platform_flags = flags
    Order.objects.filter(pk=order.pk).update(platform_flags=flags)
    return True


def _fresh(order: Order) -> Order:
    return Order.objects.select_related("shop", "customer").get(pk=order.pk)


# --- the upsert ---------------------------------------------------------------------------
def upsert_order(*, shop: Shop, data: NormalizedOrder, actor: Actor, allocate: bool = True) -> UpsertResult:
    """Create or update the shop's order `data.platform_order_id` (see the module docstring).
    With `allocate`, a paid order is allocated right after (`ingest_payloads` batches that)."""
    if not actor.can("orders.add_order"):
        raise NotPermitted(f"{actor.label} 没有权限导入平台订单")
    if not data.platform_order_id:
        raise InvalidInput("缺少平台订单号")
    with transaction.atomic():
        existing = (Order.objects.select_for_update(of=("self",)).select_related("shop")
                    .filter(shop=shop, platform_order_id=data.platform_order_id).first())
        if existing is None:
            try:
                result = _create(shop, data, actor)
            except InvalidInput as exc:
                if exc.code != ErrorCode.DUPLICATE:
                    raise
                # A concurrent first delivery of the same order won: update it instead.
                existing = (Order.objects.select_for_update(of=("self",)).select_related("shop")
                            .get(shop=shop, platform_order_id=data.platform_order_id))
                result = _update(existing, data, actor)
        else:
            result = _update(existing, data, actor)
    if allocate and result.allocate:
        allocate_orders([result.order.pk], actor=actor)
        result.order = _fresh(result.order)
    return result


def _create(shop: Shop, data: NormalizedOrder, actor: Actor) -> UpsertResult:
    _check_lines(data)
    match = customers.match_customer(platform=shop.platform, data=data, actor=actor)
    # The platform's memo is not a staff note: order_create gets none, the memo its own field.
    order = services.order_create(shop=shop, data=replace(data, seller_note=""), actor=actor)
    values = {"platform_memo": data.seller_note, "platform_hash": fingerprint(data)}
    if match.customer is not None and order.customer_id != match.customer.pk:
        values["customer"] = match.customer
    if data.refund_requested:
        values["refund_requested"] = True
    Order.objects.filter(pk=order.pk).update(**values)
    for name, value in values.items():
        setattr(order, name, value)
    if data.lines:
        stored = list(order.lines.order_by("id"))
        for line, key in zip(stored, line_keys(data.lines)):
            line.platform_line_id = key
        OrderLine.objects.bulk_update(stored, ["platform_line_id"])
    changes: list[str] = []
    if data.refund_requested:
        events.refund_requested(order=order, actor=actor, platform_status=data.platform_status)
        changes.append("refund_requested")
    order = _apply_cancel(order, data, actor, changes)
    if data.shipped and order.status in (S.PENDING_PAYMENT, S.PAID, S.ON_HOLD):
        # Shipped outside Order Hub (e.g. a backfill of old orders): reserving stock for it
        # would be wrong; a person looks at it.
        _flag(order, FLAG_SHIPPED_ON_PLATFORM)
        events.platform_updated(order=order, actor=actor, fields=[_label("platform_status")],
                                data={"platform_status": data.platform_status, "flag": FLAG_SHIPPED_ON_PLATFORM})
    return UpsertResult(CREATED, order, changes, allocate=_wants_allocation(order))


def _wants_allocation(order: Order) -> bool:
    return order.status == S.PAID and FLAG_SHIPPED_ON_PLATFORM not in (order.platform_flags or [])


def _apply_cancel(order: Order, data: NormalizedOrder, actor: Actor, changes: list[str]) -> Order:
    if not data.cancelled or order.status in (S.CANCELLED, S.RETURNED):
        return order
    if order.status in SHIPPED_OR_LATER:
        if _flag(order, FLAG_CANCELLED_AFTER_SHIPMENT):
            events.platform_cancelled(order=order, actor=actor, platform_status=data.platform_status)
            changes.append(FLAG_CANCELLED_AFTER_SHIPMENT)
        return order
    order = services.order_cancel(order=order, actor=actor, reason=f"平台已取消({data.platform_status})")
    changes.append("cancelled")
    return order


def _update(order: Order, data: NormalizedOrder, actor: Actor) -> UpsertResult:
    digest = fingerprint(data)
    if order.platform_hash == digest:
        return UpsertResult(UNCHANGED, order)
    stored_at, incoming_at = order.platform_updated_at, data.platform_updated_at
    if stored_at is not None and incoming_at is not None and incoming_at < stored_at:
        return UpsertResult(UNCHANGED, order, ["stale"])
    _check_lines(data)
    changes: list[str] = []
    public_fields: list[str] = []

    # 1. Plain fields the platform owns.
    values: dict = {}
    for name in PLAIN_FIELDS:
        new = getattr(data, name)
        if name == "currency":
            new = new or order.currency
        if name in ("coupon_codes",):
            new = list(new)
        if getattr(order, name) != new:
            values[name] = new
    for name in MONEY_FIELDS:
        new = _money(getattr(data, name), _label(name))
        if getattr(order, name) != new:
            values[name] = new
    if data.promised_ship_at is not None and order.promised_ship_at != data.promised_ship_at:
        values["promised_ship_at"] = data.promised_ship_at
    if order.platform_memo != data.seller_note:
        values["platform_memo"] = data.seller_note
    tags = list(order.tags or []) + [t for t in data.tags if t not in (order.tags or [])]
    if tags != list(order.tags or []):
        values["tags"] = tags
    public_fields = [name for name in values if name != "platform_updated_at"]
    Order.objects.filter(pk=order.pk).update(**values, platform_hash=digest, raw=data.raw, updated_at=timezone.now())
    for name, value in values.items():
        setattr(order, name, value)
    if public_fields:
        changes.extend(public_fields)
        events.platform_updated(order=order, actor=actor, fields=[_label(n) for n in public_fields],
                                data={"fields": public_fields})

    # 2. Receiver and lines: applied before packing (re-routed when stock is reserved).
    address = {name: (getattr(data, name) or ("CN" if name == "country" else "")) for name in ADDRESS_FIELDS}
    address_diff = [name for name, value in address.items() if getattr(order, name) != value]
    plan = _line_plan(order, data)
    if not data.cancelled:
        reroute = False
        if address_diff or plan.structural:
            if order.status in PACKED_OR_LATER:
                if address_diff:
                    _flag(order, FLAG_ADDRESS_AFTER_PACKING)
                    events.address_change_refused(order=order, actor=actor, fields=[_label(n) for n in address_diff])
                    changes.append(FLAG_ADDRESS_AFTER_PACKING)
                if plan.structural:
                    _flag(order, FLAG_LINES_AFTER_PACKING)
                    events.address_change_refused(order=order, actor=actor, fields=plan.describe(), what="商品行")
                    changes.append(FLAG_LINES_AFTER_PACKING)
                address_diff, plan = [], plan.cosmetic_only()
            elif order.status in (S.ALLOCATED, S.ON_HOLD) and _has_reservations(order):
                order = _release_for_reroute(order, actor, address=bool(address_diff))
                reroute = order.status == S.PAID
        if address_diff:
            changed = {n: address[n] for n in address_diff}
            if "receiver_phone" in changed or "country" in changed:  # what the admin's phone search looks up
                changed["receiver_phone_normalized"] = services.normalize_phone(address["receiver_phone"], address["country"])
            Order.objects.filter(pk=order.pk).update(**changed)
            for n, value in changed.items():
                setattr(order, n, value)
            events.address_changed(order=order, actor=actor, fields=[_label(n) for n in address_diff], rerouted=reroute)
            changes.append("address")
        if plan.any:
            kept = plan.apply(order)
            events.platform_updated(order=order, actor=actor, fields=["商品行"], data=plan.summary(kept))
            changes.append("lines")
            if kept:
                # Stock moved for a line the platform dropped: its rows stay (the ledger points at
                # them), and the order waits for a person instead of reserving for it again.
                _flag(order, FLAG_LINE_REMOVED_KEPT)
                order = _fresh(order)
                if order.status in (S.PAID, S.ALLOCATED):
                    order = services.order_hold(order=order, actor=actor, reason=HoldReason.MANUAL,
                                                note=f"平台删除了商品行 {', '.join(kept)},请人工处理")

    order = _fresh(order)
    # 3. The customer, when we did not know them yet (e.g. a decrypted phone arrives).
    if order.customer_id is None:
        match = customers.match_customer(platform=order.shop.platform, data=data, actor=actor)
        if match.customer is not None:
            Order.objects.filter(pk=order.pk).update(customer=match.customer)
            changes.append("customer")

    # 4. Payment, data holds lifted, cancellation, refund.
    if data.paid and order.status == S.PENDING_PAYMENT and not data.cancelled:
        order = services.order_pay(order=order, actor=actor, at=data.paid_at)
        changes.append("paid")
    elif order.status == S.ON_HOLD and order.hold_reason in (HoldReason.SKU_UNMAPPED, HoldReason.NO_LINES) \
            and "lines" in changes and not data.cancelled:
        lines = list(order.lines.all())
        if lines and all(line.sku_id for line in lines):
            order = services.order_release(order=order, actor=actor, note="平台更新后商品行已完整")
            changes.append("released")
    order = _fresh(order)
    order = _apply_cancel(order, data, actor, changes)
    if data.refund_requested != order.refund_requested:
        Order.objects.filter(pk=order.pk).update(refund_requested=data.refund_requested)
        if data.refund_requested:
            events.refund_requested(order=order, actor=actor, platform_status=data.platform_status)
        else:
            events.refund_closed(order=order, actor=actor)
        changes.append("refund_requested" if data.refund_requested else "refund_closed")
    if data.shipped and order.status in (S.PAID, S.ON_HOLD, S.ALLOCATED) and _flag(order, FLAG_SHIPPED_ON_PLATFORM):
        events.platform_updated(order=order, actor=actor, fields=[_label("platform_status")],
                                data={"platform_status": data.platform_status, "flag": FLAG_SHIPPED_ON_PLATFORM})
        changes.append(FLAG_SHIPPED_ON_PLATFORM)
    order = _fresh(order)
    outcome = UPDATED if changes or "platform_updated_at" in values else UNCHANGED
    return UpsertResult(outcome, order, changes or (["platform_updated_at"] if outcome == UPDATED else []),
                        allocate=_wants_allocation(order))


def _release_for_reroute(order: Order, actor: Actor, *, address: bool) -> Order:
    """Give back the order's reservations so routing runs again: an allocated order is held
    (address / manual), its reservations released, and the hold lifted (→ paid, allocated
    again afterwards); an order already on hold keeps its hold, without reservations."""
    note = "平台修改收货地址,重新分仓" if address else "平台修改商品行,重新分仓"
    if order.status == S.ALLOCATED:
        order = services.order_hold(order=order, actor=actor, reason=HoldReason.ADDRESS if address else HoldReason.MANUAL,
                                    note=note)
        inventory.release_order_reservations(order=order, actor=actor, reason=note)
        return services.order_release(order=order, actor=actor, note=note)
    inventory.release_order_reservations(order=order, actor=actor, reason=note)
    return _fresh(order)


@dataclass
class _LinePlan:
    """How the stored lines become the incoming ones."""

    shop: Shop
    updates: list[tuple[OrderLine, NormalizedLine, str, list[str]]] = field(default_factory=list)  # line, new, key, fields
    added: list[tuple[str, NormalizedLine]] = field(default_factory=list)
    removed: list[OrderLine] = field(default_factory=list)

    STRUCTURAL = ("quantity", "platform_sku_id", "sku")

    @property
    def structural(self) -> bool:
        return bool(self.added or self.removed or any(set(f) & set(self.STRUCTURAL) for *_x, f in self.updates))

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or any(f for *_x, f in self.updates))

    def cosmetic_only(self) -> "_LinePlan":
        kept = [(line, new, key, [f for f in fs if f not in self.STRUCTURAL])
                for line, new, key, fs in self.updates]
        return _LinePlan(self.shop, [u for u in kept if u[3]])

    def describe(self) -> list[str]:
        return ([f"新增 {k}" for k, _n in self.added] + [f"删除 {l.platform_line_id}" for l in self.removed]
                + [f"{key}: {'、'.join(fs)}" for _l, _n, key, fs in self.updates if fs])

    def summary(self, kept: list[str]) -> dict:
        return {"added": [k for k, _n in self.added], "removed": [l.platform_line_id for l in self.removed
                                                               if l.platform_line_id not in kept],
                "changed": {key: fs for _l, _n, key, fs in self.updates if fs}, "removed_kept": kept}

    def apply(self, order: Order) -> list[str]:
        """Write the plan; returns the keys of removed lines kept because stock moved for them."""
        for line, new, key, fs in self.updates:
            if not fs:
                continue
            line.title, line.quantity, line.is_gift = new.title[:255], new.quantity, new.is_gift
            line.unit_price, line.discount_amount = _money(new.unit_price, "单价"), _money(new.discount_amount, "行优惠")
            line.platform_sku_id, line.platform_line_id = new.platform_sku_id, key
            line.sku = services._resolve_sku(self.shop, new)
            line.save()
        OrderLine.objects.bulk_create([
            OrderLine(order=order, sku=services._resolve_sku(self.shop, new), platform_sku_id=new.platform_sku_id,
                      title=new.title[:255], quantity=new.quantity, unit_price=_money(new.unit_price, "单价"),
                      discount_amount=_money(new.discount_amount, "行优惠"), is_gift=new.is_gift, platform_line_id=key)
            for key, new in self.added])
        kept = []
        for line in self.removed:
            if line.reservations.exists():
                kept.append(line.platform_line_id or str(line.pk))
            else:
                line.delete()
        return kept


def _line_plan(order: Order, data: NormalizedOrder) -> _LinePlan:
    plan = _LinePlan(order.shop)
    if not data.lines:
        # A version without lines (a list answer that leaves them out) says nothing about them:
        # stored lines are never dropped for it.
        return plan
    stored = list(order.lines.select_related("sku").order_by("id"))
    by_key = {line.platform_line_id: line for line in stored if line.platform_line_id}
    unkeyed = [line for line in stored if not line.platform_line_id]
    for key, new in zip(line_keys(data.lines), data.lines):
        line = by_key.pop(key, None)
        if line is None:  # a line stored before line ids were kept: match it by SKU id
            line = next((l for l in unkeyed if l.platform_sku_id == new.platform_sku_id), None)
            if line is not None:
                unkeyed.remove(line)
        if line is None:
            plan.added.append((key, new))
            continue
        changed = []
        if line.title != new.title[:255]:
            changed.append("title")
        if line.quantity != new.quantity:
            changed.append("quantity")
        if line.unit_price != _money(new.unit_price, "单价"):
            changed.append("unit_price")
        if line.discount_amount != _money(new.discount_amount, "行优惠"):
            changed.append("discount_amount")
        if line.is_gift != new.is_gift:
            changed.append("is_gift")
        if line.platform_sku_id != new.platform_sku_id:
            changed.append("platform_sku_id")
        sku = services._resolve_sku(order.shop, new)
        if (sku.pk if sku else None) != line.sku_id and (sku is not None or "platform_sku_id" in changed):
            changed.append("sku")
        if line.platform_line_id != key and not changed:
            line.platform_line_id = key
            line.save(update_fields=["platform_line_id"])
        plan.updates.append((line, new, key, changed))
    plan.removed = list(by_key.values()) + unkeyed
    return plan


# --- allocation ---------------------------------------------------------------------------
def allocate_orders(order_ids: list[int], *, actor: Actor) -> list[tuple[int, str]]:
    """Allocate paid orders through the batched service (`order_allocate_bulk`), in batches;
    a batch that fails is retried order by order. Returns (order id, reason) of failures."""
    errors: list[tuple[int, str]] = []
    ids = sorted(set(order_ids))
    bulk = getattr(services, "order_allocate_bulk", None)
    for start in range(0, len(ids), ALLOCATION_BATCH):
        chunk = ids[start:start + ALLOCATION_BATCH]
        if bulk is not None:
            try:
                bulk(order_ids=chunk, actor=actor)
                continue
            except DomainError as exc:
                logger.warning("bulk allocation of %d orders failed (%s); one by one", len(chunk), exc)
        for order_id in chunk:
            order = Order.objects.filter(pk=order_id, status=S.PAID).first()
            if order is None:
                continue
            try:
                services.order_allocate(order=order, actor=actor)
            except DomainError as exc:
                errors.append((order_id, exc.message))
    return errors


# --- many payloads ------------------------------------------------------------------------
def _reason(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, (PlatformError, ParseError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _raise_envelope(adapter, payload: dict) -> None:
    """A platform error envelope as a payload fails with the platform's code and message."""
    check = getattr(adapter, "raise_for_error", None)
    if check is not None:
        check(payload)
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and len(payload) == 1:
        first = errors[0]
        raise PlatformError(getattr(adapter, "code", ""), str(first.get("code", "")),
                            str(first.get("message", "")) + (f" ({first['details']})" if first.get("details") else ""))


def _one(shop: Shop, position: int, data: NormalizedOrder, actor: Actor, report: IngestReport,
         to_allocate: list[int]) -> None:
    """The per-order path for one normalized payload (its own transaction)."""
    try:
        result = upsert_order(shop=shop, data=data, actor=actor, allocate=False)
    except Exception as exc:  # noqa: BLE001 — one bad payload never loses its neighbours
        _fail(shop, position, exc, report)
        return
    _count(result, report, to_allocate, position)


def _fail(shop: Shop, position: int, exc: Exception, report: IngestReport) -> None:
    if not isinstance(exc, (DomainError, PlatformError, ValueError, KeyError, TypeError)):
        logger.error("ingest %s: payload %d failed", shop.code, position, exc_info=exc)
    report.failed += 1
    report.failures.append((position, _reason(exc)))


def _count(result: UpsertResult, report: IngestReport, to_allocate: list[int], position: int | None = None) -> None:
    setattr(report, result.outcome, getattr(report, result.outcome) + 1)
    if position is not None:
        report.outcomes[position] = (result.outcome, result.order.pk)
    if result.outcome != UNCHANGED:
        report.order_ids.append(result.order.pk)
    if result.allocate:
        to_allocate.append(result.order.pk)


def ingest_payloads(*, shop: Shop, payloads: Iterable[dict], actor: Actor, adapter=None,
                    bulk: bool = True) -> IngestReport:
    """Normalize and upsert the raw payloads, then allocate the paid orders in batches.
    Failures are (1-based position, reason); they never stop the rest.

    With `bulk` (the default), payloads are taken `BULK_BATCH` at a time: orders not stored
    yet are written together (`_bulk_create`, one transaction per batch), the others go
    through `upsert_order` one by one (each its own transaction). Same rows, events and
    hold reasons as `bulk=False`, which runs every payload through `upsert_order`."""
    from orders.platforms.registry import adapter_for

    adapter = adapter or adapter_for(shop)
    report = IngestReport()
    to_allocate: list[int] = []
    pending: list[tuple[int, NormalizedOrder]] = []
    for position, payload in enumerate(payloads, start=1):
        try:
            if not isinstance(payload, dict):
                raise InvalidInput(f"不是订单对象({type(payload).__name__})")
            _raise_envelope(adapter, payload)
            data = adapter.normalize(payload)
        except Exception as exc:  # noqa: BLE001
            _fail(shop, position, exc, report)
            continue
        if not bulk:
            _one(shop, position, data, actor, report, to_allocate)
            continue
        pending.append((position, data))
        if len(pending) >= BULK_BATCH:
            _ingest_batch(shop, pending, actor, report, to_allocate)
            pending = []
    if pending:
        _ingest_batch(shop, pending, actor, report, to_allocate)
    report.failures.sort(key=lambda f: f[0])
    if to_allocate:
        report.allocation_errors = allocate_orders(to_allocate, actor=actor)
    return report


# --- the bulk path ------------------------------------------------------------------------
BULK_BATCH = 500  # orders per bulk transaction


@dataclass
class _New:
    """A new order validated and built in memory (no database yet)."""

    position: int
    data: NormalizedOrder
    order: Order
    lines: list[OrderLine]


def _ingest_batch(shop: Shop, items: list[tuple[int, NormalizedOrder]], actor: Actor, report: IngestReport,
                  to_allocate: list[int]) -> None:
    """New orders of the batch in bulk, the rest one by one (after them, in position order).
    A bulk write that fails rolls back and its orders go one by one as well."""
    if len(items) < 2 or not (actor.can("orders.add_order") and actor.can(services.transition_permission("pay"))):
        for position, data in items:
            _one(shop, position, data, actor, report, to_allocate)
        return
    pids = {d.platform_order_id for _p, d in items if d.platform_order_id}
    stored = {pid: (digest, at) for pid, digest, at in Order.objects.filter(shop=shop, platform_order_id__in=pids)
              .values_list("platform_order_id", "platform_hash", "platform_updated_at")}
    seen: set[str] = set()
    new: list[_New] = []
    rest: list[tuple[int, NormalizedOrder]] = []
    for position, data in items:
        pid = data.platform_order_id
        first = bool(pid) and pid not in seen
        seen.add(pid)
        if first and pid in stored:
            if _unchanged(data, *stored[pid]):
                report.unchanged += 1  # what `_update` decides first, without a transaction
                report.outcomes[position] = (UNCHANGED, None)
            else:
                rest.append((position, data))
            continue
        built = _build(shop, position, data) if first and not data.cancelled and not data.shipped else None
        if built is None:
            rest.append((position, data))  # stored, repeated, cancelled/shipped, or invalid: one by one
        else:
            new.append(built)
    if new:
        fits = customers.bulk_matchable(platform=shop.platform, orders=[n.data for n in new])
        rest.extend((n.position, n.data) for n, ok in zip(new, fits) if not ok)
        new = [n for n, ok in zip(new, fits) if ok]
    if len(new) >= 2:
        try:
            with transaction.atomic():
                _bulk_create(shop, new, actor)
        except Exception as exc:  # noqa: BLE001 — e.g. a concurrent batch stored some of them first
            logger.warning("ingest %s: bulk write of %d orders failed (%s); one by one", shop.code, len(new), exc)
            rest.extend((n.position, n.data) for n in new)
        else:
            for n in new:
                _count(UpsertResult(CREATED, n.order, allocate=_wants_allocation(n.order)), report, to_allocate,
                       n.position)
    else:
        rest.extend((n.position, n.data) for n in new)
    for position, data in sorted(rest, key=lambda item: item[0]):
        _one(shop, position, data, actor, report, to_allocate)


def _unchanged(data: NormalizedOrder, digest: str, stored_at: datetime | None) -> bool:
    """`_update`'s first two checks: the same version, or an older one."""
    if digest == fingerprint(data):
        return True
    incoming_at = data.platform_updated_at
    return stored_at is not None and incoming_at is not None and incoming_at < stored_at


def _build(shop: Shop, position: int, data: NormalizedOrder) -> _New | None:
    """The order and its lines as `order_create` + `_create` would store them, unsaved (no
    number, customer or SKU yet); None when the per-order path must decide (it then fails
    with the reason, or handles what the bulk path does not)."""
    try:
        _check_lines(data)
        placed_at = data.placed_at or timezone.now()
        order = Order(
            number="",  # given in `_bulk_create` (the default would take a serial per order now)
            shop=shop, platform_order_id=data.platform_order_id,
            platform_status=data.platform_status, currency=data.currency or shop.currency,
            goods_amount=services._money(data.goods_amount, "商品金额"),
            discount_amount=services._money(data.discount_amount, "优惠金额"),
            shipping_fee=services._money(data.shipping_fee, "运费"), paid_amount=services._money(data.paid_amount, "实付金额"),
            receiver_name=data.receiver_name, receiver_phone=data.receiver_phone, country=data.country or "CN",
            receiver_phone_normalized=services.normalize_phone(data.receiver_phone, data.country or "CN"),
            province=data.province, city=data.city, district=data.district, address=data.address,
            postcode=data.postcode, is_presale=data.is_presale, promised_ship_at=data.promised_ship_at,
            source_detail=data.source_detail, coupon_codes=list(data.coupon_codes), member_level=data.member_level,
            is_vip=data.is_vip, buyer_note=data.buyer_note, seller_note="", platform_memo=data.seller_note,
            invoice_title=data.invoice_title, invoice_tax_number=data.invoice_tax_number, tags=list(data.tags),
            placed_at=placed_at, platform_updated_at=data.platform_updated_at, raw=data.raw,
            platform_hash=fingerprint(data), refund_requested=bool(data.refund_requested),
        )
        lines = [OrderLine(order=order, platform_sku_id=line.platform_sku_id, title=line.title[:255],
                           quantity=line.quantity, unit_price=services._money(line.unit_price, "单价"),
                           discount_amount=services._money(line.discount_amount, "行优惠"), is_gift=line.is_gift,
                           platform_line_id=key)
                 for line, key in zip(data.lines, line_keys(data.lines))]
        for row in [order, *lines]:
            _check_lengths(row)
    except Exception:  # noqa: BLE001 — the per-order path reports it with its own words
        return None
    return _New(position, data, order, lines)


def _check_lengths(row) -> None:
    """Text longer than its column would fail the whole bulk INSERT on PostgreSQL."""
    for f in row._meta.concrete_fields:
        value = getattr(row, f.attname, None)
        if isinstance(value, str) and f.max_length and len(value) > f.max_length:
            raise InvalidInput(f"{f.name} too long")


def _resolve_skus(shop: Shop, lines: list[NormalizedLine]) -> dict[tuple[str, str], object]:
    """`services._resolve_sku` for many lines in two queries: (platform SKU id, SKU code) → SKU or None."""
    from inventory.models import Sku, SkuMapping

    ids = {line.platform_sku_id for line in lines if line.platform_sku_id}
    mapped: dict[str, object] = {}
    for mapping in SkuMapping.objects.filter(shop=shop, platform_sku_id__in=ids).select_related("sku").order_by("pk"):
        mapped.setdefault(mapping.platform_sku_id, mapping.sku)
    codes = {line.sku_code for line in lines if line.sku_code and line.platform_sku_id not in mapped}
    by_code = {sku.code: sku for sku in Sku.objects.filter(code__in=codes)} if codes else {}
    out = {}
    for line in lines:
        key = (line.platform_sku_id, line.sku_code)
        if line.platform_sku_id and line.platform_sku_id in mapped:
            out[key] = mapped[line.platform_sku_id]
        else:
            out[key] = by_code.get(line.sku_code) if line.sku_code else None
    return out


def _bulk_create(shop: Shop, new: list[_New], actor: Actor) -> None:
    """Write validated new orders as `order_create` → `order_pay` (→ data hold) and `_create`
    would, in a few statements: customers, numbers, orders, lines, events. The FSM
    transitions run in memory on each order (as `order_allocate_bulk` does)."""
    now = timezone.now()
    matched = customers.match_customers_bulk(platform=shop.platform, orders=[n.data for n in new])
    skus = _resolve_skus(shop, [line for n in new for line in n.data.lines])
    numbers = new_order_numbers(zone=shop.time_zone, at=[n.order.placed_at for n in new], count=len(new))
    rows: list[OrderEvent] = []
    notices: list[tuple[Order, str, str]] = []
    for n, customer, number in zip(new, matched, numbers):
        order, data = n.order, n.data
        order.number, order.customer = number, customer
        for line, source in zip(n.lines, data.lines):
            line.sku = skus[(source.platform_sku_id, source.sku_code)]
        rows.append(OrderEvent(**events.created_fields(order=order, actor=actor, at=order.placed_at)))
        if data.paid:
            at = data.paid_at or now
            from_status = order.status
            order.paid_at = at
            if order.promised_ship_at is None and not order.is_presale:
                order.promised_ship_at = at + timedelta(hours=shop.ship_within_hours)
            order.pay()
            rows.append(OrderEvent(**events.paid_fields(order=order, from_status=from_status, actor=actor, at=at)))
            notices.append((order, order.status, ""))
            unmapped = [line.platform_sku_id for line in n.lines if line.sku is None][:5]
            hold = ((HoldReason.NO_LINES, "订单没有商品行") if not n.lines else
                    (HoldReason.SKU_UNMAPPED, f"未映射的平台 SKU: {', '.join(unmapped)}") if unmapped else None)
            if hold:
                from_status = order.status
                order.hold()
                order.hold_reason, order.hold_note = hold[0], hold[1][:255]
                rows.append(OrderEvent(**events.held_fields(order=order, from_status=from_status, actor=actor,
                                                            reason=hold[0], note=hold[1], at=at)))
                notices.append((order, "held", str(HoldReason(hold[0]).label)))
        if data.refund_requested:
            rows.append(OrderEvent(**events.refund_requested_fields(order=order, actor=actor,
                                                                     platform_status=data.platform_status)))
    Order.objects.bulk_create([n.order for n in new])
    OrderLine.objects.bulk_create([line for n in new for line in n.lines])
    OrderEvent.objects.bulk_create(rows)
    for order, kind, message in notices:
        services._after_commit(order, kind, message)


# --- documents ----------------------------------------------------------------------------
# Keys under which platforms put a list of orders (inside their *_response / payload / data).
_LIST_KEYS = ("trades", "order_list", "orders", "Orders", "order_sn_list", "orderInfoList", "shop_order_list", "list")


def _list_in(doc: dict, depth: int = 3) -> bool:
    """Whether the document is a list answer (possibly empty): a known list key a few levels down."""
    for key, value in doc.items():
        if key in _LIST_KEYS and (isinstance(value, list) or (isinstance(value, dict) and isinstance(value.get("trade"), list))):
            return True
        if depth > 1 and isinstance(value, dict) and _list_in(value, depth - 1):
            return True
    return False


def _unwrap(adapter, doc) -> list:
    if isinstance(doc, list):
        out = []
        for item in doc:
            out.extend(_unwrap(adapter, item) if isinstance(item, (list, dict)) else [item])
        return out
    if not isinstance(doc, dict):
        return [doc]
    if set(doc) <= {"order"} and isinstance(doc.get("order"), dict):  # Shopify {"order": {...}}
        return [doc["order"]]
    if not _list_in(doc):
        return [doc]  # one order or a single-order response: the adapter's normalize reads it
    try:
        page = adapter.parse_list_response(doc)
    except Exception:  # noqa: BLE001 — an error envelope, or not this platform's list: one payload,
        return [doc]  # which then fails with the platform's (or the parser's) words
    return list(page.orders)


def payloads_from_document(shop: Shop, doc) -> list:
    """The raw order payloads in a document: one order object, the platform's single-order
    response (Shopify ``{"order": …}``, Taobao ``trade_fullinfo_get_response`` — those the
    adapter's `normalize` reads as they are), a list of these, or the platform's list response
    (read with the adapter's `parse_list_response`)."""
    from orders.platforms.registry import adapter_for

    return _unwrap(adapter_for(shop), doc)
