"""Allocation throughput on PostgreSQL: `orders.services.order_allocate` against raw SQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub .venv/bin/python bench/allocate.py \
        [--orders 10000 --workers 4 --skus 1000 --warehouses 6]

Uses its own database (`<dbname>_bench`, created and migrated if missing) and wipes it
first. Builds two identical data sets (same warehouses, routing rules, SKUs, stock and
orders): one allocated through the service by worker processes, one through plain SQL
transactions doing the same row-locked reservation. Prints throughput, latency, the
ratio between the two, an oversell check and the inventory audit; the last line is a
one-line summary. See bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (also puts the repository root on sys.path)

SCRIPT = "allocate"

WAREHOUSES = [  # code, name, province, city, region, priority
    ("bench-suzhou", "苏州仓(压测)", "江苏", "苏州", "华东", 10),
    ("bench-tianjin", "天津仓(压测)", "天津", "天津", "华北", 20),
    ("bench-shenzhen", "深圳仓(压测)", "广东", "深圳", "华南", 30),
    ("bench-wuhan", "武汉仓(压测)", "湖北", "武汉", "华中", 40),
    ("bench-chengdu", "成都仓(压测)", "四川", "成都", "西南", 50),
    ("bench-ningbo", "宁波保税仓(压测)", "浙江", "宁波", "华东", 60),
]
RULES = [  # name, conditions (the routing condition language), warehouse code
    ("江浙沪 → 苏州", {"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]}, "bench-suzhou"),
    ("华北 → 天津", {"field": "region", "op": "eq", "value": "华北"}, "bench-tianjin"),
    ("华南 → 深圳", {"field": "region", "op": "eq", "value": "华南"}, "bench-shenzhen"),
]
PROVINCES = ["江苏省", "浙江省", "上海市", "北京市", "天津市", "河北省", "广东省", "广西壮族自治区",
             "四川省", "湖北省", "山东省", "福建省", "陕西省", "辽宁省"]
CATEGORIES = ["日用", "厨具", "收纳", "折叠盆", "清洁", "文具"]
SHOPS = [("bench-taobao", "taobao"), ("bench-jd", "jd"), ("bench-pdd", "pdd")]
SHORT_SKU_SHARE = 0.08  # this share of SKUs gets less stock than its demand: their orders go on hold
LINES_PER_ORDER = 3


# --- the data shape (plain Python, generated once, built twice) --------------------------
@dataclass
class Spec:
    skus: int
    warehouses: int
    orders: list[tuple[int, int, list[tuple[int, int]]]] = field(default_factory=list)  # (province idx, shop idx, [(sku idx, qty)])
    stock: dict[tuple[int, int], int] = field(default_factory=dict)  # (warehouse idx, sku idx) → on hand


def make_spec(*, orders: int, skus: int, warehouses: int, seed: int) -> Spec:
    """Orders with three distinct SKUs each, popular SKUs more often; stock sized from demand."""
    rng = random.Random(seed)
    spec = Spec(skus=skus, warehouses=warehouses)
    weights = [1 / (i + 5) ** 0.8 for i in range(skus)]
    rng.shuffle(weights)
    demand: Counter[int] = Counter()
    for _ in range(orders):
        picked: list[int] = []
        while len(picked) < min(LINES_PER_ORDER, skus):
            for s in rng.choices(range(skus), weights=weights, k=LINES_PER_ORDER):
                if s not in picked and len(picked) < LINES_PER_ORDER:
                    picked.append(s)
        lines = [(s, rng.choices([1, 2, 3], weights=[70, 20, 10])[0]) for s in picked]
        for s, q in lines:
            demand[s] += q
        spec.orders.append((rng.randrange(len(PROVINCES)), rng.randrange(len(SHOPS)), lines))
    for s in range(skus):
        want = demand[s]
        total = max(1, int(want * 0.6)) if rng.random() < SHORT_SKU_SHARE else math.ceil(want * 1.25) + 2
        homes = rng.sample(range(warehouses), k=min(3, warehouses))
        shares = [rng.random() + 0.2 for _ in homes]
        left = total
        for i, w in enumerate(homes):
            q = left if i == len(homes) - 1 else int(total * shares[i] / sum(shares))
            q = min(q, left)
            left -= q
            if q > 0:
                spec.stock[(w, s)] = q
    return spec


def warehouse_rows(n: int) -> list[tuple]:
    rows = []
    for i in range(n):
        code, name, province, city, region, priority = WAREHOUSES[i % len(WAREHOUSES)]
        if i >= len(WAREHOUSES):
            code, name, priority = f"{code}-{i}", f"{name}{i}", priority + 100 * (i // len(WAREHOUSES))
        rows.append((code, name, province, city, region, priority))
    return rows


# --- setup (not timed) -------------------------------------------------------------------
def wipe() -> None:
    """Empty every table of the apps that hold bench data (this is the bench's own database)."""
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for label in ("orders", "inventory", "aftersales", "finance")
              if label in {a.label for a in apps.get_app_configs()}
              for m in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")


def build_static(spec: Spec) -> dict:
    from config.actors import Actor
    from inventory.models import RoutingRule, Warehouse
    from orders.models import Shop

    warehouses = [
        Warehouse.objects.create(code=code, name=name, province=province, city=city, region=region, priority=priority)
        for code, name, province, city, region, priority in warehouse_rows(spec.warehouses)
    ]
    by_code = {w.code: w for w in warehouses}
    for position, (name, cond, code) in enumerate(RULES, start=1):
        if code in by_code:
            rule = RoutingRule(name=name, position=position * 10, conditions=cond, warehouse=by_code[code])
            rule.full_clean()
            rule.save()
    shops = [Shop.objects.create(code=code, name=f"压测 {code}", platform=platform) for code, platform in SHOPS]
    return {"warehouses": warehouses, "shops": shops, "actor": Actor.system("bench")}


def build_set(spec: Spec, static: dict, prefix: str) -> list[int]:
    """One copy of the data: SKUs, stocked pools, paid orders. Returns the order ids, in order.

    Bench-only shortcuts, both keeping every invariant the audit checks:
    - stock is written with bulk_create as pools plus one matching `receipt` ledger row
      each (what `stock_receive` writes, without 6,000 round trips);
    - orders are bulk-created already `paid` (status passed to the constructor, which
      the protected FSMField allows once), with their lines and the `created` and `paid`
      timeline events that `order_create` + `order_pay` would have written.
    """
    from django.db import transaction
    from django.utils import timezone

    from inventory.models import Sku, StockLevel, StockMove
    from orders.models import Order, OrderEvent, OrderLine

    actor = static["actor"]
    warehouses = static["warehouses"]
    now = timezone.now()
    with transaction.atomic():
        skus = Sku.objects.bulk_create([
            Sku(code=f"{prefix}-SKU-{i:05d}", name=f"压测商品 {prefix}{i}", category=CATEGORIES[i % len(CATEGORIES)])
            for i in range(spec.skus)
        ], batch_size=2000)
        pools = StockLevel.objects.bulk_create([
            StockLevel(warehouse=warehouses[w], sku=skus[s], on_hand=q) for (w, s), q in sorted(spec.stock.items())
        ], batch_size=2000)
        StockMove.objects.bulk_create([
            StockMove(stock_level=p, kind=StockMove.Kind.RECEIPT, on_hand_delta=p.on_hand, reserved_delta=0,
                      on_hand_after=p.on_hand, reserved_after=0, reason="压测入库", actor_label=actor.label,
                      source=actor.source)
            for p in pools
        ], batch_size=2000)
    ids: list[int] = []
    chunk = 2000
    for start in range(0, len(spec.orders), chunk):
        with transaction.atomic():
            batch = spec.orders[start:start + chunk]
            orders = []
            for n, (prov, shop, lines) in enumerate(batch, start=start):
                amount = Decimal(sum(q for _, q in lines) * 10)
                shop_obj = static["shops"][shop]
                orders.append(Order(
                    number=f"{prefix}{n:010d}", shop=shop_obj, platform_order_id=f"{prefix}-{n}",
                    status="paid",  # bench setup only: the services never set a status this way
                    platform_status="WAIT_SELLER_SEND_GOODS", goods_amount=amount, paid_amount=amount,
                    receiver_name="压测", receiver_phone="13800138000", province=PROVINCES[prov], city="某市",
                    district="某区", address="压测路 1 号", placed_at=now, paid_at=now,
                    promised_ship_at=now + timedelta(hours=shop_obj.ship_within_hours),
                ))
            Order.objects.bulk_create(orders)
            OrderLine.objects.bulk_create([
                OrderLine(order=o, sku=skus[s], platform_sku_id=f"P{s}", title=skus[s].name, quantity=q,
                          unit_price=Decimal("10.00"))
                for o, (_, _, lines) in zip(orders, batch) for s, q in lines
            ])
            events = []
            for o in orders:
                common = {"order": o, "actor_label": actor.label, "source": actor.source, "occurred_at": now}
                events.append(OrderEvent(kind="created", to_status="pending_payment", is_public=True,
                                         message=f"订单创建({o.shop.name} {o.platform_order_id})", **common))
                events.append(OrderEvent(kind="paid", from_status="pending_payment", to_status="paid",
                                         is_public=True, message="已付款", **common))
            OrderEvent.objects.bulk_create(events)
            ids.extend(o.pk for o in orders)
    return ids


def analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --- the two allocation paths --------------------------------------------------------------
def allocate_with_service(order_id: int, actor) -> str:
    from orders.models import Order
    from orders.services import order_allocate

    # The service re-reads and locks the order by pk; a caller holding just the id (a task,
    # an API view) would pass the same.
    return order_allocate(order=Order(pk=order_id), actor=actor).status


@dataclass
class RawContext:
    by_priority: list[int]  # allocatable warehouse ids, priority order
    codes: dict[int, str]
    names: dict[int, str]
    rule_wid: dict[str, int | None]  # province → warehouse of the first matching rule


RAW_SQL = {
    "order": "SELECT number, status, province FROM orders_order WHERE id = %s FOR UPDATE",
    "lines": "SELECT id, sku_id, quantity FROM orders_orderline WHERE order_id = %s ORDER BY id",
    "pools": ("SELECT id, warehouse_id, sku_id, on_hand, reserved FROM inventory_stocklevel "
              "WHERE sku_id = ANY(%s) AND warehouse_id = ANY(%s) ORDER BY id FOR UPDATE"),
    "reserve": ("UPDATE inventory_stocklevel SET reserved = reserved + %s "
                "WHERE id = %s AND on_hand - reserved >= %s"),
    "order_status": ("UPDATE orders_order SET status = %s, hold_reason = %s, hold_note = %s, updated_at = now() "
                     "WHERE id = %s AND status = 'paid'"),
    "event": ("INSERT INTO orders_orderevent (order_id, kind, from_status, to_status, message, actor_label, source, "
              "is_public, data, occurred_at) VALUES (%s, %s, 'paid', %s, %s, 'bench-raw', 'job', %s, %s, now())"),
}


def raw_plan(lines, rule_wid, available, by_priority):
    """The same choice `allocate_order` makes (rule warehouse, then one warehouse for the
    rest, then per line whole, then split), or None when some line cannot be covered."""
    plan, chosen = [], []

    def take(line, wid, qty):
        available[(wid, line[1])] -= qty
        plan.append((line, wid, qty))
        if wid not in chosen:
            chosen.append(wid)

    pending = []
    for line in lines:
        if rule_wid is not None and available.get((rule_wid, line[1]), 0) >= line[2]:
            take(line, rule_wid, line[2])
        else:
            pending.append(line)
    if pending:
        need = defaultdict(int)
        for _, sku, qty in pending:
            need[sku] += qty
        candidates = chosen + [w for w in by_priority if w not in chosen]
        single = next((w for w in candidates if all(available.get((w, s), 0) >= q for s, q in need.items())), None)
        for line in pending:
            if single is not None:
                take(line, single, line[2])
                continue
            prefs = [rule_wid] if rule_wid is not None else []
            prefs += [w for w in chosen if w not in prefs]
            prefs += [w for w in by_priority if w not in prefs]
            whole = next((w for w in prefs if available.get((w, line[1]), 0) >= line[2]), None)
            if whole is not None:
                take(line, whole, line[2])
                continue
            remaining, parts = line[2], []
            for w in prefs:
                have = available.get((w, line[1]), 0)
                if have > 0 and remaining > 0:
                    parts.append((w, min(have, remaining)))
                    remaining -= parts[-1][1]
            if remaining:
                return None, chosen
            for w, q in parts:
                take(line, w, q)
    return plan, chosen


def allocate_with_sql(conn, order_id: int, ctx: RawContext) -> str:
    """One allocation as plain SQL in one transaction, writing the rows the service writes:
    pools (guarded UPDATE under row locks), reservations, ledger moves, order status, event."""
    from psycopg.types.json import Jsonb

    with conn.transaction(), conn.cursor() as cur:
        number, status, province = cur.execute(RAW_SQL["order"], (order_id,)).fetchone()
        if status != "paid":
            raise RuntimeError(f"order {number} is {status}")
        lines = cur.execute(RAW_SQL["lines"], (order_id,)).fetchall()
        pools = {(w, s): [pid, on_hand, reserved] for pid, w, s, on_hand, reserved in
                 cur.execute(RAW_SQL["pools"], ([s for _, s, _ in lines], ctx.by_priority)).fetchall()}
        available = {key: p[1] - p[2] for key, p in pools.items()}
        plan, chosen = raw_plan(lines, ctx.rule_wid.get(province), available, ctx.by_priority)
        if plan is None:
            cur.execute(RAW_SQL["order_status"], ("on_hold", "stock_short", "库存不足", order_id))
            cur.execute(RAW_SQL["event"], (order_id, "held", "on_hold", "挂起: 库存不足", False, Jsonb({"reason": "stock_short"})))
            return "on_hold"
        per_pool = defaultdict(int)
        for (_, sku, _), wid, qty in plan:
            per_pool[pools[(wid, sku)][0]] += qty
        for pool_id in sorted(per_pool):
            cur.execute(RAW_SQL["reserve"], (per_pool[pool_id], pool_id, per_pool[pool_id]))
            if cur.rowcount != 1:
                raise RuntimeError(f"pool {pool_id} short under lock")
        values = [(line_id, pools[(wid, sku)][0], qty) for (line_id, sku, _), wid, qty in plan]
        cur.execute(
            "INSERT INTO inventory_reservation (order_line_id, stock_level_id, quantity, status, created_at, close_reason) "
            "VALUES " + ", ".join(["(%s, %s, %s, 'active', now(), '')"] * len(values)) + " RETURNING id",
            [v for row in values for v in row],
        )
        reservation_ids = [r[0] for r in cur.fetchall()]
        moves = []
        for ((_, sku, _), wid, qty), reservation_id in zip(plan, reservation_ids):
            pool = pools[(wid, sku)]
            pool[2] += qty  # reserved after this move, as the service's ledger row records it
            moves += [pool[0], qty, pool[1], pool[2], reservation_id, order_id, f"订单 {number} 预占"]
        cur.execute(
            "INSERT INTO inventory_stockmove (stock_level_id, kind, on_hand_delta, reserved_delta, on_hand_after, "
            "reserved_after, reservation_id, order_id, reason, actor_label, source, created_at) VALUES "
            + ", ".join(["(%s, 'reserve', 0, %s, %s, %s, %s, %s, %s, 'bench-raw', 'job', now())"] * len(values)),
            moves,
        )
        cur.execute(RAW_SQL["order_status"], ("allocated", "", "", order_id))
        names = "、".join(ctx.names[w] for w in chosen)
        cur.execute(RAW_SQL["event"], (order_id, "allocated", "allocated", f"分配至 {names}", True,
                                       Jsonb({"warehouses": [ctx.codes[w] for w in chosen]})))
        return "allocated"


def worker(kind: str, url: str, order_ids: list[int], raw_ctx: RawContext | None, barrier, results) -> None:
    """One process: connect, wait for the others, allocate its share, report latencies."""
    try:
        if kind == "django":
            _common.setup_django(url)
            from django.db import connection

            from config.actors import Actor, Source

            actor = Actor.system("bench", source=Source.JOB)
            connection.ensure_connection()

            def one(order_id: int) -> str:
                return allocate_with_service(order_id, actor)
        else:
            import psycopg

            conn = psycopg.connect(url)

            def one(order_id: int) -> str:
                return allocate_with_sql(conn, order_id, raw_ctx)

        barrier.wait(timeout=120)
        latencies, outcomes, errors = [], Counter(), []
        started, cpu_started = time.monotonic(), time.process_time()
        for order_id in order_ids:
            t0 = time.perf_counter()
            try:
                outcomes[one(order_id)] += 1
            except Exception as exc:  # noqa: BLE001 - counted and shown; must stay 0
                errors.append(f"order {order_id}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            latencies.append(time.perf_counter() - t0)
        finished, cpu = time.monotonic(), time.process_time() - cpu_started
        results.put({"latencies": latencies, "outcomes": dict(outcomes), "errors": errors,
                     "started": started, "finished": finished, "cpu": cpu})
    except BaseException as exc:  # noqa: BLE001
        results.put({"fatal": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        if kind == "django":
            from django.db import connection

            connection.close()
        elif "conn" in locals():
            conn.close()


@dataclass
class RunStats:
    orders: int
    seconds: float
    latencies: list[float]
    outcomes: Counter
    errors: list[str]
    cpu: float  # client-side (Python) CPU seconds, all workers together

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def ms(self, pct: float) -> float:
        return _common.percentile(self.latencies, pct) * 1000


def run(kind: str, url: str, order_ids: list[int], workers: int, raw_ctx: RawContext | None = None) -> RunStats:
    ctx = mp.get_context("spawn")  # each worker sets Django up itself, with its own connection
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    # Interleaved shares: the workers walk the same orders side by side and meet on hot SKUs.
    procs = [ctx.Process(target=worker, args=(kind, url, order_ids[w::workers], raw_ctx, barrier, results))
             for w in range(workers)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    fatal = [r["fatal"] for r in reports if "fatal" in r]
    if fatal:
        raise _common.BenchError(SCRIPT, f"{kind} worker failed: {fatal[0]}")
    outcomes = Counter()
    for r in reports:
        outcomes.update(r["outcomes"])
    return RunStats(
        orders=len(order_ids),
        seconds=max(r["finished"] for r in reports) - min(r["started"] for r in reports),
        latencies=sorted(x for r in reports for x in r["latencies"]),
        outcomes=outcomes,
        errors=[e for r in reports for e in r["errors"]],
        cpu=sum(r["cpu"] for r in reports),
    )


# --- checks ---------------------------------------------------------------------------------
def oversold_pools() -> int:
    """Pools with reserved outside 0..on_hand, or active reservations beyond on-hand stock."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(*) FROM inventory_stocklevel s
            LEFT JOIN (SELECT stock_level_id, sum(quantity) AS q FROM inventory_reservation
                       WHERE status = 'active' GROUP BY stock_level_id) r ON r.stock_level_id = s.id
            WHERE s.reserved < 0 OR s.reserved > s.on_hand OR coalesce(r.q, 0) > s.on_hand
        """)
        return cursor.fetchone()[0]


def order_states(prefix: str) -> tuple[Counter, int]:
    """Orders of one set by status, and how many are inconsistent: allocated with a line not
    fully reserved, or not allocated but still holding a reservation."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            WITH per_line AS (
                SELECT l.order_id, l.quantity,
                       coalesce(sum(r.quantity) FILTER (WHERE r.status = 'active'), 0) AS reserved
                FROM orders_orderline l
                JOIN orders_order o ON o.id = l.order_id
                LEFT JOIN inventory_reservation r ON r.order_line_id = l.id
                WHERE o.number LIKE %s
                GROUP BY l.id
            ), per_order AS (
                SELECT order_id, bool_or(reserved <> quantity) AS partial, bool_or(reserved > 0) AS holding
                FROM per_line GROUP BY order_id
            )
            SELECT o.status, count(*),
                   count(*) FILTER (WHERE (o.status = 'allocated' AND p.partial)
                                       OR (o.status <> 'allocated' AND p.holding))
            FROM orders_order o LEFT JOIN per_order p ON p.order_id = o.id
            WHERE o.number LIKE %s GROUP BY o.status
        """, [f"{prefix}%", f"{prefix}%"])
        rows = cursor.fetchall()
    return Counter({status: n for status, n, _ in rows}), sum(bad for _, _, bad in rows)


def count_queries_of_one_allocation(order_id: int, actor) -> tuple[int, str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        status = allocate_with_service(order_id, actor)
    return len(ctx.captured_queries), status


# --- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skus", type=int, default=1_000)
    parser.add_argument("--warehouses", type=int, default=6)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--database", default=None, help="bench database name (default: <dbname>_bench)")
    args = parser.parse_args(argv)
    if min(args.orders, args.workers, args.skus, args.warehouses) < 1 or args.skus < LINES_PER_ORDER:
        raise _common.BenchError(SCRIPT, f"--orders/--workers/--warehouses must be ≥ 1 and --skus ≥ {LINES_PER_ORDER}")

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
    t0 = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    wipe()

    from inventory import conditions
    from inventory.audit import audit
    from inventory.models import RoutingRule, Warehouse

    # One spec, built twice: one set for the service, one for raw SQL. Order 0 of each set is
    # the probe (allocated untimed); the timed sets are the --orders that follow it.
    spec = make_spec(orders=args.orders + 1, skus=args.skus, warehouses=args.warehouses, seed=args.seed)
    static = build_static(spec)
    django_ids = build_set(spec, static, "BD")
    raw_ids = build_set(spec, static, "BR")
    analyze(url)
    units = sum(spec.stock.values())
    wanted = sum(q for _, _, lines in spec.orders for _, q in lines)
    print(f"setup: {args.warehouses} warehouses, {RoutingRule.objects.count()} routing rules, "
          f"2 × {args.skus} SKUs, 2 × {len(spec.stock)} pools ({units} units for {wanted} wanted), "
          f"2 × {len(spec.orders)} paid orders of {LINES_PER_ORDER} lines in {time.monotonic() - t0:.1f} s", flush=True)

    actor = static["actor"]
    queries, probe_status = count_queries_of_one_allocation(django_ids[0], actor)
    print(f"profile: one order_allocate ({LINES_PER_ORDER} lines, {probe_status}) = {queries} queries", flush=True)

    warehouses = list(Warehouse.objects.filter(is_active=True, allocatable=True, country="CN").order_by("priority", "id"))
    rules = list(RoutingRule.objects.filter(is_active=True).select_related("warehouse").order_by("position", "id"))
    rule_wid = {}
    for province in PROVINCES:
        ctx = {"province": province, "region": conditions.region_of(province)}
        rule_wid[province] = next((r.warehouse_id for r in rules if conditions.evaluate(r.conditions, ctx)), None)
    raw_ctx = RawContext(by_priority=[w.id for w in warehouses], codes={w.id: w.code for w in warehouses},
                         names={w.id: w.name for w in warehouses}, rule_wid=rule_wid)
    import psycopg

    with psycopg.connect(url) as conn:
        allocate_with_sql(conn, raw_ids[0], raw_ctx)
    connection.close()  # the workers bring their own connections

    dj = run("django", url, django_ids[1:], args.workers)
    print(f"django: {dj.orders} orders, {args.workers} workers in {dj.seconds:.1f} s: {dj.per_second:.0f} allocations/s, "
          f"p50 {dj.ms(50):.1f} ms, p95 {dj.ms(95):.1f} ms, p99 {dj.ms(99):.1f} ms; "
          f"allocated {dj.outcomes['allocated']}, on_hold {dj.outcomes['on_hold']}, errors {len(dj.errors)}; "
          f"client CPU {dj.cpu / dj.orders * 1000:.1f} ms/allocation", flush=True)
    raw = run("raw", url, raw_ids[1:], args.workers, raw_ctx)
    print(f"raw:    {raw.orders} orders, {args.workers} workers in {raw.seconds:.1f} s: {raw.per_second:.0f} allocations/s, "
          f"p50 {raw.ms(50):.1f} ms, p95 {raw.ms(95):.1f} ms, p99 {raw.ms(99):.1f} ms; "
          f"allocated {raw.outcomes['allocated']}, on_hold {raw.outcomes['on_hold']}, errors {len(raw.errors)}; "
          f"client CPU {raw.cpu / raw.orders * 1000:.1f} ms/allocation", flush=True)
    for label, stats in (("django", dj), ("raw", raw)):
        for line in stats.errors[:5]:
            print(f"  {label} error: {line}")
    ratio = dj.per_second / raw.per_second if raw.per_second else 0.0
    print(f"ratio django/raw: {ratio:.0%} (goal ≥ 50%)")

    t_checks = time.monotonic()
    oversell = oversold_pools()
    states_dj, bad_dj = order_states("BD")
    states_raw, bad_raw = order_states("BR")
    print(f"oversell: {oversell} pools (reserved outside 0..on_hand, or active reservations above on_hand)")
    print(f"orders (service): {dict(sorted(states_dj.items()))}, inconsistent {bad_dj}; "
          f"(raw): {dict(sorted(states_raw.items()))}, inconsistent {bad_raw}")
    problems = audit()
    for line in problems[:10]:
        print(f"  audit: {line}")
    audit_text = "audit ok" if not problems else f"audit FAILED ({len(problems)} problems)"
    print(f"{audit_text} over {len(spec.stock) * 2} pools (checks {time.monotonic() - t_checks:.1f} s); "
          f"total {time.monotonic() - t0:.0f} s")
    print(f"{SCRIPT}: {dj.orders} orders, {args.workers} workers: {dj.per_second:.0f}/s "
          f"(p50 {dj.ms(50):.1f} ms, p99 {dj.ms(99):.0f} ms), raw {raw.per_second:.0f}/s, ratio {ratio:.0%}, "
          f"oversell {oversell}, {audit_text}")
    failed = oversell or bad_dj or bad_raw or problems or dj.errors or raw.errors
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
