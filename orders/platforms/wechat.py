"""Our own WeChat mini-program shop (微信小程序商城) — platform key ``miniapp``.

The shop is ours, so the JSON is ours too; it is DEFINED here (no platform fixture exists), and
``tests/fixtures_own/wechat_order.json`` is its reference example. Schema ``orderhub.miniapp/1``:

Order (one object; the list endpoint returns ``{"orders": [...], "next_cursor": str,
"has_more": bool}``)::

    schema        "orderhub.miniapp/1"              optional, checked when present
    order_no      str   required, unique per shop   e.g. "WX20240102150405001"
    status        str   WAIT_PAY | PAID | PART_SHIPPED | SHIPPED | DELIVERED | FINISHED | CLOSED | REFUNDED
    refund_status str   NONE | REQUESTED | REFUNDING | REFUNDED | REJECTED    (default NONE)
    created_at    ISO 8601 with offset (naive = Asia/Shanghai); also epoch s/ms
    paid_at       same, null when unpaid
    updated_at    same; the version of the order (newer wins)
    ship_by       same, optional: the promised ship time (presale / lead time)
    presale       bool, optional
    openid        str   the buyer's openid in our mini program (stable buyer id)
    unionid       str   optional, the WeChat unionid across our apps (preferred when given)
    member        {"level": str, "vip": bool}                         optional
    buyer         {"nickname": str, "phone": str}                     optional
    receiver      {"name", "phone", "province", "city", "district", "address", "postcode"}
                  province/city/district may be empty when "address" holds the full address
    amounts       {"currency": "CNY", "goods": money, "discount": money, "shipping": money, "paid": money}
                  money = yuan as a decimal string ("99.90"; numbers accepted); goods = Σ qty × unit_price
    items         [{"line_id": str (unique in the order), "sku_code": str (our SKU code), "title": str,
                    "quantity": int, "unit_price": money, "discount": money, "gift": bool,
                    "refund_status": str (as above, per line)}]
    coupons       [str]  coupon codes used
    note          str    the buyer's note;  seller_note  str  our shop staff's memo in the shop backend
    invoice       {"title": str, "tax_number": str}                   optional
    scene         int    the WeChat scene value the order came from (1001 = 发现栏小程序主入口 …)

The mini-program backend's API (ours, documented here for the HTTP client): base URL from the
shop's settings (``Credentials.extra["base_url"]``), ``GET /api/orderhub/v1/orders?cursor=…&limit=N``
(cursor "" or ``since:<ISO>`` or an opaque server cursor), ``PUT /api/orderhub/v1/stock/<sku_code>``
with ``{"quantity": n}``. Every request carries ``X-OrderHub-App``, ``X-OrderHub-Timestamp``
(epoch seconds) and ``X-OrderHub-Signature`` = hex HMAC-SHA256(app_secret, method + "\\n" + path +
"\\n" + sorted query as k=v&… + "\\n" + timestamp + "\\n" + body). Errors: HTTP 4xx/5xx with
``{"error": {"code": str, "message": str, "retryable": bool, "retry_after": seconds|null}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timezone
from urllib.parse import quote

from orders.platforms.base import NormalizedLine, NormalizedOrder, OrderPage
from orders.platforms.interface import AdapterBase, PlatformRequest, PlatformTransition as T
from orders.platforms.parsing import (required_id, code, epoch_seconds, first, parse_time, split_region, to_bool, to_int, to_money,
                                      to_str)
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

SCHEMA = "orderhub.miniapp/1"
STATUS = {"WAIT_PAY": None, "PAID": T.PAY, "PART_SHIPPED": T.PARTIALLY_SHIP, "SHIPPED": T.SHIP,
          "DELIVERED": T.DELIVER, "FINISHED": T.COMPLETE, "CLOSED": T.CANCEL, "REFUNDED": T.CANCEL}
PAID = {"PAID", "PART_SHIPPED", "SHIPPED", "DELIVERED", "FINISHED", "REFUNDED"}
SHIPPED = {"SHIPPED", "DELIVERED", "FINISHED"}
REFUND_OPEN = {"REQUESTED", "REFUNDING"}


def signature(app_secret: str, method: str, path: str, params: dict[str, str], timestamp: int | str,
              body: str = "") -> str:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in sorted(params.items()))
    message = f"{method.upper()}\n{path}\n{query}\n{timestamp}\n{body}"
    return hmac.new(app_secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


class WechatAdapter(AdapterBase):
    code = "miniapp"
    base_url = ""  # ours: Credentials.extra["base_url"]

    def signed(self, method: str, path: str, params: dict, body: dict | None = None) -> PlatformRequest:
        c = self.credentials
        params = {k: to_str(v) for k, v in params.items()}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False) if body is not None else ""
        ts = epoch_seconds(self.now())
        headers = {"X-OrderHub-App": c.app_key, "X-OrderHub-Timestamp": str(ts),
                   "X-OrderHub-Signature": signature(c.app_secret, method, path, params, ts, text)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return PlatformRequest(method, path, params, body, headers, "json" if body is not None else "")

    def initial_cursor(self, since) -> str:
        return "since:" + since.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        return self.signed("GET", "/api/orderhub/v1/orders", {"cursor": cursor, "limit": min(max(page_size, 1), 200)})

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        return self.signed("PUT", f"/api/orderhub/v1/stock/{quote(sku_id, safe='')}", {},
                           {"quantity": max(int(quantity), 0)})

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        """Ours: ``POST /api/orderhub/v1/orders/<order_no>/shipments`` with ``{"carrier",
        "tracking_number", "package_no", "package_ref", "shipped_at", "items": [{"line_id",
        "quantity"}]}`` (carrier = our code), signed like every call. Answer
        ``{"ok": true, "shipment_id": str}``; a repeated ``package_ref`` is answered ok (the
        server keeps the first). Every parcel is pushed. Our own API (schema
        ``orderhub.miniapp/1``, module docstring): there is no third-party document to check it
        against."""
        carrier = carrier_code(self.code, job.carrier, self.credentials.extra)
        body = {"carrier": carrier, "tracking_number": job.tracking_number, "package_no": job.package_no,
                "package_ref": job.reference, "shipped_at": job.shipped_at.astimezone(timezone.utc).isoformat(),
                "items": [{"line_id": line.platform_line_id or line.sku_code, "quantity": line.quantity}
                          for line in job.lines]}
        return self.signed("POST", f"/api/orderhub/v1/orders/{quote(job.platform_order_id, safe='')}/shipments",
                           {}, body)

    def parse_tracking_push(self, job: TrackingJob, *, status: int, body, headers=None) -> TrackingAnswer:
        err = body.get("error") if isinstance(body, dict) else None
        if err:
            retry_after = err.get("retry_after")
            raise self.error(err.get("code"), err.get("message"), retryable=to_bool(err.get("retryable")),
                             retry_after=float(retry_after) if retry_after not in (None, "") else None)
        raise_for_status(self.code, status, body)
        return TrackingAnswer(done=True, reference=to_str((body or {}).get("shipment_id")))

    def parse_list_response(self, body: dict, *, cursor: str = "") -> OrderPage:
        err = body.get("error")
        if err:
            retry_after = err.get("retry_after")
            raise self.error(err.get("code"), err.get("message"), retryable=to_bool(err.get("retryable")),
                             retry_after=float(retry_after) if retry_after not in (None, "") else None)
        has_more = to_bool(body.get("has_more"))
        return OrderPage(orders=list(body.get("orders") or []), next_cursor=to_str(body.get("next_cursor")) or cursor,
                         has_more=has_more)

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        status, refund = code(platform_status).upper(), code(refund_status).upper()
        mapped = STATUS.get(status)
        if mapped == T.CANCEL:
            return mapped.value
        if refund in REFUND_OPEN:
            return T.REFUND_REQUESTED.value
        if refund == "REFUNDED":
            return T.REFUNDED.value
        return mapped.value if mapped else None

    def normalize(self, raw: dict) -> NormalizedOrder:
        o = raw.get("order", raw) if isinstance(raw.get("order"), dict) else raw
        schema = o.get("schema")
        if schema not in (None, "", SCHEMA):
            raise ValueError(f"unknown mini-program order schema {schema!r}")
        status = code(o.get("status")).upper()
        refund = code(o.get("refund_status")).upper() or "NONE"
        lines, line_refunds = [], []
        for item in o.get("items") or []:
            r = code(item.get("refund_status")).upper()
            r = "" if r in ("", "NONE") else r
            line_refunds.append(r)
            lines.append(NormalizedLine(
                title=to_str(item.get("title")), quantity=to_int(item.get("quantity"), 1),
                unit_price=to_money(item.get("unit_price")), sku_code=to_str(item.get("sku_code")),
                platform_sku_id=to_str(first(item.get("sku_id"), item.get("sku_code"))),
                discount_amount=to_money(item.get("discount")), is_gift=to_bool(item.get("gift")),
                platform_line_id=to_str(item.get("line_id")), refund_status=r,
            ))
        rec = o.get("receiver") or {}
        region = split_region(province=to_str(rec.get("province")), city=to_str(rec.get("city")),
                              district=to_str(rec.get("district")), address=to_str(rec.get("address")))
        amounts = o.get("amounts") or {}
        member = o.get("member") or {}
        buyer = o.get("buyer") or {}
        invoice = o.get("invoice") or {}
        transition = self.status_transition(status, refund_status=refund)
        openid, unionid = to_str(o.get("openid")), to_str(o.get("unionid"))
        return NormalizedOrder(
            platform_order_id=required_id(o.get("order_no"), "order_no"), lines=lines, platform_status=status,
            paid=status in PAID, currency=to_str(amounts.get("currency")) or "CNY",
            goods_amount=to_money(amounts.get("goods")), discount_amount=to_money(amounts.get("discount")),
            shipping_fee=to_money(amounts.get("shipping")), paid_amount=to_money(amounts.get("paid")),
            buyer_name=to_str(buyer.get("nickname")), buyer_phone=to_str(buyer.get("phone")),
            receiver_name=to_str(rec.get("name")), receiver_phone=to_str(rec.get("phone")), country="CN",
            province=region.province, city=region.city, district=region.district, address=region.address,
            postcode=to_str(rec.get("postcode")), is_presale=to_bool(o.get("presale")),
            promised_ship_at=parse_time(o.get("ship_by")),
            source_detail=f"scene:{to_int(o.get('scene'))}" if o.get("scene") not in (None, "") else "",
            coupon_codes=[to_str(c) for c in o.get("coupons") or []],
            member_level=to_str(member.get("level")), is_vip=to_bool(member.get("vip")),
            buyer_note=to_str(o.get("note")), seller_note=to_str(o.get("seller_note")),
            invoice_title=to_str(invoice.get("title")), invoice_tax_number=to_str(invoice.get("tax_number")),
            placed_at=parse_time(o.get("created_at")), paid_at=parse_time(o.get("paid_at")),
            platform_updated_at=parse_time(o.get("updated_at")), raw=raw,
            platform_buyer_id=unionid or openid,
            refund_requested=refund in REFUND_OPEN or any(r in REFUND_OPEN for r in line_refunds),
            cancelled=transition == T.CANCEL.value, shipped=status in SHIPPED,
        )
