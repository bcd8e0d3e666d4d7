"""Sandbox platform: a steady, realistic, deterministic stream of orders for a fresh install.

Not a real platform, so no fixture: the raw JSON shape is our own and documented here.
`SandboxPlatform` is the fake platform (pure: it computes, it stores nothing but pushed stock),
`SandboxAdapter` the adapter that talks to it like any other (cursor requests, list pages,
normalize). A sync job gives the adapter's requests to ``SandboxPlatform.handle`` instead of
sending them over HTTP.

The stream is a function of (seed, SKU ids, start, rate): order *i* is placed at about
``start + i / rate``, its content drawn from ``Random(f"{seed}:{i}")`` — the same on every
machine and every run. Ask at any ``now`` and you get every change that happened up to then,
in time order: most orders arrive paid; some arrive unpaid and are paid minutes later, a few
unpaid ones close; some paid orders are cancelled by the buyer before shipment, some get a
refund request hours later. Each change is a full snapshot of the order with a higher
``version`` and ``updated_at``. Buyers come from a pool (so customers repeat), with Chinese
names from a small table and real province/city/district names; phones are 138-prefixed
made-up numbers; streets are generic (人民路 12 号).

Raw order::

    {"order_no": "SBX20240102000042", "version": 2, "status": "paid",   # pending_payment|paid|cancelled|closed
     "refund": {"status": "requested", "reason": "不想要了", "requested_at": "…"} | null,
     "created_at": "2024-01-02T15:04:05+08:00", "paid_at": "…" | null, "updated_at": "…",
     "buyer": {"id": "sbx-u-00042", "nick": "张伟_42"},
     "receiver": {"name": "张伟", "phone": "13801000042", "province": "浙江省", "city": "杭州市",
                  "district": "西湖区", "detail": "人民路 12 号 3 栋 2 单元 501 室"},
     "items": [{"line_id": "SBX20240102000042-1", "sku_id": "SKU-1", "title": "…", "quantity": 2,
                "price": "59.00", "gift": false}],
     "shipping_fee": "0.00", "discount": "5.00", "total": "113.00",
     "presale": {"ship_by": "…"} | null, "buyer_memo": ""}

List API: ``GET /orders?cursor=…&limit=…`` → ``{"orders": […], "next_cursor": "…", "has_more": bool}``;
the cursor is the position of the last change delivered (``microseconds:order:change``).
Stock: ``POST /stock`` ``{"sku_id", "quantity"}`` → ``{"ok": true}``.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from orders.platforms.base import NormalizedLine, NormalizedOrder, OrderPage
from orders.platforms.interface import (AdapterBase, Credentials, PlatformRequest, PlatformTransition as T,
                                        utc_now)
from orders.platforms.parsing import first, parse_time, required_id, split_region, to_bool, to_int, to_money, to_str
from orders.platforms.tracking import (TrackingAnswer, TrackingJob, TrackingNotApplicable, carrier_code, line_ids,
                                       raise_for_status)

SHANGHAI = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_PAGE = 200
# The longest time between an order being placed and its last change (a refund request).
HORIZON = timedelta(hours=6)

SURNAMES = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
         "秀英", "华", "平", "建国", "海燕", "子涵", "浩然")
REGIONS = (
    ("浙江省", "杭州市", "西湖区"), ("浙江省", "宁波市", "鄞州区"), ("广东省", "深圳市", "南山区"),
    ("广东省", "广州市", "天河区"), ("江苏省", "南京市", "鼓楼区"), ("江苏省", "苏州市", "吴中区"),
    ("上海市", "上海市", "浦东新区"), ("北京市", "北京市", "朝阳区"), ("四川省", "成都市", "武侯区"),
    ("湖北省", "武汉市", "洪山区"), ("山东省", "青岛市", "市南区"), ("福建省", "厦门市", "思明区"),
    ("陕西省", "西安市", "雁塔区"), ("湖南省", "长沙市", "岳麓区"), ("河南省", "郑州市", "金水区"),
    ("重庆市", "重庆市", "渝北区"), ("天津市", "天津市", "南开区"), ("安徽省", "合肥市", "蜀山区"),
    ("辽宁省", "沈阳市", "和平区"), ("云南省", "昆明市", "五华区"), ("广西壮族自治区", "南宁市", "青秀区"),
    ("河北省", "石家庄市", "长安区"), ("江西省", "南昌市", "东湖区"), ("黑龙江省", "哈尔滨市", "南岗区"),
)
STREETS = ("人民路", "解放路", "中山路", "建设路", "和平路", "文化路", "新华路", "长江路", "学府路", "滨江路")
MEMOS = ("", "", "", "", "尽快发货", "请用顺丰", "周末送货", "不要放快递柜", "送人的，不要放发票")
REFUND_REASONS = ("不想要了", "拍错了", "商品与描述不符", "收到商品破损")
STATUS = {"paid": T.PAY, "cancelled": T.CANCEL, "closed": T.CANCEL}


def _us(value: datetime) -> int:
    delta = value.astimezone(timezone.utc) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _at(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    return _at(micros).astimezone(SHANGHAI).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _Change:
    at: int  # microseconds since the epoch
    order: int
    seq: int  # 1, 2, 3 … within the order (= its version)
    snapshot: dict

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.at, self.order, self.seq)


def _cursor_key(cursor: str) -> tuple[int, int, int]:
    at, order, seq = (int(x) for x in cursor.split(":"))
    return (at, order, seq)


class SandboxPlatform:
    """The fake platform. ``sku_ids``: the SKUs orders are made of (our SKU codes), optionally
    a mapping SKU id → (title, price); ``orders_per_hour``: the mean rate."""

    def __init__(self, *, sku_ids: Sequence[str] | Mapping[str, tuple[str, Any]], start: datetime, seed: int = 0,
                 orders_per_hour: float = 120, buyers: int = 300, gift_sku_ids: Sequence[str] = ()):
        if not sku_ids:
            raise ValueError("the sandbox needs at least one SKU id")
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self.seed, self.start_us = seed, _us(start)
        self.interval_us = int(3_600_000_000 / orders_per_hour)
        self.buyers = max(1, buyers)
        self.catalogue: list[tuple[str, str, Decimal]] = []
        for sku in sku_ids:
            if isinstance(sku_ids, Mapping):
                title, price = sku_ids[sku]
                self.catalogue.append((sku, title, to_money(price)))
            else:
                rng = random.Random(f"{seed}:sku:{sku}")
                price = Decimal(rng.choice((19, 29, 39, 49, 59, 69, 89, 99, 129, 199))) - rng.choice(
                    (Decimal("0"), Decimal("0.1")))
                self.catalogue.append((sku, f"沙箱商品 {sku}", price.quantize(Decimal("0.01"))))
        self.gift_sku_ids = list(gift_sku_ids) or [self.catalogue[-1][0]]
        self.stock: dict[str, int] = {}  # what the adapter pushed, for a look in tests and the demo
        self._changes: dict[int, list[_Change]] = {}  # a cache: the same i always gives the same changes

    @classmethod
    def from_credentials(cls, credentials: Credentials, *, start: datetime) -> "SandboxPlatform":
        """The platform a sandbox shop describes in its credentials' ``extra``: ``sku_ids``
        (comma-separated SKU codes), optional ``seed``, ``orders_per_hour``, ``gift_sku_ids``."""
        extra = credentials.extra

        def split(text: Any) -> list[str]:
            return [s.strip() for s in to_str(text).split(",") if s.strip()]

        return cls(sku_ids=split(extra.get("sku_ids")), start=start, seed=to_int(extra.get("seed"), 0),
                   orders_per_hour=float(to_money(extra.get("orders_per_hour"), Decimal("120"))),
                   gift_sku_ids=split(extra.get("gift_sku_ids")))

    # the stream

    def placed_us(self, i: int) -> int:
        jitter = random.Random(f"{self.seed}:{i}:t").random() * 0.9
        return self.start_us + int((i + jitter) * self.interval_us)

    def _buyer(self, b: int) -> dict:
        rng = random.Random(f"{self.seed}:buyer:{b}")
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        province, city, district = rng.choice(REGIONS)
        street = f"{rng.choice(STREETS)} {rng.randint(1, 399)} 号"
        if rng.random() < 0.7:
            street += f" {rng.randint(1, 30)} 栋 {rng.randint(1, 4)} 单元 {rng.randint(1, 32)}{rng.randint(1, 4):02d} 室"
        return {"id": f"sbx-u-{b:05d}", "nick": f"{name}_{b}", "name": name,
                "phone": f"138{self.seed % 100:02d}{b:06d}", "province": province, "city": city,
                "district": district, "detail": street}

    def changes(self, i: int) -> list[_Change]:
        """Every version of order ``i``, oldest first."""
        if i < 0:
            return []
        cached = self._changes.get(i)
        if cached is None:
            if len(self._changes) > 20_000:
                self._changes.clear()
            cached = self._changes[i] = self._compute(i)
        return cached

    def _compute(self, i: int) -> list[_Change]:
        rng = random.Random(f"{self.seed}:{i}")
        placed = self.placed_us(i)
        buyer = self._buyer(rng.randrange(self.buyers))
        day = _at(placed).astimezone(SHANGHAI).strftime("%Y%m%d")
        order_no = f"SBX{day}{i:06d}"
        items, goods = [], Decimal("0.00")
        for n, (sku, title, price) in enumerate(rng.sample(self.catalogue, k=min(len(self.catalogue),
                                                                               rng.choice((1, 1, 1, 2, 2, 3)))), 1):
            quantity = rng.choice((1, 1, 1, 1, 2, 2, 3))
            goods += price * quantity
            items.append({"line_id": f"{order_no}-{n}", "sku_id": sku, "title": title, "quantity": quantity,
                          "price": str(price), "gift": False})
        if rng.random() < 0.12:
            gift = rng.choice(self.gift_sku_ids)
            title = next((t for s, t, _p in self.catalogue if s == gift), f"赠品 {gift}")
            items.append({"line_id": f"{order_no}-{len(items) + 1}", "sku_id": gift, "title": f"【赠品】{title}",
                          "quantity": 1, "price": "0.00", "gift": True})
        discount = Decimal(rng.choice((0, 0, 0, 5, 10))) if goods >= 99 else Decimal("0")
        shipping = Decimal("0") if goods >= 49 else Decimal(rng.choice((6, 8, 10)))
        presale = rng.random() < 0.06
        base = {
            "order_no": order_no, "created_at": _iso(placed),
            "buyer": {"id": buyer["id"], "nick": buyer["nick"]},
            "receiver": {k: buyer[k] for k in ("name", "phone", "province", "city", "district", "detail")},
            "items": items, "shipping_fee": str(shipping.quantize(Decimal("0.01"))),
            "discount": str(discount.quantize(Decimal("0.01"))),
            "total": str((goods - discount + shipping).quantize(Decimal("0.01"))),
            "presale": {"ship_by": _iso(placed + 7 * 86_400_000_000)} if presale else None,
            "buyer_memo": rng.choice(MEMOS),
        }
        seconds = 1_000_000
        path = rng.random()
        steps: list[tuple[int, str, int | None, dict | None]] = []  # (at, status, paid_at, refund)
        if path < 0.85:
            paid = placed + rng.randint(5, 90) * seconds
            steps.append((paid, "paid", paid, None))
        elif path < 0.97:
            paid = placed + rng.randint(60, 900) * seconds
            steps += [(placed, "pending_payment", None, None), (paid, "paid", paid, None)]
        else:
            paid = None
            steps += [(placed, "pending_payment", None, None), (placed + 1800 * seconds, "closed", None, None)]
        if paid is not None:
            after = rng.random()
            if after < 0.03:
                steps.append((paid + rng.randint(120, 1200) * seconds, "cancelled", paid, None))
            elif after < 0.08:
                at = paid + rng.randint(1800, 5 * 3600) * seconds
                steps.append((at, "paid", paid, {"status": "requested", "reason": rng.choice(REFUND_REASONS),
                                                 "requested_at": _iso(at)}))
        result = []
        for seq, (at, status, paid_at, refund) in enumerate(steps, 1):
            snapshot = {**base, "version": seq, "status": status, "refund": refund, "paid_at": _iso(paid_at),
                        "updated_at": _iso(at)}
            result.append(_Change(at, i, seq, snapshot))
        return result

    def list(self, cursor: str = "", limit: int = 50, *, now: datetime) -> dict:
        """The changes after ``cursor`` up to ``now``, oldest first, at most ``limit``."""
        limit = min(max(int(limit), 1), MAX_PAGE)
        after = _cursor_key(cursor) if cursor else (self.start_us - 1, -1, -1)
        now_us = _us(now)
        horizon_us = int(HORIZON.total_seconds()) * 1_000_000
        lo = max(0, math.floor((after[0] - horizon_us - self.start_us) / self.interval_us) - 1)
        found: list[_Change] = []
        i = lo
        while True:
            placed = self.placed_us(i)
            if placed > now_us:
                break
            if len(found) >= limit + 1:
                found.sort(key=lambda c: c.key)
                del found[limit + 1:]
                if placed > found[-1].at:  # later orders only bring later changes
                    break
            found.extend(c for c in self.changes(i) if after < c.key and c.at <= now_us)
            i += 1
        found.sort(key=lambda c: c.key)
        page, more = found[:limit], len(found) > limit
        next_cursor = ":".join(map(str, page[-1].key)) if page else (cursor or ":".join(map(str, after)))
        return {"orders": [copy.deepcopy(c.snapshot) for c in page], "next_cursor": next_cursor, "has_more": more}

    def handle(self, request: PlatformRequest, *, now: datetime) -> dict:
        """Answer an adapter's request as the platform would."""
        if request.method == "GET" and request.path == "/orders":
            return self.list(request.params.get("cursor", ""), to_int(request.params.get("limit"), 50), now=now)
        if request.method == "POST" and request.path == "/stock":
            body = request.body or {}
            self.stock[to_str(body.get("sku_id"))] = to_int(body.get("quantity"))
            return {"ok": True}
        if request.method == "POST" and request.path == "/shipments":  # a tracking number pushed back
            body = request.body or {}
            self.shipments = [*getattr(self, "shipments", []), dict(body)]
            return {"ok": True, "recorded": f"{to_str(body.get('order_id'))}/{to_int(body.get('package_no'), 1)}"}
        return {"error": {"code": "not_found", "message": f"{request.method} {request.path}"}}


