"""KDNiao (快递鸟): instant query (RequestType 1002, or 8001 增值版), subscription (1008) and track push (101).

Signature (queries and pushes alike): DataSign = Base64(lowercase-hex MD5(RequestData + AppKey)),
the Base64 taken over the 32-character hex string; on the wire the form fields are URL-encoded.
States (STATUS_CODES.md): State 0 无轨迹, 1 已揽收, 2 在途中, 201 到达派件城市, 3 签收, 4 问题件;
StateEx / per-trace Action add 202 派件中, 211 快递柜或驿站, 311 已取出, 401–412 problems.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

from django.utils import timezone

from orders.carriers import codes
from orders.carriers.base import (CHINA, BadSignature, CarrierError, HttpRequest, Scan, TrackingUpdate,
                                  parse_local_time, state_from_text)
from orders.models import TrackingState as T

name = "kdniao"
API_URL = "https://api.kdniao.com/Ebusiness/EbusinessOrderHandle.aspx"
QUERY_REQUEST_TYPE = "1002"
PUSH_REQUEST_TYPE = "101"

STATES: dict[str, str | None] = {
    "0": None,  # 无轨迹: nothing to say yet
    "1": T.PICKED_UP,
    "2": T.IN_TRANSIT,
    "201": T.IN_TRANSIT,  # 到达派件城市
    "202": T.OUT_FOR_DELIVERY,  # 派件中
    "211": T.OUT_FOR_DELIVERY,  # 已放入快递柜或驿站
    "3": T.DELIVERED,
    "301": T.DELIVERED, "302": T.DELIVERED, "304": T.DELIVERED,
    "311": T.DELIVERED,  # 已取出快递柜或驿站
    "4": T.EXCEPTION,
    "401": T.EXCEPTION, "402": T.EXCEPTION, "403": T.EXCEPTION, "404": T.EXCEPTION, "412": T.EXCEPTION,
    "5": T.IN_TRANSIT,  # 转寄
    "6": T.IN_TRANSIT,  # 清关
}


def data_sign(request_data: str, app_key: str) -> str:
    digest = hashlib.md5((request_data + app_key).encode("utf-8")).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def state_of(code) -> str | None:
    """A KDNiao State / StateEx / Action code (number or string) → normalized state."""
    if code is None or code == "":
        return None
    return STATES.get(str(code).strip(), T.IN_TRANSIT if str(code).startswith("2") else None)


# --- requests -----------------------------------------------------------------------------
def _signed(account, request_type: str, body: dict) -> HttpRequest:
    """The form every KDNiao call posts: RequestData (compact JSON), its DataSign, DataType 2."""
    request_data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return HttpRequest(url=account.api_url or API_URL, data={
        "RequestData": request_data, "EBusinessID": account.account_id, "RequestType": request_type,
        "DataSign": data_sign(request_data, account.app_key), "DataType": "2",
    })


def _parcel(carrier: str, tracking_number: str, phone: str) -> dict:
    body = {"ShipperCode": codes.kdniao_code(carrier), "LogisticCode": tracking_number}
    if body["ShipperCode"] == "SF" and phone:
        body["CustomerName"] = phone[-4:]  # SF asks for the receiver's phone's last four digits
    return body


def query_request(*, account, carrier: str, tracking_number: str, phone: str = "") -> HttpRequest:
    return _signed(account, QUERY_REQUEST_TYPE, {"OrderCode": "", **_parcel(carrier, tracking_number, phone)})


SUBSCRIBE_REQUEST_TYPE = "1008"


def subscribe_request(*, account, carrier: str, tracking_number: str, phone: str = "") -> HttpRequest:
    """轨迹订阅 (RequestType 1008): the same endpoint, form fields and DataSign as the query;
    KDNiao then pushes (101) to the push URL set in its console. Shape as in public KDNiao
    client code (RequestData {ShipperCode, LogisticCode[, CustomerName]}, answer `Success`)."""
    return _signed(account, SUBSCRIBE_REQUEST_TYPE, _parcel(carrier, tracking_number, phone))


def parse_subscribe(body) -> tuple[bool, str]:
    """(accepted, the provider's words). Refusals are not retried (a wrong number or carrier)."""
    data = _load(body)
    ok = data.get("Success") in (True, "true", "True")
    return ok, str(data.get("Reason") or ("订阅成功" if ok else "快递鸟拒绝订阅"))[:300]


# --- reading --------------------------------------------------------------------------------
def _load(body) -> dict:
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
    except ValueError as exc:
        raise CarrierError(f"快递鸟报文不是 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CarrierError("快递鸟报文不是 JSON 对象")
    return data


def _scans(item: dict) -> tuple[Scan, ...]:
    scans = []
    for trace in item.get("Traces") or []:
        text = (trace.get("AcceptStation") or "").strip()
        code = trace.get("Action")
        state = state_of(code) if code not in (None, "") else None
        scans.append(Scan(
            occurred_at=parse_local_time(trace.get("AcceptTime", ""), CHINA), description=text[:500],
            state=state or state_from_text(text), location=(trace.get("Location") or "")[:200],
            carrier_state=str(code) if code not in (None, "") else "", raw=trace,
        ))
    return tuple(scans)


def _update(item: dict) -> TrackingUpdate:
    if not item.get("LogisticCode"):
        raise CarrierError("快递鸟报文缺少 LogisticCode")
    state_code = item.get("StateEx") if item.get("StateEx") not in (None, "") else item.get("State")
    shipper = item.get("ShipperCode") or ""
    return TrackingUpdate(carrier=codes.from_kdniao(shipper), tracking_number=str(item["LogisticCode"]).strip(),
                          state=state_of(state_code), scans=_scans(item), provider_carrier=shipper, raw=item)


def parse_query(body) -> list[TrackingUpdate]:
    """An instant-query response (one parcel)."""
    data = _load(body)
    if data.get("Success") is False and not data.get("Traces"):
        raise CarrierError(f"快递鸟查询失败: {data.get('Reason') or '未知原因'}")
    return [_update(data)]


def parse_push(form: dict[str, str]) -> list[TrackingUpdate]:
    """A push's RequestData: {"EBusinessID", "Count", "PushTime", "Data": [one item per parcel]}."""
    data = _load(form.get("RequestData", ""))
    return [_update(item) for item in data.get("Data") or [] if item.get("Success", True) is not False or item.get("Traces")]


def verify_push(form: dict[str, str], *, accounts) -> object:
    """The account whose AppKey signs this push; BadSignature otherwise (or when fields are missing)."""
    request_data, sign, business_id = form.get("RequestData"), form.get("DataSign"), form.get("EBusinessID")
    if not request_data or not sign or not business_id:
        raise BadSignature("缺少 RequestData、EBusinessID 或 DataSign")
    if str(form.get("RequestType", PUSH_REQUEST_TYPE)) != PUSH_REQUEST_TYPE:
        raise BadSignature(f"不支持的 RequestType: {form.get('RequestType')}")
    from urllib.parse import unquote

    candidates = {sign, unquote(sign)}  # some senders URL-encode the sign twice
    for account in accounts:
        if account.account_id != business_id or not account.app_key:
            continue
        expected = data_sign(request_data, account.app_key)
        if any(hmac.compare_digest(expected, c) for c in candidates):
            return account
    raise BadSignature("DataSign 校验失败")


def push_ack(form: dict[str, str], *, ok: bool, reason: str = "", now: datetime | None = None) -> dict:
    """KDNiao's expected answer to a push."""
    local = timezone.localtime(now or timezone.now(), CHINA)
    return {"EBusinessID": form.get("EBusinessID", ""), "UpdateTime": f"{local:%Y-%m-%d %H:%M:%S}",
            "Success": ok, "Reason": reason}


# --- e-waybills (电子面单 EOrderService, RequestType 1007) --------------------------------------
# Follows KDNiao's public documentation of 电子面单接口 (no fixture exists): the same form
# (RequestData, EBusinessID, RequestType, DataSign, DataType=2) and DataSign as the query;
# RequestData = {OrderCode, ShipperCode, PayType, ExpType, Sender{…}, Receiver{…}, Commodity[…],
# Weight, Quantity, Remark, IsReturnPrintTemplate}. The answer: {EBusinessID, Success,
# ResultCode ("100" = success; "106" = this OrderCode already has a number, returned again),
# Reason, Order{OrderCode, ShipperCode, LogisticCode, MarkDestination (大头笔), PackageName
# (集包地), SortingCode}}. Anything else is a refusal (`WaybillRefused` with KDNiao's Reason).
EORDER_REQUEST_TYPE = "1007"
EORDER_OK = {"100", "106"}


def _party(p) -> dict:
    return {"Name": p.name, "Mobile": p.phone, "ProvinceName": p.province, "CityName": p.city,
            "ExpAreaName": p.district, "Address": p.address, **({"PostCode": p.postcode} if p.postcode else {})}


def eorder_request(*, account, order) -> HttpRequest:
    body = {
        "OrderCode": order.order_code, "ShipperCode": codes.kdniao_code(order.carrier), "PayType": 1, "ExpType": 1,
        "Sender": _party(order.sender), "Receiver": _party(order.receiver),
        "Commodity": [{"GoodsName": i.name[:50], "Goodsquantity": i.quantity} for i in order.items],
        "Quantity": order.quantity, "Remark": order.remark[:60], "IsReturnPrintTemplate": "0",
    }
    if order.weight_kg:
        body["Weight"] = round(order.weight_kg, 3)
    return _signed(account, EORDER_REQUEST_TYPE, body)


def parse_eorder(body):
    from orders.carriers.base import WaybillRefused, WaybillResult

    data = _load(body)
    result_code = str(data.get("ResultCode", "")).strip()
    order = data.get("Order") or {}
    if data.get("Success") is not True or result_code not in EORDER_OK:
        raise WaybillRefused(f"快递鸟电子面单失败({result_code or '-'}): {data.get('Reason') or '未知原因'}")
    number = str(order.get("LogisticCode") or "").strip()
    if not number:
        raise WaybillRefused("快递鸟电子面单没有返回运单号")
    shipper = order.get("ShipperCode") or ""
    return WaybillResult(tracking_number=number, carrier=codes.from_kdniao(shipper) or shipper,
                         sort_code=str(order.get("MarkDestination") or ""),
                         package_center=str(order.get("PackageName") or ""),
                         sorting_code=str(order.get("SortingCode") or ""), raw=data)
