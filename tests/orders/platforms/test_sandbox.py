import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orders.platforms.base import NormalizedLine, PlatformError
from orders.platforms.interface import PlatformAdapter, PlatformRequest
from orders.platforms.sandbox import REGIONS, SandboxAdapter, SandboxPlatform
from tests.orders.platforms.shared import shuffled, stringify_numbers, without_raw

UTC = timezone.utc
START = datetime(2024, 1, 2, tzinfo=UTC)
SKUS = ["SKU-1", "SKU-2", "SKU-3"]


def platform(**kwargs):
    return SandboxPlatform(**{"sku_ids": SKUS, "start": START, "seed": 7, **kwargs})


def sync(p, *, until, cursor=None, page_size=100):
    """What a sync job does: page until has_more is False; returns (payloads, cursor, pages)."""
    a = SandboxAdapter()
    cursor = a.initial_cursor(START) if cursor is None else cursor
    seen, pages = [], 0
    while True:
        page = a.parse_list_response(p.handle(a.build_list_request(cursor, page_size), now=until), cursor=cursor)
        seen += page.orders
        cursor, pages = page.next_cursor, pages + 1
        if not page.has_more:
            return seen, cursor, pages


def test_is_a_platform_adapter():
    assert isinstance(SandboxAdapter(), PlatformAdapter) and SandboxAdapter.code == "sandbox"


def test_stream_is_deterministic_and_depends_on_the_seed():
    day = START + timedelta(hours=3)
    assert sync(platform(), until=day)[0] == sync(platform(), until=day)[0]
    assert sync(platform(), until=day)[0] != sync(platform(seed=8), until=day)[0]


def test_first_order_of_seed_7_is_exactly_this():
    first = sync(platform(), until=START + timedelta(minutes=1))[0][0]
    o = SandboxAdapter().normalize(first)
    assert o.platform_order_id == "SBX20240102000000" and o.platform_status == "paid" and o.paid is True
    assert o.lines == [
        NormalizedLine(title="沙箱商品 SKU-2", quantity=2, unit_price=Decimal("199.00"), platform_sku_id="SKU-2",
                       sku_code="SKU-2", platform_line_id="SBX20240102000000-1"),
        NormalizedLine(title="沙箱商品 SKU-3", quantity=2, unit_price=Decimal("38.90"), platform_sku_id="SKU-3",
                       sku_code="SKU-3", platform_line_id="SBX20240102000000-2"),
    ]
    assert (o.goods_amount, o.discount_amount, o.shipping_fee, o.paid_amount) == (
        Decimal("475.80"), Decimal("10.00"), Decimal("0.00"), Decimal("465.80"))
    assert (o.receiver_name, o.receiver_phone, o.platform_buyer_id) == ("王涛", "13807000017", "sbx-u-00017")
    assert (o.province, o.city, o.district, o.address) == ("湖北省", "武汉市", "洪山区", "学府路 61 号 5 栋 1 单元 1401 室")
    assert o.placed_at == datetime(2024, 1, 2, 0, 0, 15, tzinfo=UTC)
    assert o.paid_at == o.platform_updated_at == datetime(2024, 1, 2, 0, 0, 41, tzinfo=UTC)
    assert o.buyer_note == "不要放快递柜"
    assert SandboxAdapter().status_transition(o.platform_status) == "pay"


def test_orders_arrive_steadily():
    changes, _cursor, _pages = sync(platform(), until=START + timedelta(hours=6))
    created = Counter()
    for c in changes:
        if c["version"] == 1:
            created[datetime.fromisoformat(c["created_at"]).astimezone(UTC).hour] += 1
    assert sorted(created) == list(range(6)) and all(115 <= n <= 125 for n in created.values())  # 120/h


def test_nothing_from_the_future_and_time_ordered():
    until = START + timedelta(hours=5)
    changes = sync(platform(), until=until)[0]
    times = [datetime.fromisoformat(c["updated_at"]) for c in changes]
    assert times == sorted(times) and max(times) <= until


@pytest.mark.parametrize("page_size", [1, 37, 200])
def test_paging_gives_each_change_once_whatever_the_page_size(page_size):
    until = START + timedelta(hours=2)
    small = sync(platform(), until=until, page_size=page_size)[0]
    assert small == sync(platform(), until=until, page_size=200)[0]
    keys = [(c["order_no"], c["version"]) for c in small]
    assert len(keys) == len(set(keys))


def test_resuming_from_the_cursor_later_loses_and_repeats_nothing():
    p = platform()
    early, cursor, _ = sync(p, until=START + timedelta(hours=1))
    late, cursor2, _ = sync(p, until=START + timedelta(hours=7), cursor=cursor)
    assert early + late == sync(platform(), until=START + timedelta(hours=7))[0]
    assert sync(p, until=START + timedelta(hours=7), cursor=cursor2)[0] == []  # nothing new: cursor stays
    assert sync(p, until=START + timedelta(hours=7), cursor=cursor2)[1] == cursor2


