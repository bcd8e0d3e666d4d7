"""Taobao / Tmall through TOP (淘宝开放平台).

Follows:
- ``../shared/fixtures/taobao/trade_fullinfo_get.jdp_push_row.json`` — a real
  ``taobao.trade.fullinfo.get`` body as 聚石塔 JDP stores it in ``jdp_tb_trade.jdp_response``
  (``normalize`` takes that body, the JDP row itself with the body as a JSON string in
  ``jdp_response``, or the bare ``trade`` object);
- ``../shared/fixtures/taobao/trades_sold_get.doc_example.json`` — the TOP document example of
  ``taobao.trades.sold.get`` (list shape ``trades.trade[]``; ``"fixed(一口价)"`` labels stripped);
- ``../shared/fixtures/STATUS_CODES.md`` for Trade.status / Order.refund_status / step_trade_status;
- TOP's public documentation for what the fixtures do not show: the gateway and common
  parameters, the signature (md5: ``MD5(secret + k1v1k2v2… + secret)``; hmac:
  ``HMAC-MD5(secret, k1v1…)``; hmac-sha256 likewise; keys sorted, empty values and ``sign``
  left out, upper-case hex — the published example of the TOP guide is a test vector),
  ``taobao.trades.sold.increment.get`` (start/end_modified ≤ 1 day, ``use_has_next``), the
  error envelope ``{"error_response": {code, msg, sub_code, sub_msg}}`` (code 7 "App Call
  Limited" with "This ban will last for N more seconds" = rate limit; ``isp.*`` sub codes are
  platform-side and retryable), ``taobao.item.quantity.update`` for stock, and the ``oaid``
  field (收货人信息唯一标识) Taobao sends since receiver data is masked/encrypted.

Masked (``张**``, ``1380000****``) or encrypted receiver fields are kept verbatim in
``encrypted``; a masked phone never becomes ``receiver_phone``. TOP has no gift flag in the
fixtures: a sub-order whose price and payment are both 0 is treated as a gift line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import timedelta
from decimal import Decimal

from orders.platforms.base import NormalizedLine, NormalizedOrder, OrderPage
from orders.platforms.interface import AdapterBase, PlatformRequest, PlatformTransition as T
from orders.platforms.parsing import (required_id, code, first, format_local, is_protected, parse_time, split_region, to_bool,
                                      to_int, to_money, to_str)
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

TRADE_FIELDS = (
    "tid,status,type,created,modified,pay_time,consign_time,end_time,payment,total_fee,post_fee,discount_fee,"
    "adjust_fee,buyer_nick,buyer_open_uid,oaid,buyer_message,seller_memo,seller_flag,receiver_name,receiver_state,"
    "receiver_city,receiver_district,receiver_town,receiver_address,receiver_zip,receiver_mobile,receiver_phone,"
    "trade_from,step_trade_status,invoice_name,promotion_details,orders"
)

STATUS = {
    "TRADE_NO_CREATE_PAY": None, "WAIT_BUYER_PAY": None, "PAY_PENDING": None, "WAIT_PRE_AUTH_CONFIRM": None,
    "WAIT_SELLER_SEND_GOODS": T.PAY, "PAID_FORBID_CONSIGN": T.PAY,
    "SELLER_CONSIGNED_PART": T.PARTIALLY_SHIP, "WAIT_BUYER_CONFIRM_GOODS": T.SHIP,
    "TRADE_BUYER_SIGNED": T.DELIVER, "TRADE_FINISHED": T.COMPLETE,
    "TRADE_CLOSED": T.CANCEL, "TRADE_CLOSED_BY_TAOBAO": T.CANCEL,
}
PAID_STATUSES = {"WAIT_SELLER_SEND_GOODS", "PAID_FORBID_CONSIGN", "SELLER_CONSIGNED_PART",
                 "WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED", "TRADE_CLOSED"}
SHIPPED_STATUSES = {"WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED"}
REFUND_OPEN = {"WAIT_SELLER_AGREE", "WAIT_BUYER_RETURN_GOODS", "WAIT_SELLER_CONFIRM_GOODS"}
REFUND_DONE = {"SUCCESS"}
_BAN = re.compile(r"(\d+)\s*more seconds", re.I)


def sign(params: dict[str, str], secret: str, method: str = "md5") -> str:
    """TOP request signature over the sorted parameters (``sign`` itself and empty values excluded)."""
    text = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v not in (None, ""))
    if method == "md5":
        digest = hashlib.md5(f"{secret}{text}{secret}".encode("utf-8")).hexdigest()
    elif method == "hmac":
        digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown TOP sign_method {method!r}")
    return digest.upper()


def unwrap_trade(raw: dict) -> dict:
    """The ``trade`` object from a JDP row, a fullinfo/sold.get response or the trade itself."""
    if "jdp_response" in raw:
        body = raw["jdp_response"]
        raw = json.loads(body) if isinstance(body, str) else body
    for key in ("trade_fullinfo_get_response", "trade_get_response"):
        if key in raw:
            raw = raw[key]
    return raw.get("trade", raw) if isinstance(raw.get("trade"), dict) else raw


class TaobaoAdapter(AdapterBase):
    code = "taobao"
    base_url = "https://eco.taobao.com"
    window = timedelta(days=1)  # trades.sold.increment.get: start/end_modified at most one day apart
    first_page = 1
    overlap = timedelta(minutes=2)

    # --- requests -----------------------------------------------------------------------
    def signed(self, api_method: str, business: dict[str, str]) -> PlatformRequest:
        c = self.credentials
        sign_method = c.extra.get("sign_method", "md5")
        params = {"method": api_method, "app_key": c.app_key, "session": c.access_token,
                  "timestamp": format_local(self.now()), "format": "json", "v": "2.0",
                  "sign_method": sign_method, **{k: to_str(v) for k, v in business.items()}}
        params = {k: v for k, v in params.items() if v != ""}
        params["sign"] = sign(params, c.app_secret, sign_method)
        return PlatformRequest("POST", "/router/rest", params, None,
                               {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, "")

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        """``taobao.trades.sold.increment.get`` over the modification-time window; with
        ``Credentials.extra["list_api"] == "sold"`` (a backfill by creation time)
        ``taobao.trades.sold.get`` over start_created/end_created instead."""
        w = self.window_cursor(cursor)
        size = min(max(page_size, 1), 100)
        if self.credentials.extra.get("list_api") == "sold":
            return self.signed("taobao.trades.sold.get", {
                "fields": TRADE_FIELDS, "start_created": format_local(w.start), "end_created": format_local(w.end),
                "page_no": w.page, "page_size": size, "use_has_next": "true",
            })
        return self.signed("taobao.trades.sold.increment.get", {
            "fields": TRADE_FIELDS, "start_modified": format_local(w.start), "end_modified": format_local(w.end),
            "page_no": w.page, "page_size": size, "use_has_next": "true",
        })

    def build_fullinfo_request(self, tid: str) -> PlatformRequest:
        return self.signed("taobao.trade.fullinfo.get", {"fields": TRADE_FIELDS, "tid": tid})

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        """``taobao.item.quantity.update`` with type=1 (全量). Without ``item_id`` the id is read
        as a ``num_iid`` (an item without SKUs)."""
        business = {"num_iid": item_id or sku_id, "quantity": max(int(quantity), 0), "type": 1}
        if item_id:
            business["sku_id"] = sku_id
        return self.signed("taobao.item.quantity.update", business)

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        """``taobao.logistics.offline.send`` (自己联系物流(线下物流)发货): ``tid``, ``out_sid``
        (the tracking number), ``company_code`` (from ``taobao.logistics.companies.get``). A
        parcel that is only part of the trade is a split send: ``is_split=1`` and ``sub_tid`` =
        the parcel's oids, comma-separated ("需要拆单发货的子订单集合…子订单间用逗号隔开"); an
        additional parcel without oids cannot be told apart and is not pushed. Answer
        ``logistics_offline_send_response.shipping.is_success``.

        Source: bububa/opentaobao (generated from TOP's API metadata)
        ``model/logistic/TaobaoLogisticsOfflineSendAPIRequest.go`` and
        ``…APIResponse.go`` (commit 22cc484); error envelope and signing: TOP docs (module
        docstring)."""
        business = {"tid": job.platform_order_id, "out_sid": job.tracking_number,
                    "company_code": carrier_code(self.code, job.carrier, self.credentials.extra)}
        oids = line_ids(job)
        if job.package_count > 1 and oids:
            business.update({"is_split": 1, "sub_tid": ",".join(oids)})
        elif job.additional:
            raise TrackingNotApplicable("淘宝:附加包裹没有子订单号(oid),未回传")
        return self.signed("taobao.logistics.offline.send", business)

    def parse_tracking_push(self, job: TrackingJob, *, status: int, body, headers=None) -> TrackingAnswer:
        if isinstance(body, dict):
            self.raise_for_error(body)  # isp.* / code 7: retryable; isv.*: permanent
        raise_for_status(self.code, status, body)
        shipping = ((body or {}).get("logistics_offline_send_response") or {}).get("shipping") or {}
        if not to_bool(shipping.get("is_success"), False):
            raise self.error("not_success", f"no is_success in {str(body)[:200]}")
        return TrackingAnswer(done=True)

    # --- responses ----------------------------------------------------------------------
    def raise_for_error(self, body: dict) -> None:
        err = body.get("error_response")
        if not err:
            return
        code_, sub_code = to_str(err.get("code")), to_str(err.get("sub_code"))
        message = " ".join(x for x in (to_str(err.get("msg")), to_str(err.get("sub_msg"))) if x)
        retry_after = None
        retryable = code_ in {"7", "520"} or sub_code.startswith("isp.") or "limit" in sub_code.lower()
        m = _BAN.search(message)
        if m:
            retry_after = float(m.group(1))
        if sub_code:
            message = f"{message} [{sub_code}]"
        raise self.error(code_ or sub_code, message, retryable=retryable, retry_after=retry_after)

    def parse_list_response(self, body: dict, *, cursor: str = "") -> OrderPage:
        self.raise_for_error(body)
        inner = next((v for k, v in body.items() if k.endswith("_response") and isinstance(v, dict)), body)
        trades = (inner.get("trades") or {}).get("trade") or []
        has_next = inner.get("has_next")
        if has_next is None:  # total_results paging
            w = self.window_cursor(cursor)
            has_more = bool(trades) and w.page * max(len(trades), 1) < to_int(inner.get("total_results"))
        else:
            has_more = to_bool(has_next)
        return self.page_after(cursor, has_more=has_more, orders=list(trades))

    # --- mapping ------------------------------------------------------------------------
    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        status, refund = code(platform_status), code(refund_status)
        mapped = STATUS.get(status)
        if mapped == T.CANCEL:
            return mapped.value
        if refund in REFUND_OPEN:
            return T.REFUND_REQUESTED.value
        if refund in REFUND_DONE:
            return T.REFUNDED.value
        return mapped.value if mapped else None

    def normalize(self, raw: dict) -> NormalizedOrder:
        t = unwrap_trade(raw)
        status = code(t.get("status"))
        sub_orders = [o for o in ((t.get("orders") or {}).get("order") or []) if o]
        lines, refunds, line_discount = [], [], Decimal("0")
        for o in sub_orders:
            price, payment = to_money(o.get("price")), to_money(first(o.get("payment"), o.get("total_fee")))
            discount = to_money(o.get("discount_fee")) + to_money(o.get("part_mjz_discount"))
            line_discount += discount
            refund = code(o.get("refund_status"))
            if refund and refund != "NO_REFUND":
                refunds.append(refund)
            lines.append(NormalizedLine(
                title=to_str(o.get("title")), quantity=to_int(o.get("num"), 1), unit_price=price,
                platform_sku_id=to_str(first(o.get("sku_id"), o.get("num_iid"))),
                sku_code=to_str(first(o.get("outer_sku_id"), o.get("outer_iid"))),
                discount_amount=discount, is_gift=price == 0 and payment == 0,
                platform_line_id=to_str(o.get("oid")), refund_status="" if refund == "NO_REFUND" else refund,
            ))
        region = split_region(province=to_str(t.get("receiver_state")), city=to_str(t.get("receiver_city")),
                              district=to_str(t.get("receiver_district")), address=to_str(t.get("receiver_address")))
        encrypted = {k: t[k] for k in ("receiver_name", "receiver_mobile", "receiver_phone", "receiver_address",
                                       "buyer_alipay_no", "buyer_email")
                     if is_protected(t.get(k))}
        mobile = to_str(first(t.get("receiver_mobile"), t.get("receiver_phone")))
        phone = "" if is_protected(mobile) else mobile
        promotions = ((t.get("promotion_details") or {}).get("promotion_detail") or [])
        transition = self.status_transition(status, refund_status=next(iter(refunds), ""))
        tags = [f"type:{code(t.get('type'))}"] if t.get("type") else []
        if to_int(t.get("seller_flag")):
            tags.append(f"seller_flag:{to_int(t.get('seller_flag'))}")
        if status == "PAID_FORBID_CONSIGN":
            tags.append("forbid_consign")
        buyer_nick = to_str(t.get("buyer_nick"))
        return NormalizedOrder(
            platform_order_id=required_id(t.get("tid"), "tid"), lines=lines, platform_status=status,
            paid=status in PAID_STATUSES, currency="CNY",
            goods_amount=to_money(t.get("total_fee")),
            discount_amount=to_money(t.get("discount_fee")) + line_discount,
            shipping_fee=to_money(t.get("post_fee")), paid_amount=to_money(t.get("payment")),
            buyer_name=buyer_nick, receiver_name=to_str(t.get("receiver_name")), receiver_phone=phone,
            province=region.province, city=region.city, district=region.district,
            address=_with_town(to_str(t.get("receiver_town")), region.address),
            postcode=to_str(t.get("receiver_zip")), is_presale=bool(t.get("step_trade_status")),
            source_detail=to_str(t.get("trade_from")),
            coupon_codes=[to_str(p.get("promotion_id")) for p in promotions
                          if p.get("promotion_id") and to_money(p.get("discount_fee")) > 0],
            buyer_note=to_str(t.get("buyer_message")), seller_note=to_str(t.get("seller_memo")),
            invoice_title=to_str(t.get("invoice_name")), tags=tags,
            placed_at=parse_time(t.get("created")), paid_at=parse_time(t.get("pay_time")),
            platform_updated_at=parse_time(t.get("modified")), raw=raw,
            platform_buyer_id=to_str(first(t.get("buyer_open_uid"), buyer_nick)), oaid=to_str(t.get("oaid")),
            encrypted=encrypted, refund_requested=transition == T.REFUND_REQUESTED.value or any(
                r in REFUND_OPEN for r in refunds),
            cancelled=transition == T.CANCEL.value, shipped=status in SHIPPED_STATUSES,
        )


def _with_town(town: str, address: str) -> str:
    return address if not town or address.startswith(town) else town + address


# --- receiver decryption (appended for e-waybills, issue 14) -------------------------------------
# ``taobao.top.oaid.decrypt`` (OAID解密). Source: bububa/opentaobao ``model/tbtrade/ReceiverQuery.go``
# (commit 206d25c), ``model/tbtrade/Receiver.go`` (commit 58f344b) and the request/response of
# ``taobao.top.oaid.decrypt`` in the same package: ``query_list`` = JSON list (≤ 20) of
# {"tid", "oaid", "scene"}; the answer ``top_oaid_decrypt_response.receiver_list.receiver[]``
# has name / mobile / phone / state / city / district / town / address_detail / tid / oaid /
# matched (false: the OAID is no longer the trade's — re-read the trade) / privacy_protection.
# The scene depends on the e-waybill's carrier: 1001 顺丰电子面单发货, 1002 4通一达电子面单发货,
# 1003 EMS电子面单发货, 1004 其他电子面单发货 (``Credentials.extra["oaid_scene"]`` overrides).
DECRYPT_SCENES = {"SF": "1001", "YTO": "1002", "ZTO": "1002", "STO": "1002", "YD": "1002", "EMS": "1003",
                  "YZPY": "1003"}
DECRYPT_SCENE = "1004"  # 其他电子面单发货


def decrypt_scene(carrier: str, extra: dict | None = None) -> str:
    override = to_str((extra or {}).get("oaid_scene"))
    return override or DECRYPT_SCENES.get((carrier or "").strip().upper(), DECRYPT_SCENE)


def _taobao_build_decrypt_request(self, *, order_id: str, encrypted: dict, oaid: str = "",
                                  carrier: str = "") -> PlatformRequest:
    from orders.platforms.base import PlatformError

    if not oaid:
        raise PlatformError(self.code, "no_oaid", "订单没有 OAID,无法解密收件人")
    query = [{"oaid": oaid, "tid": str(order_id), "scene": decrypt_scene(carrier, self.credentials.extra)}]
    return self.signed("taobao.top.oaid.decrypt", {"query_list": json.dumps(query, separators=(",", ":"))})


def _taobao_parse_decrypt_response(self, body: dict):
    from orders.platforms.interface import DecryptedReceiver

    self.raise_for_error(body)
    inner = (body.get("top_oaid_decrypt_response") or {}).get("receiver_list") or {}
    receivers = inner.get("receiver") or [] if isinstance(inner, dict) else inner
    if isinstance(receivers, dict):
        receivers = [receivers]
    if not receivers:
        raise self.error("empty", "taobao.top.oaid.decrypt 没有返回收件人")
    r = receivers[0]
    if to_str(r.get("matched")).lower() == "false":
        raise self.error("oaid_not_matched", "OAID 已不是该订单当前的 OAID,请重新同步订单后再打印面单")
    address = _with_town(to_str(r.get("town")), to_str(r.get("address_detail")))
    return DecryptedReceiver(name=to_str(r.get("name")), phone=to_str(first(r.get("mobile"), r.get("phone"))),
                             address=address)


TaobaoAdapter.build_decrypt_request = _taobao_build_decrypt_request
TaobaoAdapter.parse_decrypt_response = _taobao_parse_decrypt_response