class SandboxAdapter(AdapterBase):
    code = "sandbox"
    base_url = "sandbox://local"  # never sent over HTTP: SandboxPlatform.handle answers

    def __init__(self, credentials: Credentials | None = None, *,
                 now: Callable[[], datetime] = utc_now) -> None:
        super().__init__(credentials, now=now)

    def initial_cursor(self, since: datetime) -> str:
        return f"{_us(since) - 1}:-1:-1"

    def build_list_request(self, cursor: str, page_size: int) -> PlatformRequest:
        params = {"limit": str(min(max(page_size, 1), MAX_PAGE))}
        if cursor:
            params["cursor"] = cursor
        return PlatformRequest("GET", "/orders", params, None, {"Accept": "application/json"}, "")

    def parse_list_response(self, body: dict, *, cursor: str = "") -> OrderPage:
        err = body.get("error")
        if err:
            raise self.error(err.get("code"), err.get("message"))
        return OrderPage(orders=list(body.get("orders") or []), next_cursor=to_str(body.get("next_cursor")) or cursor,
                         has_more=to_bool(body.get("has_more")))

    def build_stock_push(self, sku_id: str, quantity: int, *, item_id: str = "") -> PlatformRequest:
        return PlatformRequest("POST", "/stock", {}, {"sku_id": sku_id, "quantity": max(int(quantity), 0)},
                               {"Content-Type": "application/json"}, "json")

    def build_tracking_push(self, job: TrackingJob) -> PlatformRequest:
        """Recorded by `SandboxPlatform.handle` in-process (no network); any carrier code."""
        return PlatformRequest("POST", "/shipments", {}, {
            "order_id": job.platform_order_id, "carrier": job.carrier, "tracking_number": job.tracking_number,
            "package_no": job.package_no}, {"Content-Type": "application/json"}, "json")

    def parse_tracking_push(self, job: TrackingJob, *, status: int, body, headers=None) -> TrackingAnswer:
        err = (body or {}).get("error") if isinstance(body, dict) else None
        if err:
            raise self.error(err.get("code"), err.get("message"))
        return TrackingAnswer(done=True, reference=to_str((body or {}).get("recorded")))

    def status_transition(self, platform_status: str, *, refund_status: str = "") -> str | None:
        status = to_str(platform_status)
        if status in ("cancelled", "closed"):
            return T.CANCEL.value
        if to_str(refund_status) == "requested":
            return T.REFUND_REQUESTED.value
        mapped = STATUS.get(status)
        return mapped.value if mapped else None

    def normalize(self, raw: dict) -> NormalizedOrder:
        status = to_str(raw.get("status"))
        refund = raw.get("refund") or {}
        transition = self.status_transition(status, refund_status=to_str(refund.get("status")))
        lines, goods = [], Decimal("0.00")
        for item in raw.get("items") or []:
            price, quantity = to_money(item.get("price")), to_int(item.get("quantity"), 1)
            gift = to_bool(item.get("gift"))
            goods += price * quantity
            lines.append(NormalizedLine(
                title=to_str(item.get("title")), quantity=quantity, unit_price=price,
                platform_sku_id=to_str(item.get("sku_id")), sku_code=to_str(item.get("sku_id")),
                discount_amount=price * quantity if gift else Decimal("0.00"), is_gift=gift,
                platform_line_id=to_str(item.get("line_id")),
                refund_status=to_str(refund.get("status")),
            ))
        receiver = raw.get("receiver") or {}
        region = split_region(province=to_str(receiver.get("province")), city=to_str(receiver.get("city")),
                              district=to_str(receiver.get("district")), address=to_str(receiver.get("detail")))
        buyer = raw.get("buyer") or {}
        presale = raw.get("presale") or {}
        paid_at = parse_time(raw.get("paid_at"))
        return NormalizedOrder(
            platform_order_id=required_id(raw.get("order_no"), "order_no"), lines=lines, platform_status=status,
            paid=paid_at is not None, currency="CNY", goods_amount=goods,
            discount_amount=to_money(raw.get("discount")), shipping_fee=to_money(raw.get("shipping_fee")),
            paid_amount=to_money(raw.get("total")), buyer_name=to_str(buyer.get("nick")),
            receiver_name=to_str(receiver.get("name")), receiver_phone=to_str(receiver.get("phone")),
            buyer_phone=to_str(receiver.get("phone")), country="CN", province=region.province, city=region.city,
            district=region.district, address=region.address, is_presale=bool(presale),
            promised_ship_at=parse_time(presale.get("ship_by")), source_detail="sandbox",
            buyer_note=to_str(first(raw.get("buyer_memo"), "")), placed_at=parse_time(raw.get("created_at")),
            paid_at=paid_at, platform_updated_at=parse_time(raw.get("updated_at")), raw=raw,
            platform_buyer_id=to_str(buyer.get("id")), refund_requested=to_str(refund.get("status")) == "requested",
            cancelled=transition == T.CANCEL.value,
        )


