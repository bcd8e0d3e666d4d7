"""Allocation throughput on PostgreSQL: the order services against a raw-SQL ceiling.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub .venv/bin/python bench/allocate.py \
        [--orders 10000 --workers 4 --skus 1000 --warehouses 6 --batch-sizes 50,200]

Uses its own database (`<dbname>_bench`, created and migrated if missing) and wipes it
first. Builds identical data sets (same warehouses, routing rules, SKUs, stock and
orders), one per phase, and allocates them with `--workers` processes:

- raw (before)  plain psycopg transactions doing what the service does, as a ceiling;
- per order     `orders.services.order_allocate`, one order per transaction;
- batched       `orders.services.order_allocate_bulk`, N orders per transaction;
- raw (after)   the ceiling again (a phase's position in the run moves figures).

First, one worker per path allocates three small identical sets in the same order and
checks that all paths make identical decisions (reservations, hold reasons, event text).
Prints throughput, latency, client CPU per allocation, each path as a share of the raw
ceiling, an oversell check and the inventory audit; the last line is a summary.
See bench/README.md.
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
RULES = [  # name, conditions (the routing condition language), warehouse code, mode
    ("折叠盆 → 深圳(严格)", {"field": "sku_category", "op": "eq", "value": "折叠盆"}, "bench-shenzhen", "strict"),
    ("江浙沪 → 苏州", {"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]}, "bench-suzhou", "preferred"),
    ("华北 → 天津", {"field": "region", "op": "eq", "value": "华北"}, "bench-tianjin", "preferred"),
    ("华南 → 深圳", {"field": "region", "op": "eq", "value": "华南"}, "bench-shenzhen", "preferred"),
]
LEAD_TIME_WAREHOUSE = "bench-ningbo"  # stock there needs a transfer: its reservations expire
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
        if CATEGORIES[s % len(CATEGORIES)] == "折叠盆" and warehouses > 2:
            homes = [2]  # the strict 折叠盆 rule sends these to 深圳 only: stock them there
        else:
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
        Warehouse.objects.create(code=code, name=name, province=province, city=city, region=region, priority=priority,
                                 lead_time_days=2 if code == LEAD_TIME_WAREHOUSE else 0)
        for code, name, province, city, region, priority in warehouse_rows(spec.warehouses)
    ]
    by_code = {w.code: w for w in warehouses}
    for position, (name, cond, code, mode) in enumerate(RULES, start=1):
        if code in by_code:
            rule = RoutingRule(name=name, position=position * 10, conditions=cond, warehouse=by_code[code], mode=mode)
            rule.full_clean()
            rule.save()
    shops = [Shop.objects.create(code=code, name=f"压测 {code}", platform=platform) for code, platform in SHOPS]
    return {"warehouses": warehouses, "shops": shops, "actor": Actor.system("bench")}


def build_set(spec: Spec, static: dict, prefix: str, limit: int | None = None) -> list[int]:
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
    wanted = spec.orders[:limit] if limit else spec.orders
    for start in range(0, len(wanted), chunk):
        with transaction.atomic():
            batch = wanted[start:start + chunk]
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


# --- the service paths ----------------------------------------------------------------------
def allocate_with_service(order_id: int, actor) -> str:
    from orders.models import Order
    from orders.services import order_allocate

    # The service re-reads and locks the order by pk; a caller holding just the id (a task,
    # an API view) passes an id-only instance. `from_db` builds it without the field
    # defaults (`Order(pk=…)` would draw a new order number from the sequence: one more
    # query); the status is given only so the FSM mixin does not load it (the service
    # reads the real one under its row lock).
    order = Order.from_db(None, ["id", "status"], (order_id, "paid"))
    return order_allocate(order=order, actor=actor).status


def allocate_batch_with_service(order_ids: list[int], actor) -> Counter:
    from orders.services import order_allocate_bulk

    outcome = order_allocate_bulk(order_ids=order_ids, actor=actor)
    return Counter(allocated=len(outcome.allocated), on_hold=len(outcome.held), unchanged=len(outcome.unchanged))


# --- the raw path: the same reads, rules, decisions and rows, in plain SQL ------------------------
@dataclass
class RawRule:
    name: str
    mode: str
    conditions: dict
    warehouse_id: int


@dataclass
class RawContext:
    """What a raw worker caches, as the service caches its routing snapshot (checked
    against the same version token on every allocation)."""

    token: str
    by_priority: list[int]  # allocatable warehouse ids, priority order
    codes: dict[int, str]
    names: dict[int, str]
    lead_time: set[int]
    rules: list[RawRule]
    actor_label: str
    source: str
    lead_hours: int


def load_raw_context(actor) -> RawContext:
    from django.conf import settings

    from inventory.models import RoutingRule, RoutingVersion, Warehouse

    warehouses = list(Warehouse.objects.filter(is_active=True, allocatable=True, country="CN").order_by("priority", "id"))
    ids = {w.id for w in warehouses}
    rules = [RawRule(r.name, r.mode, r.conditions, r.warehouse_id)
             for r in RoutingRule.objects.filter(is_active=True, warehouse_id__in=ids).order_by("position", "id")]
    return RawContext(token=RoutingVersion.objects.get(pk=1).token, by_priority=[w.id for w in warehouses],
                      codes={w.id: w.code for w in warehouses}, names={w.id: w.name for w in warehouses},
                      lead_time={w.id for w in warehouses if w.lead_time_days}, rules=rules,
                      actor_label=actor.label, source=actor.source,
                      lead_hours=settings.ORDERHUB["LEAD_TIME_RESERVATION_HOURS"])


RAW_SQL = {
    "token": "SELECT token FROM inventory_routingversion WHERE id = 1",
    "order": ("SELECT o.number, o.status, o.country, o.province, o.city, o.district, o.address, o.tags, o.paid_amount, "
              "o.member_level, o.is_vip, o.is_presale, s.platform, s.code FROM orders_order o "
              "JOIN orders_shop s ON s.id = o.shop_id WHERE o.id = %s FOR UPDATE OF o"),
    "lines": ("SELECT l.id, l.sku_id, l.quantity, k.code, k.category FROM orders_orderline l "
              "LEFT JOIN inventory_sku k ON k.id = l.sku_id WHERE l.order_id = %s ORDER BY l.id"),
    "pools": ("SELECT p.id, p.warehouse_id, p.sku_id, p.on_hand, p.reserved, k.safety_stock FROM inventory_stocklevel p "
              "JOIN inventory_sku k ON k.id = p.sku_id "
              "WHERE p.warehouse_id = ANY(%s) AND p.sku_id = ANY(%s) ORDER BY p.id FOR UPDATE OF p"),
    "reserve": "UPDATE inventory_stocklevel SET reserved = reserved + %s, updated_at = %s WHERE id = ANY(%s)",
    "order_status": ("UPDATE orders_order SET status = %s, hold_reason = %s, hold_note = %s, updated_at = %s "
                     "WHERE id = %s AND status = 'paid'"),
    "event": ("INSERT INTO orders_orderevent (order_id, kind, from_status, to_status, message, actor_id, actor_label, "
              "source, is_public, data, occurred_at) VALUES (%s, %s, 'paid', %s, %s, NULL, %s, %s, %s, %s, %s)"),
}


def raw_rule_choices(rules: list[RawRule], ctx: dict) -> list[tuple[int, str, str]]:
    from inventory.conditions import evaluate

    chosen = []
    for rule in rules:
        if evaluate(rule.conditions, ctx):
            chosen.append((rule.warehouse_id, rule.name, rule.mode))
            if rule.mode == "strict":
                break
    return chosen


def raw_plan(lines, choices, available, by_priority):
    """The choice the service makes, written again: per line the matching rules' warehouses
    (a strict one binding), then one warehouse for the rest, then per line whole, then split.
    Returns (plan, chosen, rules, shortages); `available` is only changed when nothing is short.
    lines: (line id, sku id, quantity, sku code)."""
    available = dict(available)
    plan, chosen, rules, shortages = [], [], {}, []

    def take(line, wid, qty):
        available[(wid, line[1])] -= qty
        plan.append((line, wid, qty))
        if wid not in chosen:
            chosen.append(wid)

    pending = []
    for line in lines:
        for wid, name, mode in choices[line[0]]:
            if available.get((wid, line[1]), 0) >= line[2]:
                take(line, wid, line[2])
                rules[line[0]] = name
                break
            if mode == "strict":
                shortages.append((line[3], line[2], max(0, available.get((wid, line[1]), 0))))
                break
        else:
            if choices[line[0]]:
                pending.append(line)
    if shortages:
        return None, [], {}, shortages
    free = pending + [line for line in lines if not choices[line[0]]]
    if free:
        need = defaultdict(int)
        for _, sku, qty, _ in free:
            need[sku] += qty
        candidates = chosen + [w for w in by_priority if w not in chosen]
        single = next((w for w in candidates if all(available.get((w, s), 0) >= q for s, q in need.items())), None)
        for line in free:
            if single is not None:
                take(line, single, line[2])
                continue
            rule_wids = [w for w, _, _ in choices[line[0]]]
            prefs = rule_wids + [w for w in chosen if w not in rule_wids]
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
                shortages.append((line[3], line[2], line[2] - remaining))
            else:
                for w, q in parts:
                    take(line, w, q)
    if shortages:
        return None, [], {}, shortages
    return plan, chosen, rules, []


def allocate_with_sql(conn, order_id: int, ctx: RawContext) -> str:
    """One allocation as plain SQL in one transaction, reading what the service reads and
    writing the rows it writes: pools (one UPDATE per distinct delta, under row locks),
    reservations (with expires_at for lead-time stock), ledger moves with running counts,
    the order's status and its event (same message and data; the shortage text on hold)."""
    from datetime import datetime, timezone as dt_timezone

    from psycopg.types.json import Jsonb

    from inventory.conditions import region_of

    at = datetime.now(dt_timezone.utc)
    with conn.transaction(), conn.cursor() as cur:
        token = cur.execute(RAW_SQL["token"]).fetchone()[0]
        if token != ctx.token:  # the bench never changes rules; a real client would reload here
            raise RuntimeError("routing changed during the run")
        (number, status, country, province, city, district, address, tags, amount, member_level, is_vip, is_presale,
         platform, shop_code) = cur.execute(RAW_SQL["order"], (order_id,)).fetchone()
        if status != "paid":
            raise RuntimeError(f"order {number} is {status}")
        rows = cur.execute(RAW_SQL["lines"], (order_id,)).fetchall()
        lines = [(line_id, sku_id, qty, code) for line_id, sku_id, qty, code, _ in rows if qty > 0]
        base = {"province": province, "city": city, "district": district, "address": address,
                "region": region_of(province), "country": country, "channel": platform, "shop": shop_code,
                "sku": [r[3] for r in rows], "sku_category": [r[4] for r in rows if r[4]], "tags": list(tags or []),
                "amount": amount, "member_level": member_level, "is_vip": is_vip, "is_presale": is_presale}
        choices = {}
        for line_id, _sku, _qty, code, category in rows:
            choices[line_id] = raw_rule_choices(ctx.rules, {**base, "sku": [code], "sku_category": [category] if category else []})
        pools = {(w, s): [pid, on_hand, reserved, safety] for pid, w, s, on_hand, reserved, safety in
                 cur.execute(RAW_SQL["pools"], (ctx.by_priority, sorted({s for _, s, _, _ in lines}))).fetchall()}
        available = {key: p[1] - p[2] for key, p in pools.items()}
        plan, chosen, rules, shortages = raw_plan(lines, choices, available, ctx.by_priority)
        if plan is None:
            note = "; ".join(f"{code} 需要 {wanted},可用 {have}" for code, wanted, have in shortages)
            cur.execute(RAW_SQL["order_status"], ("on_hold", "stock_short", note[:255], at, order_id))
            if cur.rowcount != 1:
                raise RuntimeError(f"order {number} changed under the lock")
            cur.execute(RAW_SQL["event"], (order_id, "held", "on_hold", f"挂起: 库存不足({note})"[:500], ctx.actor_label,
                                           ctx.source, False, Jsonb({"reason": "stock_short"}), at))
            return "on_hold"
        per_pool = defaultdict(int)
        for (_, sku, _, _), wid, qty in plan:
            per_pool[pools[(wid, sku)][0]] += qty
        by_delta = defaultdict(list)
        for pool_id in sorted(per_pool):
            by_delta[per_pool[pool_id]].append(pool_id)
        for delta, pool_ids in sorted(by_delta.items()):
            cur.execute(RAW_SQL["reserve"], (delta, at, pool_ids))
            if cur.rowcount != len(pool_ids):
                raise RuntimeError("pool vanished under lock")
        expires = at + timedelta(hours=ctx.lead_hours)
        values = [(line_id, pools[(wid, sku)][0], qty, expires if wid in ctx.lead_time else None)
                  for (line_id, sku, _, _), wid, qty in plan]
        cur.execute(
            "INSERT INTO inventory_reservation (order_line_id, stock_level_id, quantity, status, expires_at, created_at, "
            "closed_at, close_reason) VALUES " + ", ".join(["(%s, %s, %s, 'active', %s, %s, NULL, '')"] * len(values))
            + " RETURNING id",
            [v for row in values for v in (*row, at)],
        )
        reservation_ids = [r[0] for r in cur.fetchall()]
        moves = []
        reason = f"订单 {number} 预占"
        for ((_, sku, _, _), wid, qty), reservation_id in zip(plan, reservation_ids):
            pool = pools[(wid, sku)]
            pool[2] += qty  # reserved after this move, as the service's ledger row records it
            moves += [pool[0], qty, pool[1], pool[2], reservation_id, order_id, reason, ctx.actor_label, ctx.source, at]
        cur.execute(
            "INSERT INTO inventory_stockmove (stock_level_id, kind, on_hand_delta, reserved_delta, on_hand_after, "
            "reserved_after, reservation_id, order_id, reason, actor_id, actor_label, source, created_at) VALUES "
            + ", ".join(["(%s, 'reserve', 0, %s, %s, %s, %s, %s, %s, NULL, %s, %s, %s)"] * len(values)),
            moves,
        )
        cur.execute(RAW_SQL["order_status"], ("allocated", "", "", at, order_id))
        if cur.rowcount != 1:
            raise RuntimeError(f"order {number} changed under the lock")
        names = [ctx.names[w] for w in chosen]
        message = f"分配至 {'、'.join(names)}" + ("(拆单)" if len(names) > 1 else "")
        data = {"warehouses": [ctx.codes[w] for w in chosen],
                "reservations": [[line_id, ctx.codes[wid], qty] for (line_id, _, _, _), wid, qty in plan],
                "rules": {str(k): v for k, v in rules.items()}}
        cur.execute(RAW_SQL["event"], (order_id, "allocated", "allocated", message, ctx.actor_label, ctx.source, True,
                                       Jsonb(data), at))
        # (the service's safety-stock alert is an after-commit notification: no rows)
        return "allocated"