def test_a_day_of_orders_looks_real():
    changes = sync(platform(), until=START + timedelta(days=1))[0]
    latest = {}
    for c in changes:
        latest[c["order_no"]] = c  # time ordered: the last one is the current state
    orders = list(latest.values())
    statuses = Counter(o["status"] for o in orders)
    assert statuses["paid"] > 0.85 * len(orders)
    assert statuses["cancelled"] > 20 and statuses["closed"] > 20  # buyer cancellations and unpaid timeouts
    assert sum(1 for o in orders if o["refund"]) > 50
    assert sum(1 for o in orders if o["presale"]) > 50
    assert sum(1 for o in orders if any(i["gift"] for i in o["items"])) > 100
    paid_lines = Counter(sum(1 for i in o["items"] if not i["gift"]) for o in orders)
    assert set(paid_lines) == {1, 2, 3}
    assert {i["sku_id"] for o in orders for i in o["items"]} == set(SKUS)
    buyers = Counter(o["buyer"]["id"] for o in orders)
    assert sum(n for n in buyers.values() if n > 1) > 0.3 * len(orders)  # repeat customers
    regions = {(o["receiver"]["province"], o["receiver"]["city"], o["receiver"]["district"]) for o in orders}
    assert regions <= set(REGIONS)
    json.dumps(changes)  # storable as raw payloads


def test_every_order_normalizes_consistently():
    a = SandboxAdapter()
    for raw in sync(platform(), until=START + timedelta(hours=12))[0]:
        o = a.normalize(raw)
        assert o.paid_amount == o.goods_amount - o.discount_amount + o.shipping_fee
        assert (o.province, o.city, o.district) in REGIONS
        assert all(line.quantity >= 1 for line in o.lines) and 1 <= len(o.lines) <= 4
        assert o.placed_at.tzinfo == UTC and o.platform_updated_at >= o.placed_at
        transition = a.status_transition(o.platform_status, refund_status=(raw["refund"] or {}).get("status", ""))
        if raw["status"] == "pending_payment":
            assert (o.paid, transition) == (False, None)
        elif raw["status"] in ("cancelled", "closed"):
            assert o.cancelled is True and transition == "cancel"
        elif raw["refund"]:
            assert o.refund_requested is True and transition == "refund_requested"
        else:
            assert (o.paid, transition) == (True, "pay")
        if raw["presale"]:
            assert o.is_presale and o.promised_ship_at == o.placed_at + timedelta(days=7)


@pytest.mark.parametrize("variant", ["strings", "shuffled", "utc"])
def test_variants_give_the_same_order(variant):
    raw = sync(platform(), until=START + timedelta(minutes=5))[0][0]
    base = SandboxAdapter().normalize(raw)
    if variant == "strings":
        raw = stringify_numbers(raw)
    elif variant == "shuffled":
        raw = shuffled(raw)
    else:
        raw = {**raw, **{k: datetime.fromisoformat(raw[k]).astimezone(UTC).isoformat().replace("+00:00", "Z")
                         for k in ("created_at", "paid_at", "updated_at")}}
    assert without_raw(SandboxAdapter().normalize(raw)) == without_raw(base)


def test_titles_and_prices_can_be_given():
    p = SandboxPlatform(sku_ids={"TEA-1": ("龙井 250g", "88.00")}, start=START, seed=1)
    orders = sync(p, until=START + timedelta(hours=1))[0]
    assert {(i["title"], i["price"]) for o in orders for i in o["items"] if not i["gift"]} == {("龙井 250g", "88.00")}


def test_stock_push_is_recorded_by_the_platform():
    p, a = platform(), SandboxAdapter()
    assert p.handle(a.build_stock_push("SKU-1", 12), now=START) == {"ok": True}
    assert p.stock == {"SKU-1": 12}


def test_unknown_request_is_a_platform_error():
    body = platform().handle(PlatformRequest("GET", "/nope", {}), now=START)
    with pytest.raises(PlatformError):
        SandboxAdapter().parse_list_response(body)


def test_needs_skus_and_an_aware_start():
    with pytest.raises(ValueError):
        SandboxPlatform(sku_ids=[], start=START)
    with pytest.raises(ValueError):
        SandboxPlatform(sku_ids=SKUS, start=datetime(2024, 1, 2))


def test_keeps_the_adapter_contract():
    from tests.orders.platforms.test_shopify import check_contract

    for raw in sync(platform(), until=START + timedelta(minutes=30))[0]:
        check_contract(SandboxAdapter(), raw)


def test_a_sandbox_shop_describes_its_platform_in_its_credentials():
    from orders.platforms.interface import Credentials

    creds = Credentials(extra={"sku_ids": "SKU-1, SKU-2,SKU-3", "seed": "7", "orders_per_hour": "120"})
    p = SandboxPlatform.from_credentials(creds, start=START)
    until = START + timedelta(hours=1)
    assert sync(p, until=until)[0] == sync(platform(), until=until)[0]
    with pytest.raises(ValueError):
        SandboxPlatform.from_credentials(Credentials(), start=START)  # no SKUs: refused, not an empty stream
