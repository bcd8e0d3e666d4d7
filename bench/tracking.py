"""bench/tracking.py — carrier tracking and the 09:00 pick batch under load (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub \\
        .venv/bin/python bench/tracking.py [--shipments 50000] [--poll 2000] [--pushes 10000]
        [--push-size 100] [--single 500] [--batch-orders 5000] [--database oh_trackbench]

Uses its own database (`--database`, default `oh_trackbench`, created and migrated if
missing; its tables are emptied first). Steps:

1. **World**: `--shipments` shipped orders, each with one in-transit parcel on the sandbox
   carrier (one picked-up scan stored), due for a poll. Generated with bulk inserts (not
   through the services: building 50,000 orders one by one would take longer than the
   measurements); the rows are what the services would have written. Then `ANALYZE`, as
   autovacuum would on a live database (the same after the batch world).
2. **Poll round**: `orders.tracking_tasks.poll_shipments(limit=--poll)` against the sandbox
   carrier (one round takes at most `limit` parcels per provider — the real job runs every
   5 minutes with 200); prints parcels polled/s and transitions.
3. **Pushes**: `--pushes` scans through `orders.shipping.record_tracking` (the scan
   processing carrier pushes end in), one scan per update on distinct parcels, 10 % of them
   duplicates of a scan already sent, 10 % out of order (older than what the parcel already
   has); the rest move parcels on (in transit, out for delivery, delivered). The first
   `--single` (500) come one parcel per call (timed apart: the worst case), the rest
   `--push-size` (100) parcels per call, as a KDNiao push or a poll round carries many.
   Prints scans/s, SQL statements per scan, transitions made, duplicates dropped.
4. **Batch**: `--batch-orders` allocated orders in one warehouse (bulk-generated likewise:
   reservations and stock rows balanced; ~30 % of the buyers have two orders to the same
   address, so merges happen; some presale with priority), then times the 09:00 batch —
   `orders.batches.batch_build` (merge + shipments) + `pick_list` + `packing_lists` (and, as
   an extra line, rendering the printable packing lists and the Excel file).

Goals (printed, not asserted): the batch in ≤ 10 s; pushes ≥ 1,000 scans/s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCRIPT = "bench/tracking.py"
GOAL_BATCH_SECONDS = 10.0
GOAL_SCANS_PER_SECOND = 1000.0
CHUNK = 2000


def wipe() -> None:
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for label in ("orders", "inventory", "aftersales", "finance")
              if label in {a.label for a in apps.get_app_configs()}
              for m in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")


def _orders(shop, n: int, *, prefix: str, status: str, now, customers=None, **extra):
    from orders.models import Order

    rows = []
    for i in range(n):
        customer = customers[i] if customers else None
        phone = customer.phone if customer else f"139{i:08d}"
        rows.append(Order(number=f"{prefix}{i:09d}", shop=shop, platform_order_id=f"{prefix}-{i}", status=status,
                          customer=customer, paid_amount=Decimal("99.00"), goods_amount=Decimal("99.00"),
                          receiver_name=f"买家{(customer.pk if customer else i)}", receiver_phone=phone,
                          province="江苏省", city="苏州市", district="姑苏区",
                          address=f"人民路 {(customer.pk if customer else i)} 号", placed_at=now - timedelta(hours=5),
                          paid_at=now - timedelta(hours=5), **extra))
    out = []
    for start in range(0, len(rows), CHUNK):
        out += Order.objects.bulk_create(rows[start:start + CHUNK])
    return out


def build_tracking_world(n: int, now) -> list[str]:
    from inventory.models import Sku, Warehouse
    from orders.models import (OrderLine, OrderStatus, Platform, Shipment, ShipmentLine, ShipmentStatus, Shop,
                               TrackingEvent, TrackingProvider, TrackingState)

    shop = Shop.objects.create(platform=Platform.SANDBOX, code="bench-track", name="Bench 店铺")
    warehouse = Warehouse.objects.create(code="bench-wx", name="无锡仓", priority=50)
    sku = Sku.objects.create(code="BENCH-T", name="轨迹商品")
    orders = _orders(shop, n, prefix="OHT", status=OrderStatus.SHIPPED, now=now)
    lines = []
    for start in range(0, n, CHUNK):
        lines += OrderLine.objects.bulk_create([OrderLine(order=o, sku=sku, title=sku.name, quantity=1,
                                                          unit_price=Decimal("99.00"))
                                                for o in orders[start:start + CHUNK]])
    numbers = [f"SB{i:010d}" for i in range(n)]
    shipped_at = now - timedelta(hours=4)
    for start in range(0, n, CHUNK):
        chunk = Shipment.objects.bulk_create([Shipment(
            order=o, warehouse=warehouse, carrier="SANDBOX", tracking_number=numbers[start + j],
            provider=TrackingProvider.SANDBOX, status=ShipmentStatus.IN_TRANSIT, created_at=shipped_at,
            shipped_at=shipped_at, last_scan_at=shipped_at, next_poll_at=now - timedelta(minutes=1))
            for j, o in enumerate(orders[start:start + CHUNK])])
        ShipmentLine.objects.bulk_create([ShipmentLine(shipment=s, order_line=lines[start + j], quantity=1)
                                          for j, s in enumerate(chunk)])
        from orders.carriers.base import Scan

        first = Scan(occurred_at=shipped_at, description="快件已揽收", state=TrackingState.PICKED_UP)
        TrackingEvent.objects.bulk_create([TrackingEvent(shipment=s, occurred_at=first.occurred_at,
                                                         description=first.description, state=first.state,
                                                         key=first.key, received_at=shipped_at) for s in chunk])
    return numbers


def analyze() -> None:
    """Planner statistics for the bulk-generated rows, as autovacuum would gather them on a live
    database (without them PostgreSQL takes the 50,000-row tables for small ones and scans them
    whole for every batch of scans)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def build_batch_world(n: int, now, rng: random.Random):
    from inventory.models import Reservation, Sku, StockLevel, Warehouse
    from orders.models import Customer, OrderLine, OrderStatus, Platform, Shop

    shop = Shop.objects.create(platform=Platform.TAOBAO, code="bench-batch", name="Bench 天猫")
    warehouse = Warehouse.objects.create(code="bench-sz", name="苏州仓", priority=10)
    skus = Sku.objects.bulk_create([Sku(code=f"BENCH-{i:03d}", name=f"商品 {i}") for i in range(200)])
    levels = StockLevel.objects.bulk_create([StockLevel(warehouse=warehouse, sku=s, on_hand=1_000_000,
                                                        location=f"{chr(65 + i % 8)}-{i // 8:02d}-{i % 4 + 1:02d}")
                                             for i, s in enumerate(skus)])
    n_customers = int(n / 1.3)
    customers = Customer.objects.bulk_create([Customer(phone=f"+86137{i:08d}", name=f"买家{i}")
                                              for i in range(n_customers)])
    owners = customers + [customers[rng.randrange(n_customers)] for _ in range(n - n_customers)]
    rng.shuffle(owners)
    presale_priority = set(rng.sample(range(n), n // 20))
    orders = _orders(shop, n, prefix="OHB", status=OrderStatus.ALLOCATED, now=now, customers=owners)
    from orders.models import Order

    Order.objects.filter(pk__in=[orders[i].pk for i in presale_priority]).update(is_presale=True,
                                                                                 tags=["优先发货"])
    reserved = {lv.pk: 0 for lv in levels}
    line_rows, picks = [], []
    for o in orders:
        for k in range(rng.choice((1, 1, 2, 3))):
            i = rng.randrange(len(skus))
            q = rng.choice((1, 1, 2))
            line_rows.append(OrderLine(order=o, sku=skus[i], title=skus[i].name, quantity=q, unit_price=Decimal("33"),
                                       is_gift=(k == 2)))
            picks.append((levels[i], q))
    lines = []
    for start in range(0, len(line_rows), CHUNK):
        lines += OrderLine.objects.bulk_create(line_rows[start:start + CHUNK])
    reservations = []
    for line, (level, q) in zip(lines, picks):
        reservations.append(Reservation(order_line=line, stock_level=level, quantity=q))
        reserved[level.pk] += q
    for start in range(0, len(reservations), CHUNK):
        Reservation.objects.bulk_create(reservations[start:start + CHUNK])
    for level in levels:
        level.reserved = reserved[level.pk]
    StockLevel.objects.bulk_update(levels, ["reserved"])
    return warehouse, len(lines)


def push_updates(numbers: list[str], total: int, now, rng: random.Random):
    """`total` one-scan updates: 10 % duplicates of an earlier one, 10 % out of order, on distinct parcels."""
    from orders.carriers.base import Scan, TrackingUpdate
    from orders.models import TrackingState as T

    n_dup, n_old = total // 10, total // 10
    fresh = total - n_dup - n_old
    targets = rng.sample(numbers, min(len(numbers), fresh + n_old))
    steps = [(T.IN_TRANSIT, "快件已到达转运中心"), (T.OUT_FOR_DELIVERY, "快递员正在派件"), (T.DELIVERED, "已签收")]
    updates = []
    for i, number in enumerate(targets[:fresh]):
        state, text = steps[i % 3]
        scan = Scan(occurred_at=now - timedelta(minutes=30) + timedelta(seconds=i % 600), description=text, state=state)
        updates.append(TrackingUpdate(carrier="SANDBOX", tracking_number=number, state=state, scans=(scan,)))
    for number in targets[fresh:fresh + n_old]:  # older than the stored pickup scan: late news
        scan = Scan(occurred_at=now - timedelta(hours=6), description="快件已在始发地打包", state=T.PICKED_UP)
        updates.append(TrackingUpdate(carrier="SANDBOX", tracking_number=number, state=T.PICKED_UP, scans=(scan,)))
    originals, late = updates[:fresh], updates[fresh:]
    dups = [originals[rng.randrange(fresh)] for _ in range(n_dup)]
    # Out-of-order scans land anywhere; a duplicate arrives after its original (appended at the end).
    head = list(originals)
    for u in late:
        head.insert(rng.randrange(len(head) + 1), u)
    head += dups
    return head


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=50_000)
    parser.add_argument("--poll", type=int, default=2000, help="parcels in the poll round")
    parser.add_argument("--pushes", type=int, default=10_000)
    parser.add_argument("--push-size", type=int, default=100, help="parcels (updates) per push")
    parser.add_argument("--single", type=int, default=500,
                        help="of the pushed scans, how many come first as one-parcel pushes (timed apart)")
    parser.add_argument("--batch-orders", type=int, default=5000)
    parser.add_argument("--database", default="oh_trackbench")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)

    base_url = _common.require_postgres_url(SCRIPT)
    name = args.database
    if name in {_common.database_name(base_url), "postgres", "template0", "template1"}:
        raise _common.BenchError(SCRIPT, f"refusing to wipe database {name!r}: the bench needs a database of its own")
    url = _common.with_database(base_url, name)
    created = _common.ensure_database(url, SCRIPT)
    _common.setup_django(url)
    import logging

    logging.getLogger("orders.tracking_tasks").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.utils import timezone

    from config.actors import Actor, Source
    from orders import batches, shipping, tracking_tasks

    print(f"database: {name}" + (" (created)" if created else "")
          + f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    call_command("migrate", verbosity=0, interactive=False)
    wipe()
    rng = random.Random(args.seed)
    now = timezone.now()

    t = time.perf_counter()
    numbers = build_tracking_world(args.shipments, now)
    analyze()
    print(f"world: {args.shipments} in-transit parcels generated in {time.perf_counter() - t:.1f} s (bulk inserts)",
          flush=True)

    # --- poll round ------------------------------------------------------------------------------
    t = time.perf_counter()
    polled = tracking_tasks.poll_shipments(limit=args.poll, now=now)
    dt = time.perf_counter() - t
    print(f"poll round: {polled.polled} parcels polled ({polled.failed} failed) in {dt:.2f} s = "
          f"{polled.polled / dt:.0f} parcels/s; {polled.scans_added} scans, {len(polled.transitions)} transitions",
          flush=True)

    # --- pushes -----------------------------------------------------------------------------------
    updates = push_updates(numbers[args.poll:] or numbers, args.pushes, now, rng)
    actor = Actor.system("bench_push", Source.JOB)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    single = updates[:min(args.single, len(updates))]  # pushes carrying one parcel each, the worst case
    rest = updates[len(single):]
    result = shipping.TrackingResult()
    connection.queries_log = type(connection.queries_log)(maxlen=1_000_000)  # count every statement
    with CaptureQueriesContext(connection) as queries:
        t = time.perf_counter()
        for update in single:
            result.merge(shipping.record_tracking(updates=[update], actor=actor))
        t_single = time.perf_counter() - t
        n_single = len(queries.captured_queries)
        t = time.perf_counter()
        for start in range(0, len(rest), args.push_size):
            result.merge(shipping.record_tracking(updates=rest[start:start + args.push_size], actor=actor))
        dt = time.perf_counter() - t
    n_rest = len(queries.captured_queries) - n_single
    sql_rest = sum(float(q["time"]) for q in queries.captured_queries[n_single:])
    delivered = sum(1 for x in result.transitions if x.endswith(":delivered") and not x.startswith("order:"))
    rate = len(rest) / dt if rest else 0.0
    if single:
        print(f"single-parcel pushes: {len(single)} scans one call each in {t_single:.2f} s = "
              f"{len(single) / t_single:.0f} scans/s; {n_single / len(single):.1f} SQL statements per scan",
              flush=True)
    print(f"pushes: {len(rest)} scans, {args.push_size} per push, in {dt:.2f} s = {rate:.0f} scans/s "
          f"(goal ≥ {GOAL_SCANS_PER_SECOND:.0f}); {n_rest / max(1, len(rest)):.2f} SQL statements per scan "
          f"({sql_rest:.2f} s waiting on SQL); "
          f"all {len(updates)}: {result.scans_added} stored, {result.duplicates} duplicates dropped, "
          f"{len(result.transitions)} transitions ({delivered} parcels delivered), {len(result.unmatched)} unmatched; "
          f"load average {os.getloadavg()[0]:.1f}",
          flush=True)

    # --- the 09:00 batch ------------------------------------------------------------------------
    t = time.perf_counter()
    warehouse, n_lines = build_batch_world(args.batch_orders, now, rng)
    analyze()
    print(f"batch world: {args.batch_orders} allocated orders ({n_lines} lines) in one warehouse generated in "
          f"{time.perf_counter() - t:.1f} s (bulk inserts)", flush=True)
    system = Actor.system("pick batch", Source.JOB)
    t0 = time.perf_counter()
    batch = batches.batch_build(warehouse=warehouse, actor=system, slot="09:00")
    t1 = time.perf_counter()
    rows = batches.pick_list(batch=batch, actor=system)
    t2 = time.perf_counter()
    slips = batches.packing_lists(batch=batch, actor=system)
    t3 = time.perf_counter()
    merged = sum(1 for s in slips if s.merged)
    total = t3 - t0
    print(f"batch: {batch.order_count} orders → {batch.parcel_count} parcels ({merged} merged), "
          f"{len(rows)} pick rows, {len(slips)} packing slips in {total:.2f} s (goal ≤ {GOAL_BATCH_SECONDS:.0f} s): "
          f"merge+shipments {t1 - t0:.2f} s, pick list {t2 - t1:.2f} s, packing lists {t3 - t2:.2f} s", flush=True)
    from django.template.loader import render_to_string

    t = time.perf_counter()
    html = render_to_string("orders/packing_lists.html", {"batch": batch, "slips": slips, "now": now})
    t4 = time.perf_counter()
    xlsx = batches.batch_workbook(batch=batch, actor=system)
    t5 = time.perf_counter()
    print(f"printing (extra): packing lists HTML {len(html) // 1024} KiB in {t4 - t:.2f} s, "
          f"Excel {len(xlsx) // 1024} KiB in {t5 - t4:.2f} s", flush=True)
    print(f"SUMMARY pushes {rate:.0f} scans/s ({args.push_size} per push), {len(result.transitions)} transitions, "
          f"{result.duplicates} duplicates dropped; poll {polled.polled} parcels; "
          f"batch {batch.order_count} orders in {total:.2f} s; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