# --- receiver decryption (appended for e-waybills, issue 14) -------------------------------------
# The sandbox platform may send a receiver encrypted like the Chinese platforms do: a field is
# then ``~SB~<base64 of the clear text>~``. It decrypts its own ciphertexts locally (no network),
# through the same two methods as the real adapters, so the demo exercises the audited path.
_SB_CIPHER = "~SB~"
_SB_FIELDS = {"name": "name", "phone": "phone", "detail": "address"}


def sandbox_encrypt(text: str) -> str:
    import base64

    return f"{_SB_CIPHER}{base64.b64encode(text.encode('utf-8')).decode('ascii')}~"


def _sb_receiver_ciphertexts(self, raw: dict) -> dict:
    receiver = (raw or {}).get("receiver") or {}
    return {k: v for k in _SB_FIELDS if isinstance(v := receiver.get(k), str) and v.startswith(_SB_CIPHER)}


def _sb_build_decrypt_request(self, *, order_id: str, encrypted: dict, oaid: str = "",
                              carrier: str = "") -> PlatformRequest:
    if not encrypted:
        raise self.error("no_cipher", "订单没有可解密的收件人密文")
    return PlatformRequest("POST", "/decrypt", {}, {"order_no": str(order_id), "ciphers": dict(encrypted)},
                           {"Content-Type": "application/json"}, "json")


def _sb_decrypt_answer(self, request: PlatformRequest) -> dict:
    """What the sandbox platform answers to a decrypt request (computed locally)."""
    import base64
    import binascii

    out = {}
    for key, cipher in ((request.body or {}).get("ciphers") or {}).items():
        try:
            out[key] = base64.b64decode(cipher[len(_SB_CIPHER):-1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return {"error": {"code": "bad_cipher", "message": f"无法解密 {key}"}}
    return {"receiver": out}


def _sb_parse_decrypt_response(self, body: dict):
    from orders.platforms.interface import DecryptedReceiver

    err = body.get("error")
    if err:
        raise self.error(err.get("code"), err.get("message"))
    r = body.get("receiver") or {}
    return DecryptedReceiver(**{_SB_FIELDS[k]: to_str(v) for k, v in r.items() if k in _SB_FIELDS})


SandboxAdapter.receiver_ciphertexts = _sb_receiver_ciphertexts
SandboxAdapter.build_decrypt_request = _sb_build_decrypt_request
SandboxAdapter.decrypt_answer = _sb_decrypt_answer
SandboxAdapter.parse_decrypt_response = _sb_parse_decrypt_response


__all__ = ["SandboxAdapter", "SandboxPlatform"]