def raw_connection(url: str):
    """Bound and prepared the way Django's connection is: client-side binding, no
    server-side prepared statements (Django's defaults for psycopg 3)."""
    import psycopg

    return psycopg.connect(url, prepare_threshold=None, cursor_factory=psycopg.ClientCursor)


# --- workers ----------------------------------------------------------------------------------
def worker(kind: str, url: str, units: list, raw_ctx: RawContext | None, barrier, results) -> None:
    """One process: connect, wait for the others, allocate its share (orders, or batches of
    orders for `bulk`), report the latency of each unit (one transaction)."""
    try:
        if kind in ("django", "bulk"):
            _common.setup_django(url)
            from django.db import connection

            from config.actors import Actor, Source

            actor = Actor.system("bench", source=Source.JOB)
            connection.ensure_connection()

            if kind == "django":
                def one(order_id: int) -> Counter:
                    return Counter([allocate_with_service(order_id, actor)])
            else:
                def one(batch: list[int]) -> Counter:
                    return allocate_batch_with_service(batch, actor)
        else:
            conn = raw_connection(url)

            def one(order_id: int) -> Counter:
                return Counter([allocate_with_sql(conn, order_id, raw_ctx)])

        barrier.wait(timeout=300)
        latencies, outcomes, errors = [], Counter(), []
        started, cpu_started = time.monotonic(), time.process_time()
        for unit in units:
            t0 = time.perf_counter()
            try:
                outcomes.update(one(unit))
            except Exception as exc:  # noqa: BLE001 - counted and shown; must stay 0
                errors.append(f"{unit if kind != 'bulk' else f'batch of {len(unit)}'}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            latencies.append(time.perf_counter() - t0)
        finished, cpu = time.monotonic(), time.process_time() - cpu_started
        results.put({"latencies": latencies, "outcomes": dict(outcomes), "errors": errors,
                     "started": started, "finished": finished, "cpu": cpu})
    except BaseException as exc:  # noqa: BLE001
        results.put({"fatal": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        if kind in ("django", "bulk"):
            from django.db import connection

            connection.close()
        elif "conn" in locals():
            conn.close()


@dataclass
class RunStats:
    label: str
    orders: int
    seconds: float
    latencies: list[float]  # per unit: one order, or one batch
    outcomes: Counter
    errors: list[str]
    cpu: float  # client-side (Python) CPU seconds, all workers together

    @property
    def done(self) -> int:
        return self.outcomes["allocated"] + self.outcomes["on_hold"]

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def ms(self, pct: float) -> float:
        return _common.percentile(self.latencies, pct) * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.done * 1000 if self.done else 0.0

    def line(self, workers: int, unit: str = "") -> str:
        return (f"{self.label}: {self.orders} orders, {workers} workers in {self.seconds:.1f} s: "
                f"{self.per_second:.0f} allocations/s; client CPU {self.cpu_ms:.2f} ms/allocation; "
                f"p50 {self.ms(50):.1f} ms, p99 {self.ms(99):.1f} ms{unit}; "
                f"allocated {self.outcomes['allocated']}, on_hold {self.outcomes['on_hold']}, errors {len(self.errors)}")


def run(kind: str, label: str, url: str, order_ids: list[int], workers: int, raw_ctx: RawContext | None = None,
        batch: int = 0) -> RunStats:
    ctx = mp.get_context("spawn")  # each worker sets itself up, with its own connection
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    # Interleaved shares: the workers walk the same orders side by side and meet on hot SKUs.
    shares = [order_ids[w::workers] for w in range(workers)]
    if kind == "bulk":
        shares = [[share[i:i + batch] for i in range(0, len(share), batch)] for share in shares]
    procs = [ctx.Process(target=worker, args=(kind, url, share, raw_ctx, barrier, results)) for share in shares]
    for p in procs:
        p.start()
    reports = [results.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    fatal = [r["fatal"] for r in reports if "fatal" in r]
    if fatal:
        raise _common.BenchError(SCRIPT, f"{label} worker failed: {fatal[0]}")
    outcomes = Counter()
    for r in reports:
        outcomes.update(r["outcomes"])
    return RunStats(
        label=label,
        orders=len(order_ids),
        seconds=max(r["finished"] for r in reports) - min(r["started"] for r in reports),
        latencies=sorted(x for r in reports for x in r["latencies"]),
        outcomes=outcomes,
        errors=[e for r in reports for e in r["errors"]],
        cpu=sum(r["cpu"] for r in reports),
    )


# --- the one-worker decision check -------------------------------------------------------------
def decisions(prefix: str) -> list[tuple]:
    """Per order (in order): status, hold reason and note, event message and data, and the
    reservations (line position, warehouse, quantity, expires?), with the set's own SKU codes,
    order numbers and line ids written out of them so sets compare."""
    from orders.models import Order, OrderEvent, OrderLine
    from inventory.models import Reservation

    orders = list(Order.objects.filter(number__startswith=prefix).order_by("id"))
    line_pos, seen = {}, Counter()
    for line_id, order_id in OrderLine.objects.filter(order__in=orders).order_by("order_id", "id").values_list(
            "id", "order_id"):
        line_pos[line_id] = seen[order_id]
        seen[order_id] += 1
    reservations = defaultdict(list)
    for line_id, order_id, code, qty, expires in (
            Reservation.objects.filter(order_line__order__in=orders).order_by("id")
            .values_list("order_line_id", "order_line__order_id", "stock_level__warehouse__code", "quantity", "expires_at")):
        reservations[order_id].append((line_pos[line_id], code, qty, expires is not None))
    events = {e.order_id: e for e in OrderEvent.objects.filter(order__in=orders, kind__in=["allocated", "held"])}

    def clean(text: str) -> str:
        return text.replace(f"{prefix}-SKU-", "SKU-")

    out = []
    for order in orders:
        event = events.get(order.pk)
        data = dict(event.data) if event else {}
        if "reservations" in data:
            data["reservations"] = [[line_pos[line], w, q] for line, w, q in data["reservations"]]
        if "rules" in data:
            data["rules"] = {str(line_pos[int(k)]): v for k, v in data["rules"].items()}
        out.append((order.status, order.hold_reason, clean(order.hold_note), clean(event.message) if event else "",
                    data, reservations[order.pk]))
    return out


def decision_check(url: str, static: dict, spec: Spec) -> tuple[str, bool]:
    """Build three identical small sets, allocate each with one worker in order (per order,
    batched, raw) and compare their decisions. Returns a one-line verdict."""
    from orders.services import order_allocate_bulk

    actor = static["actor"]
    ids = {p: build_set(spec, static, p) for p in ("CD", "CB", "CR")}
    for order_id in ids["CD"]:
        allocate_with_service(order_id, actor)
    for start in range(0, len(ids["CB"]), 100):
        order_allocate_bulk(order_ids=ids["CB"][start:start + 100], actor=actor)
    ctx = load_raw_context(actor)
    with raw_connection(url) as conn:
        for order_id in ids["CR"]:
            allocate_with_sql(conn, order_id, ctx)
    per_order, batched, raw = decisions("CD"), decisions("CB"), decisions("CR")
    held = sum(1 for d in per_order if d[0] == "on_hold")
    split = sum(1 for d in per_order if len({r[1] for r in d[5]}) > 1)
    lead = sum(1 for d in per_order if any(r[3] for r in d[5]))
    ruled = sum(1 for d in per_order if d[4].get("rules"))
    diff = [(i, a, b, c) for i, (a, b, c) in enumerate(zip(per_order, batched, raw)) if not a == b == c]
    for i, a, b, c in diff[:3]:
        print(f"  differs at order {i}:\n    per-order {a}\n    batched   {b}\n    raw       {c}")
    verdict = "identical" if not diff else f"DIFFERENT in {len(diff)} orders"
    return (f"decisions (1 worker, {len(per_order)} orders: {held} held, {split} from several warehouses, {ruled} using a rule, "
            f"{lead} with lead-time stock): per-order, batched and raw {verdict}"), bool(diff)


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
# --- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders per timed phase")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skus", type=int, default=1_000)
    parser.add_argument("--warehouses", type=int, default=6)
    parser.add_argument("--batch-sizes", default="50,200", help="orders per transaction of the batched phases")
    parser.add_argument("--check-orders", type=int, default=400, help="orders of the one-worker decision check")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--database", default=None, help="bench database name (default: <dbname>_bench)")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if (min(args.orders, args.workers, args.skus, args.warehouses, args.check_orders, *batch_sizes) < 1
            or args.skus < LINES_PER_ORDER):
        raise _common.BenchError(SCRIPT, f"sizes must be ≥ 1 and --skus ≥ {LINES_PER_ORDER}")

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

    from inventory.audit import audit
    from inventory.models import RoutingRule

    # One spec, built once per phase. Order 0 of each set is the probe (allocated untimed).
    spec = make_spec(orders=args.orders + 1, skus=args.skus, warehouses=args.warehouses, seed=args.seed)
    check_spec = make_spec(orders=args.check_orders, skus=max(LINES_PER_ORDER, min(args.skus, args.check_orders // 4)),
                           warehouses=args.warehouses, seed=args.seed + 1)
    static = build_static(spec)
    actor = static["actor"]

    verdict, differ = decision_check(url, static, check_spec)
    print(verdict, flush=True)

    phases = [("raw (before)", "raw", "RB", 0), ("per order", "django", "SD", 0)]
    phases += [(f"batched ×{b}", "bulk", f"S{i}", b) for i, b in enumerate(batch_sizes)]
    phases += [("raw (after)", "raw", "RA", 0)]
    ids = {prefix: build_set(spec, static, prefix) for _, _, prefix, _ in phases}
    analyze(url)
    units = sum(spec.stock.values())
    wanted = sum(q for _, _, lines in spec.orders for _, q in lines)
    print(f"setup: {args.warehouses} warehouses, {RoutingRule.objects.count()} routing rules "
          f"(1 strict on a category, 1 lead-time warehouse), {len(phases)} × {args.skus} SKUs, "
          f"{len(phases)} × {len(spec.stock)} pools ({units} units for {wanted} wanted), "
          f"{len(phases)} × {len(spec.orders)} paid orders of {LINES_PER_ORDER} lines in {time.monotonic() - t0:.1f} s",
          flush=True)

    queries, probe_status = count_queries_of_one_allocation(ids["SD"][0], actor)
    print(f"profile: one order_allocate ({LINES_PER_ORDER} lines, {probe_status}, routing cached) = {queries} queries",
          flush=True)
    raw_ctx = load_raw_context(actor)
    for _label, kind, prefix, batch in phases:  # the probes: warm each path's first call, untimed
        if kind == "raw":
            with raw_connection(url) as conn:
                allocate_with_sql(conn, ids[prefix][0], raw_ctx)
        elif kind == "bulk":
            allocate_batch_with_service([ids[prefix][0]], actor)
        elif prefix != "SD":
            allocate_with_service(ids[prefix][0], actor)
    connection.close()  # the workers bring their own connections

    stats: dict[str, RunStats] = {}
    for label, kind, prefix, batch in phases:
        stats[label] = run(kind, label, url, ids[prefix][1:], args.workers, raw_ctx, batch)
        print(stats[label].line(args.workers, " per batch" if kind == "bulk" else ""), flush=True)
    for s in stats.values():
        for line in s.errors[:5]:
            print(f"  {s.label} error: {line}")

    before, after = stats["raw (before)"], stats["raw (after)"]
    ceiling = (before.per_second + after.per_second) / 2
    print(f"ceiling (raw, mean of before {before.per_second:.0f}/s and after {after.per_second:.0f}/s): "
          f"{ceiling:.0f} allocations/s, client CPU {(before.cpu_ms + after.cpu_ms) / 2:.2f} ms/allocation")
    shares = {}
    for label, s in stats.items():
        if not label.startswith("raw"):
            shares[label] = s.per_second / ceiling if ceiling else 0.0
    goal = {"per order": 0.25}
    for label, share in shares.items():
        want = goal.get(label, 1.0)
        print(f"  {label}: {share:.0%} of the ceiling (goal ≥ {want:.0%}), client CPU {stats[label].cpu_ms:.2f} ms/allocation"
              + (f", p99 per batch {stats[label].ms(99):.0f} ms (goal ≤ 1000 ms)" if label.startswith("batched") else ""))

    t_checks = time.monotonic()
    oversell = oversold_pools()
    bad_total = 0
    parts = []
    for label, _kind, prefix, _ in phases:
        states, bad = order_states(prefix)
        bad_total += bad
        parts.append(f"{label} {dict(sorted(states.items()))} inconsistent {bad}")
    print(f"oversell: {oversell} pools (reserved outside 0..on_hand, or active reservations above on_hand)")
    print("orders: " + "; ".join(parts))
    problems = audit()
    for line in problems[:10]:
        print(f"  audit: {line}")
    audit_text = "audit ok" if not problems else f"audit FAILED ({len(problems)} problems)"
    print(f"{audit_text} over {len(spec.stock) * len(phases) + len(check_spec.stock) * 3} pools "
          f"(checks {time.monotonic() - t_checks:.1f} s); total {time.monotonic() - t0:.0f} s; "
          f"load average now {os.getloadavg()[0]:.1f}")
    summary = ", ".join(f"{label} {stats[label].per_second:.0f}/s = {share:.0%}" for label, share in shares.items())
    worst_p99 = max((stats[label].ms(99) for label in shares if label.startswith("batched")), default=0.0)
    print(f"{SCRIPT}: {args.orders} orders × {len(phases)} phases, {args.workers} workers: ceiling {ceiling:.0f}/s; "
          f"{summary}; CPU/allocation per order {stats['per order'].cpu_ms:.2f} ms vs raw "
          f"{(before.cpu_ms + after.cpu_ms) / 2:.2f} ms; batch p99 {worst_p99:.0f} ms; oversell {oversell}, {audit_text}, "
          f"decisions {'identical' if not differ else 'DIFFERENT'}")
    failed = oversell or bad_total or problems or differ or any(s.errors for s in stats.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
