"""E-waybills (电子面单) for the parcels of a pick batch, and their 100 × 180 mm labels.

Requesting (`waybill_request` for one parcel, `batch_request_waybills` for a whole batch):

- the carrier's e-waybill API through the carrier adapter gives the tracking number and the
  sort/route codes (大头笔, 集包地). KDNiao (`orders.carriers.kdniao.eorder_request`) when the
  default active carrier account is a KDNiao one, otherwise the sandbox carrier, which issues
  ``SB`` + 12 digits locally (the demo works offline). Kuaidi100 is not wired (its e-waybill
  API needs a separate contract; not part of this change).
- idempotent: a parcel that has a waybill keeps it; a batch run asks only for the others,
  and one parcel's failure is reported without losing the others (each parcel is its own
  transaction).
- each success sets every member shipment's carrier and tracking number
  (`shipment_set_waybill`) and writes an internal timeline event (``waybill_issued``).
- the sender is the warehouse (contact name, phone, province, city, address): a warehouse
  without them is a clear refusal.

Receiver data: an order whose receiver the platform masked or encrypted (Taobao OAID, PDD /
Douyin ciphertexts; no clear phone stored) is decrypted through its platform adapter
(`build_decrypt_request` / `parse_decrypt_response`) only when an e-waybill is requested or its
label printed. The clear text lives in memory for that request/render; it is never stored on
the order and never shown elsewhere. Every decryption writes a `ReceiverDecryption` audit row
(who, when, which order, why = 打印面单), read-only in the admin for supervisors. A receiver
stored in clear is used as it is: no decryption, no audit row.

Permission: ``orders.build_pickbatch`` (仓管, 运营, 主管), as for printing batches. A
warehouse-scoped person reaches only their warehouses' batches and parcels (others: 404).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from config.actors import Actor
from config.errors import DomainError, InvalidInput, NotFound, NotPermitted
from inventory.models import Warehouse
from orders import batches
from orders.carriers import codes, kdniao
from orders.carriers import sandbox as sandbox_carrier
from orders.carriers.base import CarrierError, Party, WaybillItem, WaybillOrder, WaybillResult
from orders.events import event_fields
from orders.models import (CarrierAccount, EventKind, Order, OrderEvent, Parcel, ParcelOrder, PickBatch,
                           ReceiverDecryption, Shipment, TrackingProvider, Waybill)
from orders.platforms.base import PlatformError
from orders.platforms.interface import DecryptedReceiver
from orders.platforms.parsing import is_protected

PERMISSION = batches.PERMISSION
DEFAULT_CARRIER = "YTO"
HTTP_TIMEOUT = 15.0


class WaybillFailed(DomainError):
    """The carrier or the platform refused, or could not be reached."""

    http_status = 409
    default_message = "电子面单申请失败"


# --- access --------------------------------------------------------------------------------------
def _require(actor: Actor) -> None:
    if not actor.can(PERMISSION):
        raise NotPermitted(f"{actor.label} 没有权限申请或打印电子面单")


def parcel_get(*, pk, actor: Actor) -> Parcel:
    """A parcel of a batch the actor may see; NotFound otherwise (also for another warehouse)."""
    _require(actor)
    parcel = Parcel.objects.select_related("batch", "warehouse").filter(pk=pk).first()
    if parcel is None or not actor.scope.allows_warehouse(parcel.warehouse_id):
        raise NotFound("包裹不存在")
    return parcel


def _members(parcel: Parcel, actor: Actor) -> list[ParcelOrder]:
    qs = ParcelOrder.objects.filter(parcel=parcel).exclude(order__status__in=batches.OFF_THE_LISTS)
    if actor.scope.shop_ids is not None:
        qs = qs.filter(order__shop_id__in=actor.scope.shop_ids)
    return list(qs.select_related("order", "order__shop", "shipment").order_by("id"))


# --- sender, carrier ------------------------------------------------------------------------------
def sender_of(warehouse: Warehouse) -> Party:
    missing = [label for label, value in (("发件人", warehouse.contact_name), ("发件电话", warehouse.contact_phone),
                                          ("省份", warehouse.province), ("城市", warehouse.city),
                                          ("地址", warehouse.address)) if not (value or "").strip()]
    if missing:
        raise InvalidInput(f"仓库「{warehouse.name}」没有完整的发件地址(缺少:{'、'.join(missing)}),"
                           f"请先在仓库资料中填写")
    return Party(name=warehouse.contact_name, phone=warehouse.contact_phone, province=warehouse.province,
                 city=warehouse.city, district=warehouse.district, address=warehouse.address)


def default_carrier() -> str:
    return (settings.ORDERHUB.get("WAYBILL_CARRIER") or DEFAULT_CARRIER).upper()


def waybill_account() -> CarrierAccount | None:
    """The KDNiao account that issues e-waybills, or None = the sandbox issues them.

    The same rule as tracking (`orders.shipping.default_provider`): only an active KDNiao
    account marked default is used. An account kept only to verify pushes (as the demo's)
    does not send e-waybill requests to the internet."""
    return (CarrierAccount.objects.filter(provider=TrackingProvider.KDNIAO, is_active=True, is_default=True)
            .order_by("id").first())


# --- receiver: stored clear, or decrypted through the platform adapter (audited) -----------------
def needs_decryption(order: Order) -> bool:
    """True when the stored receiver is not usable as it is (no clear phone, or masked/encrypted
    name, phone or address)."""
    return (not order.receiver_phone or any(is_protected(v) for v in (order.receiver_name, order.receiver_phone,
                                                                         order.address)))


def _ciphertexts(adapter, order: Order) -> tuple[dict, str]:
    own = getattr(adapter, "receiver_ciphertexts", None)
    if callable(own):
        return own(order.raw or {}), ""
    try:
        data = adapter.normalize(order.raw or {})
    except Exception as exc:  # noqa: BLE001 — a payload we cannot read again: a clear refusal below
        raise WaybillFailed(f"订单 {order.number} 的平台报文无法读取,不能解密收件人: {exc}") from exc
    return dict(data.encrypted or {}), data.oaid


def decrypt_receiver(*, order: Order, actor: Actor, waybill: Waybill | None = None,
                     transport: httpx.BaseTransport | None = None, carrier: str = "") -> DecryptedReceiver:
    """Decrypt one order's receiver through its platform adapter, for printing a waybill.
    Always writes one `ReceiverDecryption` row (also when the platform refuses)."""
    from orders.platforms.client import PlatformCallFailed, PlatformClient
    from orders.platforms.registry import NoAdapter, adapter_for

    _require(actor)
    platform = order.shop.platform
    fields: list[str] = []

    def audit(ok: bool, detail: str = "") -> None:
        ReceiverDecryption.objects.create(
            order=order, waybill=waybill, reason=ReceiverDecryption.Reason.PRINT_WAYBILL, platform=platform,
            fields=fields, succeeded=ok, detail=detail[:300], actor=actor.user, actor_label=actor.label)

    try:
        adapter = adapter_for(order.shop)
        if not callable(getattr(adapter, "build_decrypt_request", None)):
            raise WaybillFailed(f"平台「{platform}」不支持解密收件人,订单 {order.number} 无法打印面单")
        encrypted, oaid = _ciphertexts(adapter, order)
        fields = sorted(encrypted)
        carrier = carrier or (waybill.carrier if waybill else "") or default_carrier()  # Taobao's decrypt scene
        request = adapter.build_decrypt_request(order_id=order.platform_order_id, encrypted=encrypted, oaid=oaid,
                                                carrier=carrier)
        answer = getattr(adapter, "decrypt_answer", None)
        if callable(answer):  # the sandbox platform answers locally
            body = answer(request)
        else:
            with PlatformClient(adapter, base_url=order.shop.api_base_url or "", transport=transport,
                                max_attempts=2) as client:
                body = client.send(lambda: request).body or {}
        receiver = adapter.parse_decrypt_response(body)
    except WaybillFailed as exc:
        audit(False, exc.message)
        raise
    except (PlatformError, PlatformCallFailed, NoAdapter) as exc:
        message = getattr(exc, "message", "") or str(exc)
        audit(False, message)
        raise WaybillFailed(f"订单 {order.number} 收件人解密失败: {message}") from exc
    audit(True)
    return receiver


def receiver_party(*, order: Order, actor: Actor, waybill: Waybill | None = None,
                   transport: httpx.BaseTransport | None = None, carrier: str = "") -> Party:
    """The receiver in clear for a waybill: the stored one, or decrypted (audited)."""
    name, phone, address = order.receiver_name, order.receiver_phone, order.address
    if needs_decryption(order):
        clear = decrypt_receiver(order=order, actor=actor, waybill=waybill, transport=transport, carrier=carrier)
        name = clear.name or ("" if is_protected(name) else name)
        phone = clear.phone or ("" if is_protected(phone) else phone)
        address = clear.address or ("" if is_protected(address) else address)
        if not phone or not name:
            raise WaybillFailed(f"订单 {order.number} 解密后仍缺少收件人姓名或电话")
    return Party(name=name, phone=phone, province=order.province, city=order.city, district=order.district,
                 address=address, postcode=order.postcode)


# --- requesting ---------------------------------------------------------------------------------
@dataclass
class BatchResult:
    issued: list[Waybill] = field(default_factory=list)
    kept: list[Waybill] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (parcel code, reason)


def _items(members: list[ParcelOrder]) -> tuple[WaybillItem, ...]:
    from orders.models import ShipmentLine

    rows = ShipmentLine.objects.filter(shipment_id__in=[m.shipment_id for m in members if m.shipment_id]).values_list(
        "order_line__title", "quantity").order_by("order_line__is_gift", "order_line_id")
    return tuple(WaybillItem(name=title, quantity=q) for title, q in rows)


def _call_kdniao(account: CarrierAccount, order: WaybillOrder, transport: httpx.BaseTransport | None) -> WaybillResult:
    request = kdniao.eorder_request(account=account, order=order)
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, transport=transport) as client:
            response = client.post(request.url, data=request.data)
    except httpx.HTTPError as exc:
        raise WaybillFailed(f"快递鸟电子面单接口无法连接: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise WaybillFailed(f"快递鸟电子面单接口返回 HTTP {response.status_code}")
    try:
        return kdniao.parse_eorder(response.content)
    except CarrierError as exc:
        raise WaybillFailed(str(exc)) from exc


def waybill_request(*, parcel: Parcel, actor: Actor, carrier: str = "",
                    transport: httpx.BaseTransport | None = None) -> Waybill:
    """The e-waybill of one batch parcel: the one it has, or a new one from the carrier.

    Not one transaction on purpose: the receiver decryption's audit row must stay even when
    the carrier then refuses, and no row lock is held across the carrier's HTTP call. The
    waybill and the shipments' numbers are written in one transaction, under the parcel's lock."""
    _require(actor)
    if not actor.scope.allows_warehouse(parcel.warehouse_id):
        raise NotFound("包裹不存在")
    existing = Waybill.objects.filter(parcel=parcel).first()
    if existing is not None:
        return existing
    members = _members(parcel, actor)
    if not members:
        raise InvalidInput(f"包裹 {parcel.code} 没有可发货的订单")
    carrier, _ = _carrier_code(carrier or default_carrier())
    sender = sender_of(parcel.warehouse)
    receiver = receiver_party(order=members[0].order, actor=actor, transport=transport, carrier=carrier)
    request = WaybillOrder(order_code=parcel.code, carrier=carrier, sender=sender, receiver=receiver,
                           items=_items(members), remark="、".join(m.order.number for m in members))
    account = waybill_account()
    result = _call_kdniao(account, request, transport) if account is not None else None
    return _store(parcel=parcel, members=members, actor=actor, request=request, result=result,
                  provider=TrackingProvider.KDNIAO if account is not None else TrackingProvider.SANDBOX)


def _carrier_code(carrier: str) -> tuple[str, str]:
    carrier = (carrier or "").strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{1,20}", carrier):
        raise InvalidInput(f"快递公司编码无效: {carrier!r}")
    return carrier, codes.carrier_name(carrier)


@transaction.atomic
def _store(*, parcel: Parcel, members: list[ParcelOrder], actor: Actor, request: WaybillOrder,
           result: WaybillResult | None, provider: str) -> Waybill:
    Parcel.objects.select_for_update().filter(pk=parcel.pk).first()
    existing = Waybill.objects.filter(parcel=parcel).first()
    if existing is not None:  # someone else was faster
        return existing
    now = timezone.now()
    if result is None:  # sandbox: the number comes from the row's own id (unique, deterministic)
        waybill = Waybill.objects.create(parcel=parcel, carrier=request.carrier, provider=provider,
                                         tracking_number=f"~{parcel.code}"[:40], requested_at=now,
                                         requested_by=actor.label)
        result = sandbox_carrier.issue_waybill(order=request, sequence=waybill.pk)
        waybill.tracking_number = result.tracking_number
    else:
        if Waybill.objects.filter(tracking_number=result.tracking_number).exists():
            raise WaybillFailed(f"运单号 {result.tracking_number} 已用于另一个包裹")
        waybill = Waybill(parcel=parcel, carrier=result.carrier or request.carrier, provider=provider,
                          tracking_number=result.tracking_number, requested_at=now, requested_by=actor.label)
    waybill.sort_code, waybill.package_center = result.sort_code[:100], result.package_center[:100]
    waybill.sorting_code = result.sorting_code[:100]
    waybill.save()
    for member in members:
        if member.shipment_id:
            shipment_set_waybill(shipment=member.shipment, waybill=waybill, actor=actor)
    return waybill


@transaction.atomic
def shipment_set_waybill(*, shipment: Shipment, waybill: Waybill, actor: Actor) -> Shipment:
    """Give a shipment its e-waybill's carrier and tracking number (the carrier's first scan of
    that number then ships it), with an internal timeline event."""
    _require(actor)
    shipment = Shipment.objects.select_for_update().select_related("order").get(pk=shipment.pk)
    if shipment.tracking_number and shipment.tracking_number != waybill.tracking_number:
        raise WaybillFailed(f"包裹 #{shipment.pk} 已有运单号 {shipment.tracking_number}")
    shipment.carrier, shipment.tracking_number = waybill.carrier, waybill.tracking_number
    shipment.save(update_fields=["carrier", "tracking_number", "updated_at"])
    OrderEvent.objects.create(**event_fields(
        order=shipment.order, kind=EventKind.WAYBILL_ISSUED, actor=actor,
        message=f"已申请电子面单 {codes.carrier_name(waybill.carrier) or waybill.carrier} {waybill.tracking_number}"
                f"(包裹 {waybill.parcel.code})",
        data={"carrier": waybill.carrier, "tracking_number": waybill.tracking_number, "shipment_id": shipment.pk,
              "parcel": waybill.parcel.code}))
    return shipment


def batch_request_waybills(*, batch: PickBatch, actor: Actor, carrier: str = "",
                           transport: httpx.BaseTransport | None = None) -> BatchResult:
    """An e-waybill for every parcel of the batch that has none; each parcel on its own."""
    _require(actor)
    if not actor.scope.allows_warehouse(batch.warehouse_id):
        raise NotFound("拣货批次不存在")
    result = BatchResult()
    parcels = batch.parcels.select_related("warehouse", "batch").order_by("position", "id")
    have = set(Waybill.objects.filter(parcel__batch=batch).values_list("parcel_id", flat=True))
    for parcel in parcels:
        if parcel.pk in have:
            result.kept.append(parcel.waybill)
            continue
        if not _members(parcel, actor):
            continue  # cancelled or held since the batch was built, or another shop's
        try:
            result.issued.append(waybill_request(parcel=parcel, actor=actor, carrier=carrier, transport=transport))
        except DomainError as exc:
            result.failed.append((parcel.code, exc.message))
    return result


# --- labels -------------------------------------------------------------------------------------
def code128_svg(text: str, *, height_mm: float = 14.0) -> SafeString:
    """``text`` as a Code 128 barcode, an inline ``<svg>`` (python-barcode, server-side)."""
    import barcode
    from barcode.writer import SVGWriter

    if not re.fullmatch(r"[A-Za-z0-9\-]{1,40}", text or ""):
        raise InvalidInput(f"运单号无效: {text!r}")
    out = io.BytesIO()
    barcode.get("code128", text, writer=SVGWriter()).write(out, options={
        "write_text": False, "module_height": height_mm, "module_width": 0.3, "quiet_zone": 2.0})
    svg = out.getvalue().decode("utf-8")
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: inline in HTML
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return mark_safe(svg)  # noqa: S308 — generated by the library from a validated number


@dataclass
class Label:
    parcel_code: str
    carrier: str
    carrier_name: str
    tracking_number: str
    barcode: SafeString
    sort_code: str
    package_center: str
    sorting_code: str
    receiver: Party
    sender: Party
    order_numbers: list[str]
    lines: list[batches.SlipLine]
    has_gift: bool
    merged: bool
    buyer_notes: list[str]


@transaction.atomic
def waybill_labels(*, batch: PickBatch, actor: Actor, transport: httpx.BaseTransport | None = None,
                   at: datetime | None = None) -> tuple[list[Label], list[tuple[str, str]]]:
    """The labels of the batch's parcels that have a waybill (and the parcels that could not be
    printed, with why). The receiver is full (for the courier): stored in clear, or decrypted
    now — once per order per print, audited. Marks each printed waybill printed (who, when)."""
    _require(actor)
    if not actor.scope.allows_warehouse(batch.warehouse_id):
        raise NotFound("拣货批次不存在")
    sender = sender_of(batch.warehouse)
    slips = {s.parcel_id: s for s in batches.packing_lists(batch=batch, actor=actor)}
    waybills = {w.parcel_id: w for w in Waybill.objects.filter(parcel__batch=batch).select_related("parcel")}
    labels, skipped = [], []
    now = at or timezone.now()
    for parcel_id, slip in slips.items():
        waybill = waybills.get(parcel_id)
        if waybill is None:
            skipped.append((slip.code, "尚未申请电子面单"))
            continue
        members = _members(waybill.parcel, actor)
        if not members:
            skipped.append((slip.code, "没有可发货的订单"))
            continue
        try:  # a refusal keeps its audit row (no savepoint to roll back)
            receiver = receiver_party(order=members[0].order, actor=actor, waybill=waybill, transport=transport)
        except DomainError as exc:
            skipped.append((slip.code, exc.message))
            continue
        labels.append(Label(
            parcel_code=slip.code, carrier=waybill.carrier, carrier_name=codes.carrier_name(waybill.carrier),
            tracking_number=waybill.tracking_number, barcode=code128_svg(waybill.tracking_number),
            sort_code=waybill.sort_code, package_center=waybill.package_center, sorting_code=waybill.sorting_code,
            receiver=receiver, sender=sender, order_numbers=slip.order_numbers, lines=slip.lines,
            has_gift=slip.gift_count > 0, merged=slip.merged, buyer_notes=slip.buyer_notes))
        Waybill.objects.filter(pk=waybill.pk).update(printed_at=now, printed_by=actor.label,
                                                     print_count=waybill.print_count + 1)
    if labels:
        batches.batch_mark_printed(batch=batch, actor=actor, at=now)
    return labels, skipped


def batch_waybill_rows(*, batch: PickBatch, actor: Actor) -> list[dict]:
    """Per parcel of the batch: its code, order numbers and waybill (or None), for the batch page."""
    _require(actor)
    waybills = {w.parcel_id: w for w in Waybill.objects.filter(parcel__batch=batch)}
    return [{"parcel_id": s.parcel_id, "code": s.code, "orders": s.order_numbers, "merged": s.merged,
             "waybill": waybills.get(s.parcel_id)} for s in batches.packing_lists(batch=batch, actor=actor)]
