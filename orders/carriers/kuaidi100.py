"""Kuaidi100 (快递100): real-time query (poll/query.do) and subscription push (callback).

Query sign = uppercase-hex MD5(param + key + customer); push sign = uppercase-hex MD5(param + salt),
the salt being the one given at subscription. `param` is the exact JSON string sent.
States (STATUS_CODES.md): 0 在途, 1 揽收, 2 疑难, 3 签收, 4 退签, 5 派件, 6 退回, 7 转投,
10–12 清关, 13 清关异常, 14 拒签. With resultv2 each trace carries its own status word.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from orders.carriers import codes
from orders.carriers.base import (CHINA, BadSignature, CarrierError, HttpRequest, Scan, TrackingUpdate,
                                  parse_local_time, state_from_text)
from orders.models import TrackingState as T

name = "kuaidi100"
API_URL = "https://poll.kuaidi100.com/poll/query.do"

STATES: dict[str, str | None] = {
    "0": T.IN_TRANSIT,
    "1": T.PICKED_UP,
    "2": T.EXCEPTION,  # 疑难
    "3": T.DELIVERED,
    "4": T.RETURNED,  # 退签: signed for by the sender
    "5": T.OUT_FOR_DELIVERY,
    "6": T.RETURNED,  # 退回: on its way back to the sender
    "7": T.IN_TRANSIT,  # 转投
    "10": T.IN_TRANSIT, "11": T.IN_TRANSIT, "12": T.IN_TRANSIT,  # customs
    "13": T.EXCEPTION,  # 清关异常
    "14": T.EXCEPTION,  # 拒签
}
# resultv2 per-trace status words.
WORDS: dict[str, str] = {
    "在途": T.IN_TRANSIT, "揽收": T.PICKED_UP, "疑难": T.EXCEPTION, "签收": T.DELIVERED, "退签": T.RETURNED,
    "派件": T.OUT_FOR_DELIVERY, "退回": T.RETURNED, "转投": T.IN_TRANSIT, "待清关": T.IN_TRANSIT,
    "清关中": T.IN_TRANSIT, "已清关": T.IN_TRANSIT, "清关异常": T.EXCEPTION, "拒签": T.EXCEPTION,
}


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def query_sign(param: str, key: str, customer: str) -> str:
    return md5_upper(param + key + customer)


def push_sign(param: str, salt: str) -> str:
    return md5_upper(param + salt)


def state_of(code) -> str | None:
    if code is None or str(code).strip() == "":
        return None
    return STATES.get(str(code).strip())


def query_request(*, account, carrier: str, tracking_number: str, phone: str = "") -> HttpRequest:
    param = json.dumps({"com": codes.kuaidi100_code(carrier), "num": tracking_number, "phone": phone,
                        "resultv2": "1", "show": "0", "order": "desc"}, ensure_ascii=False, separators=(",", ":"))
    return HttpRequest(url=account.api_url or API_URL, data={
        "customer": account.account_id, "sign": query_sign(param, account.app_key, account.account_id), "param": param,
    })


SUBSCRIBE_URL = "https://poll.kuaidi100.com/poll"
# Answers of the subscription call (returnCode): 200 accepted, 501 already subscribed (fine);
# 500 server error (try again); 600/601 key wrong or expired, 700 bad data or callback URL,
# 701 carrier refused, 702 carrier not recognised — retrying cannot help.
SUBSCRIBE_OK = {"200", "501"}
SUBSCRIBE_RETRY = {"500"}


def subscribe_request(*, account, carrier: str, tracking_number: str, phone: str = "",
                      callback_url: str) -> HttpRequest:
    """订阅 (POST /poll, form `schema=json`, `param`): Kuaidi100 then posts each change to
    `callback_url`, signed with the account's salt (`push_sign`). Shape as in Kuaidi100's
    official demos (kuaidi100-api/java-demo `SubscribeParam`, `SubscribeParameters`,
    `SubscribeResp`; php-demo `src/subscribe.php`)."""
    parameters = {"callbackurl": callback_url, "salt": account.salt, "resultv2": "1"}
    if phone:
        parameters["phone"] = phone
    param = json.dumps({"company": codes.kuaidi100_code(carrier), "number": tracking_number, "key": account.app_key,
                        "parameters": parameters}, ensure_ascii=False, separators=(",", ":"))
    # The account's 接口地址 is the query URL (…/poll/query.do); the subscription lives beside it (…/poll).
    query_url = (account.api_url or "").rstrip("/")
    url = query_url.removesuffix("/query.do") if query_url.endswith("/query.do") else SUBSCRIBE_URL
    return HttpRequest(url=url, data={"schema": "json", "param": param})


def parse_subscribe(body) -> tuple[bool, str, bool]:
    """(accepted, the provider's words, worth retrying)."""
    data = _load(body)
    code = str(data.get("returnCode") or "")
    ok = code in SUBSCRIBE_OK or (data.get("result") is True and not code)
    return ok, f"{code} {data.get('message') or ''}".strip()[:300], code in SUBSCRIBE_RETRY


def _load(body) -> dict:
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
    except ValueError as exc:
        raise CarrierError(f"快递100报文不是 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CarrierError("快递100报文不是 JSON 对象")
    return data


def _update(result: dict) -> TrackingUpdate:
    if not result.get("nu"):
        raise CarrierError(f"快递100报文缺少运单号: {result.get('message') or ''}")
    scans = []
    for item in result.get("data") or []:
        text = (item.get("context") or "").strip()
        word = (item.get("status") or "").strip()
        state = WORDS.get(word) or state_of(word) or state_from_text(text)
        scans.append(Scan(
            occurred_at=parse_local_time(item.get("ftime") or item.get("time") or "", CHINA), description=text[:500],
            state=state, location=(item.get("areaName") or item.get("location") or "")[:200], carrier_state=word,
            raw=item,
        ))
    com = result.get("com") or ""
    return TrackingUpdate(carrier=codes.from_kuaidi100(com), tracking_number=str(result["nu"]).strip(),
                          state=state_of(result.get("state")), scans=tuple(scans), provider_carrier=com, raw=result)


def parse_query(body) -> list[TrackingUpdate]:
    data = _load(body)
    if str(data.get("status", "200")) != "200" and not data.get("data"):
        raise CarrierError(f"快递100查询失败: {data.get('message') or data.get('returnCode') or '未知原因'}")
    return [_update(data)]


def parse_push(form: dict[str, str]) -> list[TrackingUpdate]:
    """A subscription callback's param: {"status": "polling"|"shutdown"|"abort"|"updateall", "lastResult": {…}}."""
    data = _load(form.get("param", ""))
    last = data.get("lastResult")
    if not isinstance(last, dict):
        raise CarrierError("快递100推送缺少 lastResult")
    update = _update(last)
    if data.get("status") == "abort" and update.state not in (T.DELIVERED, T.RETURNED):
        # Kuaidi100 gave up on the parcel ("3天查询无记录" / "60天无变化"): someone must look.
        from dataclasses import replace

        update = replace(update, state=T.EXCEPTION, note=f"快递100 停止跟踪: {data.get('message') or 'abort'}")
    return [update]


def verify_push(form: dict[str, str], *, accounts) -> object:
    param, sign = form.get("param"), form.get("sign")
    if not param or not sign:
        raise BadSignature("缺少 param 或 sign")
    for account in accounts:
        if account.salt and hmac.compare_digest(push_sign(param, account.salt), sign.strip().upper()):
            return account
    raise BadSignature("sign 校验失败")


def push_ack(form: dict[str, str], *, ok: bool, reason: str = "") -> dict:
    return {"result": ok, "returnCode": "200" if ok else "500", "message": "成功" if ok else (reason or "失败")}
