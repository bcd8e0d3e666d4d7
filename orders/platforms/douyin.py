"""Douyin shop (抖店) ``order.searchList``.

Follows ``../shared/fixtures/douyin/order_searchList.fields.md`` — the field table of the
response model of zsmhub/doudian-sdk (generated from the platform's API metadata): amounts are
integers in 分, times epoch seconds, ``page`` 0-based, the envelope ``{code (10000 = success),
msg, sub_code, sub_msg, log_id, data}``; status codes from ``STATUS_CODES.md``. No published JSON
example of ``order.searchList`` exists (SOURCES.md), so the tests use
``tests/fixtures_own/douyin_order.json``, written by us from that field table.

From the same SDK (``utils/sign_util.go``, ``core/doudian_op_api_client.go``) and the public
documentation, not from the fixtures: requests go to
``https://openapi-fxg.jinritemai.com/<method with dots as slashes>`` as POST, the business
parameters are the JSON body ``param_json`` (keys sorted, compact, no HTML escaping); the query
carries app_key, method, timestamp (epoch seconds), v=2, sign_method, access_token and sign =
hex(HMAC-SHA256(app_secret, app_secret + "app_key"… + "method"… + "param_json"… + "timestamp"… +
"v2" + app_secret)) — or MD5 of the same string with sign_method=md5. Stock goes through
``sku.syncStock``. Error codes other than 10000 raise PlatformError; which ones are retryable
is not covered by the fixtures: we treat 20000 (service unavailable), codes ≥ 90000 and sub
codes that mention a limit or busy state as retryable.

Receiver data: ``encrypt_post_tel`` / ``encrypt_post_receiver`` / ``post_addr.encrypt_detail``
are kept verbatim in ``encrypted``; the ``mask_*`` fields are what is shown; a phone is used
only when ``post_tel`` is a clear mobile. ``doudian_open_id`` is the stable buyer id. The line id
is the sku order's ``order_id``; a line with ``given_product_type == "FREE"`` or trade_type 102
is a gift.
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
from orders.platforms.parsing import (required_id, code, epoch_seconds, fen_to_money, first, is_protected, parse_time,
                                      split_region, to_int, to_str)
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

ORDER_STATUS = {"1": None, "105": T.PAY, "2": T.PAY, "101": T.PARTIALLY_SHIP, "3": T.SHIP, "4": T.CANCEL,
                "5": T.COMPLETE}
PAID = {"105", "2", "101", "3", "5"}
SHIPPED = {"3", "5"}
AFTER_SALE_OPEN = {"6", "7", "11", "13", "14"}  # 申请, 退货中, 售后已发货, 换货商家发货, 换货用户收货
AFTER_SALE_DONE = {"12"}  # 售后成功
_MOBILE = re.compile(r"^(\+?86)?1\d{10}$")
_RETRY_WORDS = re.compile(r"limit|busy|频|限流|繁忙", re.I)


def param_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign(app_key: str, app_secret: str, method: str, timestamp: int | str, param_json_text: str,
         sign_method: str = "hmac-sha256") -> str:
    pattern = (f"{app_secret}app_key{app_key}method{method}param_json{param_json_text}"
               f"timestamp{timestamp}v2{app_secret}")
    if sign_method == "md5":
        return hashlib.md5(pattern.encode("utf-8")).hexdigest()
    return hmac.new(app_secret.encode("utf-8"), pattern.encode("utf-8"), hashlib.sha256).hexdigest()


def _name(value) -> str:
    return to_str(value.get("name")) if isinstance(value, dict) else to_str(value)


class DouyinAdapter(AdapterBase):
    code = "douyin"
    base_url = "https://openapi-fxg.jinritemai.com"
    window = timedelta(days=1)
    first_page = 0
    overlap = timedelta(minutes=1)

    def signed(self, method: str, business: dict) -> PlatformRequest:
        c = self.credentials
        sign_method = c.extra.get("sign_method", "hmac-sha256")
        body = param_json(business)
        ts = epoch_seconds(self.now())
        params = {"app_key": c.app_key, "method": method, "timestamp": str(ts), "v": "2",
                  "sign_method": sign_method, "sign": sign(c.app_key, c.app_secret, method, ts, body, sign_method)}
        if c.access_token:
            params["access_token"] = c.access_token
        return PlatformRequest("POST", "/" + method.replace(".", "/"), params, json.loads(body),
                               {"Content-Type": "application/json"}, "json")

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        w = self.window_cursor(cursor)
        return self.signed("order.searchList", {
            "update_time_start": epoch_seconds(w.start), "update_time_end": epoch_seconds(w.end),
            "order_by": "update_time", "order_asc": True, "page": w.page, "size": min(max(page_size, 1), 100),
        })

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        business = {"sku_id": to_int(sku_id), "stock_num": max(int(quantity), 0), "incremental": False}
        if item_id:
            business["product_id"] = to_int(item_id)
        return self.signed("sku.syncStock", business)

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        """A whole order in one parcel: ``order.logisticsAdd`` (``/order/logisticsAdd``) with
        ``order_id``, ``company_code`` (from ``/order/logisticsCompanyList``, e.g. ``shunfeng``)
        and ``logistics_code`` (the tracking number). A parcel of a split order whose lines carry
        their sku order ids: ``order.logisticsAddMultiPack`` (一单多包/拆单发货) with ``order_id``
        (the parent order), ``request_id`` (idempotency key: our parcel reference, so a retried
        push never ships twice) and ``pack_list`` = one pack ``{"shipped_order_info":
        [{"shipped_order_id": <sku order id>, "shipped_num": <qty>}], "logistics_code",
        "company_code"}``; its answer ``data.pack_list[].pack_id`` is kept as the reference.
        A split parcel without sku order ids cannot be told apart: only the first is pushed
        (with logisticsAdd), the rest are noted.

        Sources: zsmhub/doudian-sdk ``api/order_logisticsAdd/request/order_logisticsAdd_request.go``,
        ``api/order_logisticsAddMultiPack/request/order_logisticsAddMultiPack_request.go`` and
        ``…/response/order_logisticsAddMultiPack_response.go`` (commit 93c52ff, generated from
        the platform's metadata; the official Java SDK's ``PackListItem`` marks
        shipped_order_info and logistics_code required, example company_code ``shunfeng``);
        envelope ``core/doudian_op_api_base_response.go`` (code 10000 = success)."""
        company = carrier_code(self.code, job.carrier, self.credentials.extra)
        ids = line_ids(job)
        if job.package_count > 1 and job.lines and len(ids) == len(job.lines):
            info = [{"shipped_order_id": line.platform_line_id, "shipped_num": max(int(line.quantity), 1)}
                    for line in job.lines]
            return self.signed("order.logisticsAddMultiPack", {
                "order_id": job.platform_order_id,
                "request_id": job.reference or f"{job.platform_order_id}-{job.package_no}",
                "pack_list": [{"shipped_order_info": info, "logistics_code": job.tracking_number,
                               "company_code": company}]})
        if job.additional:
            raise TrackingNotApplicable("抖店:附加包裹没有子订单号(sku order id),无法按包裹回传")
        return self.signed("order.logisticsAdd", {
            "order_id": job.platform_order_id, "logistics_code": job.tracking_number, "company_code": company})

    def parse_tracking_push(self, job: TrackingJob, *, status: int, body, headers=None) -> TrackingAnswer:
        if isinstance(body, dict):
            self.raise_for_error(body)  # code 10000 = success
        raise_for_status(self.code, status, body)
        packs = (((body or {}).get("data") or {}).get("pack_list") or []) if isinstance(body, dict) else []
        mine = [p for p in packs if to_str(p.get("logistics_code")) in ("", job.tracking_number)]
        return TrackingAnswer(done=True, reference=to_str((mine or packs or [{}])[0].get("pack_id")))

    def raise_for_error(self, body: dict) -> None:
        code_ = to_str(body.get("code"))
        if code_ in ("", "10000", "0"):
            return
        sub = to_str(body.get("sub_code"))
        message = " ".join(x for x in (to_str(body.get("msg")), to_str(body.get("sub_msg"))) if x)
        retryable = code_ == "20000" or to_int(code_, 0) >= 90000 or bool(_RETRY_WORDS.search(sub + message))
        raise self.error(code_, message + (f" [{sub}]" if sub else ""), retryable=retryable)

    def parse_list_response(self, body: dict, *, cursor: str = "") -> OrderPage:
        self.raise_for_error(body)
        data = body.get("data") or {}
        orders = list(data.get("shop_order_list") or [])
        page, size, total = to_int(data.get("page")), to_int(data.get("size")), to_int(data.get("total"))
        has_more = bool(orders) and (page + 1) * max(size, len(orders)) < total
        return self.page_after(cursor, has_more=has_more, orders=orders)

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        status, after_sale = code(platform_status), code(refund_status)
        mapped = ORDER_STATUS.get(status)
        if mapped == T.CANCEL:
            return mapped.value
        if after_sale in AFTER_SALE_OPEN:
            return T.REFUND_REQUESTED.value
        if after_sale in AFTER_SALE_DONE:
            return T.REFUNDED.value
        return mapped.value if mapped else None

    def normalize(self, raw: dict) -> NormalizedOrder:
        o = raw.get("data", raw) if isinstance(raw.get("data"), dict) and "order_id" not in raw else raw
        if "shop_order_detail" in o:
            o = o["shop_order_detail"]
        status = code(o.get("order_status"))
        lines, after_sales, goods = [], [], Decimal("0")
        presale = False
        for sku in o.get("sku_order_list") or []:
            after = code((sku.get("after_sale_info") or {}).get("after_sale_status"))
            after = "" if after in ("", "0") else after
            if after:
                after_sales.append(after)
            trade_type = code(sku.get("trade_type"))
            presale = presale or trade_type == "2" or to_int(sku.get("pre_sale_type")) in (1, 2)
            gift = to_str(sku.get("given_product_type")) == "FREE" or trade_type == "102"
            quantity = to_int(sku.get("item_num"), 1)
            unit = fen_to_money(sku.get("origin_amount"))
            if not gift:  # a free gift is not part of the goods amount (its price is netted by its discount)
                goods += fen_to_money(first(sku.get("sum_amount"), to_int(sku.get("origin_amount")) * quantity))
            lines.append(NormalizedLine(
                title=to_str(sku.get("product_name")), quantity=quantity, unit_price=unit,
                platform_sku_id=to_str(sku.get("sku_id")), sku_code=to_str(first(sku.get("out_sku_id"), sku.get("code"))),
                discount_amount=unit * quantity if gift and not to_int(sku.get("pay_amount")) else
                fen_to_money(sku.get("promotion_amount")),
                is_gift=gift, platform_line_id=to_str(sku.get("order_id")), refund_status=after,
            ))
        addr = o.get("post_addr") or {}
        mask_addr = o.get("mask_post_addr") or {}
        region = split_region(province=_name(addr.get("province")), city=_name(addr.get("city")),
                              district=_name(addr.get("town")))
        street = _name(first(addr.get("street"), mask_addr.get("street")))
        detail = to_str(addr.get("detail"))
        if not detail or is_protected(detail):
            detail = to_str(mask_addr.get("detail")) or detail
        encrypted = {k: o[k] for k in ("encrypt_post_tel", "encrypt_post_receiver", "post_tel", "post_receiver")
                     if to_str(o.get(k)) and (k.startswith("encrypt_") or is_protected(o.get(k)))}
        if to_str(addr.get("encrypt_detail")):
            encrypted["post_addr.encrypt_detail"] = addr["encrypt_detail"]
        tel = to_str(o.get("post_tel"))
        receiver = to_str(o.get("post_receiver"))
        if not receiver or is_protected(receiver):
            receiver = to_str(o.get("mask_post_receiver")) or receiver
        refund_status = next((a for a in after_sales if a in AFTER_SALE_OPEN), next(iter(after_sales), ""))
        transition = self.status_transition(status, refund_status=refund_status)
        post = fen_to_money(o.get("post_amount"))
        if not lines:
            goods = fen_to_money(o.get("order_amount")) - post
        stars = to_int(o.get("seller_remark_stars"))
        return NormalizedOrder(
            platform_order_id=required_id(o.get("order_id"), "order_id"), lines=lines, platform_status=status,
            paid=status in PAID or (status == "4" and bool(to_int(o.get("pay_time")))), currency="CNY",
            goods_amount=goods, discount_amount=fen_to_money(o.get("promotion_amount")), shipping_fee=post,
            paid_amount=fen_to_money(o.get("pay_amount")), receiver_name=receiver,
            receiver_phone=tel if _MOBILE.match(tel) else "", country="CN",
            province=region.province, city=region.city, district=region.district,
            address=(street + detail) if street and not detail.startswith(street) else detail,
            is_presale=presale, promised_ship_at=parse_time(o.get("exp_ship_time") or None),
            source_detail=to_str(o.get("b_type_desc")), buyer_note=to_str(o.get("buyer_words")),
            seller_note=to_str(o.get("seller_words")), tags=[f"seller_star:{stars}"] if stars else [],
            placed_at=parse_time(o.get("create_time") or None), paid_at=parse_time(o.get("pay_time") or None),
            platform_updated_at=parse_time(o.get("update_time") or None), raw=raw,
            platform_buyer_id=to_str(o.get("doudian_open_id")), encrypted=encrypted,
            refund_requested=any(a in AFTER_SALE_OPEN for a in after_sales),
            cancelled=transition == T.CANCEL.value, shipped=status in SHIPPED,
        )


# --- receiver decryption (appended for e-waybills, issue 14) -------------------------------------
# ``order.batchDecrypt`` (``/order/batchDecrypt``). Source: zsmhub/doudian-sdk
# ``api/order_batchDecrypt/request/order_batchDecrypt_request.go`` and
# ``api/order_batchDecrypt/response/order_batchDecrypt_response.go`` (commit 93c52ff):
# ``cipher_infos`` (≤ 50) = [{"auth_id": order id, "cipher_text": ciphertext}]; the answer, in
# the usual envelope (code 10000 = success), is ``data.decrypt_infos[]`` with auth_id /
# cipher_text / decrypt_text / err_no (0 = ok) / err_msg / data_type (1 地址, 2 姓名, 3 手机号,
# 5 手机号 without virtual number) / is_virtual_tel (then decrypt_text is "主号-分机号"), and
# ``data.custom_err`` {err_code, err_msg} for a business error.
DECRYPT_FIELDS = {"encrypt_post_receiver": "name", "post_receiver": "name", "encrypt_post_tel": "phone",
                  "post_tel": "phone", "post_addr.encrypt_detail": "address"}
DATA_TYPES = {1: "address", 2: "name", 3: "phone", 5: "phone"}


def _douyin_build_decrypt_request(self, *, order_id: str, encrypted: dict, oaid: str = "",
                                  carrier: str = "") -> PlatformRequest:
    ciphers = {encrypted[k]: v for k, v in DECRYPT_FIELDS.items() if encrypted.get(k)}
    if not ciphers:
        raise self.error("no_cipher", "订单没有可解密的收件人密文")
    self._decrypt_map = ciphers
    return self.signed("order.batchDecrypt", {"cipher_infos": [
        {"auth_id": str(order_id), "cipher_text": c} for c in list(ciphers)[:50]]})


def _douyin_parse_decrypt_response(self, body: dict):
    from orders.platforms.interface import DecryptedReceiver

    self.raise_for_error(body)
    data = body.get("data") or {}
    rows = data.get("decrypt_infos") or []
    mapping = getattr(self, "_decrypt_map", {})
    out: dict[str, str] = {}
    errors = []
    custom = data.get("custom_err") or {}
    if to_str(custom.get("err_code")) not in ("", "0"):
        errors.append(f"{custom.get('err_code')} {to_str(custom.get('err_msg'))}".strip())
    for row in rows:
        if to_str(row.get("err_no")) not in ("", "0"):
            errors.append(f"{row.get('err_no')} {to_str(row.get('err_msg'))}".strip())
            continue
        field_ = mapping.get(to_str(row.get("cipher_text"))) or DATA_TYPES.get(to_int(row.get("data_type"), 0))
        if field_ and to_str(row.get("decrypt_text")):
            out.setdefault(field_, to_str(row.get("decrypt_text")))
    if not out:
        raise self.error("decrypt_failed", "; ".join(errors) or "order.batchDecrypt 没有返回明文")
    return DecryptedReceiver(**out)


DouyinAdapter.build_decrypt_request = _douyin_build_decrypt_request
DouyinAdapter.parse_decrypt_response = _douyin_parse_decrypt_response
