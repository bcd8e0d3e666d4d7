"""A fake Pinduoduo open platform on 127.0.0.1 (pytest-httpserver), for the sync tests.

It speaks the PDD protocol the real `PddAdapter` uses: ``POST /api/router`` with the common
parameters in the query string, the MD5 signature checked, ``pdd.order.number.list.increment.get``
answered from an in-memory list of orders filtered by the update-time window
(``start_updated_at``/``end_updated_at``, epoch seconds), paged by ``page``/``page_size`` with
``has_next``. Faults are scripted per call: HTTP 429 with Retry-After, 5xx, a slow answer (the
client's read timeout), PDD's error envelope.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from werkzeug.wrappers import Request, Response

from orders.platforms.interface import Credentials
from orders.platforms.pdd import PddAdapter, sign

UTC = timezone.utc
BEIJING = timezone(timedelta(hours=8))
NOW = datetime(2024, 1, 2, 7, 30, tzinfo=UTC)  # the platform's (and the adapter's) clock
START = NOW - timedelta(minutes=20)  # where the shops' first sync starts
SECRET = "pdd-secret"


def adapter() -> PddAdapter:
    return PddAdapter(Credentials(app_key="cid", app_secret=SECRET, access_token="tok"), now=lambda: NOW)


def pdd_order(n: int, *, updated: datetime | None = None, status: int = 1) -> dict:
    """One order as ``pdd.order.number.list.increment.get`` lists it (Beijing time strings)."""
    updated = updated or START + timedelta(minutes=1 + n)
    bj = updated.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "order_sn": f"240102-{n:015d}", "order_status": status, "refund_status": 1, "confirm_status": 1,
        "created_time": bj, "pay_time": bj, "updated_at": bj, "confirm_time": bj,
        "province": "广东省", "city": "深圳市", "town": "南山区",
        "receiver_name_mask": "张*", "receiver_address_mask": "科技园**路*号",
        "goods_amount": "59.90", "discount_amount": 0, "postage": "0.00", "pay_amount": 59.9,
        "item_list": [{"goods_count": 1, "goods_id": "3001", "goods_name": "折叠盆 大号", "goods_price": 59.9,
                       "outer_id": "FP-L", "sku_id": f"11002200{n % 3}"}],
        "open_address_id": f"oa-{n}",
    }


@dataclass
class FakePdd:
    orders: list[dict]
    faults: dict[int, tuple] = field(default_factory=dict)  # call number (1-based) → fault
    calls: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    gate: threading.Event | None = None  # when set up, the first list call waits for it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def window(self, start: int, end: int) -> list[dict]:
        def epoch(o):
            when = datetime.strptime(o["updated_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
            return int(when.timestamp())

        inside = (o for o in self.orders if start <= epoch(o) < end)
        return sorted(inside, key=lambda o: (o["updated_at"], o.get("order_sn", "")))

    def handler(self, request: Request) -> Response:
        params = {k: v for k, v in request.args.items()}
        with self.lock:
            self.calls.append(params)
            number = len(self.calls)
        if params.get("sign") != sign({k: v for k, v in params.items() if k != "sign"}, SECRET):
            self.bad_signatures += 1
            return _json({"error_response": {"error_code": 10016, "error_msg": "签名错误"}})
        if self.gate is not None and number == 1:
            self.gate.wait(30)
        fault = self.faults.get(number)
        if fault:
            kind = fault[0]
            if kind == "status":
                headers = {"Retry-After": str(fault[2])} if len(fault) > 2 else {}
                return Response("busy", status=fault[1], headers=headers)
            if kind == "slow":
                time.sleep(fault[1])
            if kind == "envelope":
                return _json({"error_response": {"error_code": fault[1], "error_msg": fault[2]}})
        page, size = int(params["page"]), int(params["page_size"])
        window = self.window(int(params["start_updated_at"]), int(params["end_updated_at"]))
        chunk = window[(page - 1) * size: page * size]
        return _json({"order_sn_increment_get_response": {
            "order_sn_list": chunk, "total_count": len(window), "has_next": page * size < len(window)}})

    def pages_asked(self) -> list[int]:
        return [int(c["page"]) for c in self.calls]


def _json(body: dict) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=200, content_type="application/json")
