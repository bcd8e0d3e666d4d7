"""bench/ingest.py — order ingestion throughput on PostgreSQL: raw payload → order allocated.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub .venv/bin/python bench/ingest.py \\
        [--orders 20000] [--per-order-orders 1000] [--page 0] [--repeat-share 0.3] [--skus 300] \\
        [--seed N] [--database NAME]

Uses its own database (`<dbname>_bench`, created and migrated if missing; its order and
inventory tables are emptied). Builds sandbox-platform payloads (the raw JSON of
orders/platforms/sandbox.py: 3 lines each, 30 % of orders from a buyer seen before, paid,
mapped SKUs in stock in three warehouses under two routing rules) and runs them through
`orders.ingest.ingest_payloads` — the path of `manage.py ingest` and of sync pages: the
shop's adapter normalizes each payload, the upsert stores it, the customer is matched (or
created) by phone and buyer id, and the paid orders are allocated (`order_allocate_bulk`).

A warm-up of `--warmup-orders` orders and an ANALYZE come first (untimed), so the planner
knows the order tables are not empty. Phases (each on payloads of its own, so each one creates every order it sees):
- **per order**: `ingest_payloads(bulk=False)`, every payload through `upsert_order` in its own
  transaction (the path before the bulk one), on `--per-order-orders` payloads;
- **bulk**: `ingest_payloads()` (the default), on `--orders` payloads: all in one call with
  `--page 0` (the ingest command), or one call per `--page` payloads (sync pages).
- **re-run**: the bulk phase's payloads again: every one is unchanged.

Prints orders/s (wall), CPU seconds of this process, the peak resident memory of the process
(`ru_maxrss`) and the peak Python heap of each phase (tracemalloc on a `--heap-orders`
sample, since tracing slows the run), and checks the outcome (orders, customers, lines,
events, reservations, the inventory audit). Last line: the summary.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCRIPT = "bench/ingest.py"
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 11, 0, 0, tzinfo=CST)
LINES = 3
PLACES = [("江苏省", "苏州市", "姑苏区"), ("浙江省", "杭州市", "西湖区"), ("上海市", "上海市", "浦东新区"),
          ("北京市", "北京市", "朝阳区"), ("天津市", "天津市", "和平区"), ("广东省", "深圳市", "南山区"),
          ("四川省", "成都市", "武侯区"), ("湖北省", "武汉市", "洪山区")]
SURNAMES = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗"


def make_payloads(prefix: str, count: int, *, skus: int, repeat_share: float, seed: int, first_buyer: int) -> tuple[list, int]:
    """`count` sandbox orders; returns (payloads, distinct buyers)."""
    rnd = random.Random(f"{seed}:{prefix}")
    buyers: list[int] = []
    out = []
    for i in range(count):
        if buyers and rnd.random() < repeat_share:
            b = rnd.choice(buyers)
        else:
            b = first_buyer + len(buyers)
            buyers.append(b)
        province, city, district = PLACES[b % len(PLACES)]
        placed = T0 + timedelta(seconds=i * 3)
        no = f"{prefix}{i:07d}"
        chosen = rnd.sample(range(skus), LINES)
        out.append({
            "order_no": no, "version": 1, "status": "paid", "refund": None,
            "created_at": placed.isoformat(), "paid_at": (placed + timedelta(seconds=40)).isoformat(),
            "updated_at": (placed + timedelta(seconds=40)).isoformat(),
            "buyer": {"id": f"bench-u-{b}", "nick": f"{SURNAMES[b % len(SURNAMES)]}买家{b}"},
            "receiver": {"name": f"{SURNAMES[b % len(SURNAMES)]}先生", "phone": f"139{b:08d}", "province": province,
                         "city": city, "district": district, "detail": f"人民路 {b % 300 + 1} 号 {b % 20 + 1} 栋"},
            "items": [{"line_id": f"{no}-{k}", "sku_id": f"BENCH-{s:04d}", "title": f"压测商品 {s}",
                       "quantity": 1 + (s + i) % 3, "price": f"{9 + s % 90}.90", "gift": False}
                      for k, s in enumerate(chosen, start=1)],
            "shipping_fee": "0.00", "discount": "0.00", "total": "199.00", "presale": None, "buyer_memo": "",
        })
    return out, len(buyers)


def wipe() -> None:
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for label in ("orders", "inventory", "aftersales", "finance")
              if label in {a.label for a in apps.get_app_configs()}
              for m in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")


def build_world(skus: int, demand: int):
    from inventory.models import RoutingRule, Sku, StockLevel, StockMove, Warehouse
    from orders.models import Platform, Shop

    whs = [Warehouse.objects.create(code=c, name=n, province=p, city=ci, region=r, priority=pr)
           for c, n, p, ci, r, pr in [("bench-suzhou", "苏州仓(压测)", "江苏", "苏州", "华东", 10),
                                      ("bench-tianjin", "天津仓(压测)", "天津", "天津", "华北", 20),
                                      ("bench-shenzhen", "深圳仓(压测)", "广东", "深圳", "华南", 30)]]
    RoutingRule.objects.create(name="江浙沪 → 苏州", position=10, warehouse=whs[0],
                               conditions={"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]})
    RoutingRule.objects.create(name="华北 → 天津", position=20, warehouse=whs[1],
                               conditions={"field": "region", "op": "eq", "value": "华北"})
    rows = Sku.objects.bulk_create([Sku(code=f"BENCH-{s:04d}", name=f"压测商品 {s}") for s in range(skus)])
    on_hand = max(100, demand)  # plenty: every order is allocated
    levels = StockLevel.objects.bulk_create([StockLevel(warehouse=w, sku=s, on_hand=on_hand) for w in whs for s in rows])
    StockMove.objects.bulk_create([StockMove(stock_level=lvl, kind="receipt", on_hand_delta=on_hand, reserved_delta=0,
                                             on_hand_after=on_hand, reserved_after=0) for lvl in levels])
    return Shop.objects.create(code="bench-sbx", name="压测沙箱店", platform=Platform.SANDBOX)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def phase(label: str, shop, payloads: list, *, bulk: bool, page: int, heap: bool = False):
    from orders.ingest import ingest_payloads, platform_actor

    actor = platform_actor(shop)
    chunks = [payloads] if page <= 0 else [payloads[i:i + page] for i in range(0, len(payloads), page)]
    if heap:
        tracemalloc.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    totals = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    for chunk in chunks:
        report = ingest_payloads(shop=shop, payloads=chunk, actor=actor, bulk=bulk)
        for key in totals:
            totals[key] += getattr(report, key)
        if report.failures:
            print(f"  {label}: failures {report.failures[:3]}", flush=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = None
    if heap:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    rate = len(payloads) / wall if wall else 0.0
    summary = " ".join(f"{k}={v}" for k, v in totals.items())
    print(f"{label:<28} {len(payloads):>6} payloads  {wall:7.2f} s  {rate:8.1f} orders/s  "
          f"cpu {cpu:6.2f} s  {summary}" + (f"  heap peak {peak:.1f} MiB" if peak is not None else "")
          + f"  maxrss {maxrss_mb():.0f} MiB", flush=True)
    return rate, totals, peak


def check(shop, prefix: str, orders: int, buyers: int) -> list[str]:
    from inventory.audit import audit
    from inventory.models import Reservation
    from orders.models import Customer, Order, OrderEvent, OrderLine

    problems = []
    qs = Order.objects.filter(shop=shop, platform_order_id__startswith=prefix)
    counts = {
        "orders": qs.count(), "allocated": qs.filter(status="allocated").count(),
        "lines": OrderLine.objects.filter(order__in=qs).count(),
        "reservations": Reservation.objects.filter(order_line__order__in=qs, status="active").count(),
        "events": OrderEvent.objects.filter(order__in=qs).count(),
        "customers": Customer.objects.filter(orders__in=qs).distinct().count(),
    }
    want = {"orders": orders, "allocated": orders, "lines": orders * LINES, "reservations": orders * LINES,
            "events": orders * 3, "customers": buyers}
    for key, value in want.items():
        if counts[key] != value:
            problems.append(f"{prefix}: {key} {counts[key]} ≠ {value}")
    problems += [f"audit: {p}" for p in audit()]
    print(f"  check {prefix}: " + ", ".join(f"{k}={v}" for k, v in counts.items())
          + (" — OK" if not problems else " — " + "; ".join(problems)), flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000, help="payloads of the bulk phase")
    parser.add_argument("--per-order-orders", type=int, default=1_000, help="payloads of the per-order phase (0: skip)")
    parser.add_argument("--heap-orders", type=int, default=500, help="payloads of the traced heap sample (0: skip)")
    parser.add_argument("--warmup-orders", type=int, default=1_000, help="orders ingested before the timed phases")
    parser.add_argument("--page", type=int, default=0, help="payloads per ingest_payloads call (0: all in one)")
    parser.add_argument("--repeat-share", type=float, default=0.3, help="share of orders from a buyer seen before")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--database", default=None, help="bench database name (default: <dbname>_bench)")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.skus < LINES or not 0 <= args.repeat_share < 1:
        raise _common.BenchError(SCRIPT, f"--orders ≥ 1, --skus ≥ {LINES}, 0 ≤ --repeat-share < 1")

    base_url = _common.require_postgres_url(SCRIPT)
    name = args.database or f"{_common.database_name(base_url) or 'orderhub'}_bench"
    if name in {_common.database_name(base_url), "postgres", "template0", "template1"}:
        raise _common.BenchError(SCRIPT, f"refusing to wipe database {name!r}: the bench needs a database of its own")
    url = _common.with_database(base_url, name)
    created = _common.ensure_database(url, SCRIPT)
    _common.setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise _common.BenchError(SCRIPT, f"needs PostgreSQL, got {connection.vendor}")
    print(f"database: {name}" + (" (created)" if created else "")
          + f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    call_command("migrate", verbosity=0, interactive=False)
    wipe()

    total = args.orders + args.per_order_orders + args.heap_orders * 2 + args.warmup_orders
    shop = build_world(args.skus, demand=total * LINES * 3 // args.skus + 10)
    sets = {}
    first = 0
    for prefix, count in (("P", args.per_order_orders), ("B", args.orders), ("HP", args.heap_orders),
                          ("HB", args.heap_orders)):
        if count:
            sets[prefix] = make_payloads(prefix, count, skus=args.skus, repeat_share=args.repeat_share,
                                         seed=args.seed, first_buyer=first)
            first += sets[prefix][1]  # buyers of one set never reappear in another
    # A warm-up (not timed) so the planner has statistics of non-empty order tables, as any
    # live database has: PostgreSQL caches the foreign-key checks' plans per connection, and a
    # plan made on empty tables scans them in full on every check (with autovacuum off, as on
    # some test servers, nothing ever replans it).
    warm, _n = make_payloads("W", args.warmup_orders, skus=args.skus, repeat_share=args.repeat_share,
                             seed=args.seed, first_buyer=first)
    if warm:
        from orders.ingest import ingest_payloads, platform_actor

        ingest_payloads(shop=shop, payloads=warm, actor=platform_actor(shop))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
    connection.close()  # new session: no plan cached from the empty tables
    print(f"warm-up: {len(warm)} orders ingested and ANALYZE (autovacuum {autovacuum})", flush=True)
    print(f"setup: {args.skus} SKUs × 3 warehouses, {LINES} lines per order, "
          f"{args.repeat_share:.0%} repeat buyers; maxrss {maxrss_mb():.0f} MiB", flush=True)

    problems: list[str] = []
    before = after = 0.0
    if args.per_order_orders:
        before, _t, _p = phase("per order (before)", shop, sets["P"][0], bulk=False, page=args.page)
        problems += check(shop, "P", args.per_order_orders, sets["P"][1])
    after, totals, _p = phase("bulk (after)", shop, sets["B"][0], bulk=True, page=args.page)
    problems += check(shop, "B", args.orders, sets["B"][1])
    rerun, again, _p = phase("bulk re-run (all unchanged)", shop, sets["B"][0], bulk=True, page=args.page)
    if again["unchanged"] != args.orders:
        problems.append(f"re-run: {again}")
    heap_before = heap_after = None
    if args.heap_orders:
        _r, _t, heap_before = phase("per order, heap traced", shop, sets["HP"][0], bulk=False, page=args.page, heap=True)
        _r, _t, heap_after = phase("bulk, heap traced", shop, sets["HB"][0], bulk=True, page=args.page, heap=True)
    goal = "meets" if after >= 500 else "misses"
    print(f"summary: bulk {after:.0f} orders/s ({goal} the 500/s goal), per order {before:.0f} orders/s "
          f"(×{after / before:.1f})" if before else f"summary: bulk {after:.0f} orders/s ({goal} the 500/s goal)",
          end="")
    print(f"; re-run {rerun:.0f}/s; peak RSS {maxrss_mb():.0f} MiB"
          + (f"; heap peak per {args.heap_orders} orders: per order {heap_before:.1f} MiB, bulk {heap_after:.1f} MiB"
             if heap_after is not None else "")
          + ("; checks OK" if not problems else f"; {len(problems)} check(s) FAILED"), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
