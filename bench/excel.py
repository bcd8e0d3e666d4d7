"""Excel import and export throughput and memory: the project's imports against a plain
django-import-export `ModelResource` (the peer), and order exports at two sizes.

    .venv/bin/python bench/excel.py [--rows 50000] [--orders 100000] [--small-orders 10000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub .venv/bin/python bench/excel.py

On PostgreSQL it uses its own database `<dbname>_excel_bench` (dropped and re-created on
every run); without a PostgreSQL DATABASE_URL it uses a fresh SQLite file in a temporary
directory. It never touches the project's database. Setup (not timed) bulk-creates two
warehouses, `--rows` SKUs with stock in one warehouse (pools with matching receipt ledger
rows), and `--orders` paid orders (a shortcut for the bench only), and writes the xlsx
files. Each measured phase then runs in a fresh process, so its peak memory (growth of the
process's peak RSS over its state before the phase) is its own:

- **stock count (ours)**: `inventory.imports.import_file` on a `--rows`-row stocktake file:
  read with python-calamine, every row checked (types, SKU, warehouse, scope, duplicates,
  reserved), then applied in one transaction through the bulk stocktake service as a
  仓管 user (permission, scope, one STOCKTAKE ledger move per changed pool). Also the dry
  run alone (what the admin preview costs before the confirm).
- **stock count (peer)**: the same file through a plain `ModelResource` for StockLevel
  (warehouse and SKU by code, on_hand) with django-import-export's default settings
  (tablib/openpyxl reading, row-by-row `import_data`): no ledger, no permission, an
  overwrite. The ratio ours / peer is printed.
- **SKU master (ours)**: a `--rows`-row SKU file, half new SKUs and half updates.
- **order export**: `orders.exports` xlsx (xlsxwriter constant_memory) as 运营 (masked) at
  `--small-orders` and `--orders` rows, and CSV at `--orders` rows.

Afterwards `inventory_audit` must find every pool equal to its ledger (before the peer runs,
which overwrites without a ledger). The last line is a summary.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (also puts the repository root on sys.path)

SCRIPT = "excel"


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- database ------------------------------------------------------------------------------
def database_url(args) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme in _common.POSTGRES_SCHEMES:
        import psycopg
        from psycopg import sql

        name = args.database or f"{_common.database_name(url)}_excel_bench"
        try:
            with psycopg.connect(_common.with_database(url, "postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.OperationalError as exc:
            raise _common.BenchError(SCRIPT, f"cannot reach PostgreSQL: {str(exc).strip().splitlines()[0]}") from exc
        return _common.with_database(url, name)
    path = Path(tempfile.mkdtemp(prefix="excel-bench-")) / "bench.sqlite3"
    return f"sqlite:///{path}"


# --- setup (not timed) -----------------------------------------------------------------------
def setup(args, workdir: Path) -> dict:
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from config import roles
    from django.contrib.auth.models import Group, User
    from inventory.models import Sku, StockLevel, StockMove, Warehouse
    from orders.models import Order, OrderStatus, Platform, Shop

    roles.sync_roles()
    for username, role in (("bench-warehouse", "warehouse"), ("bench-ops", "operations")):
        user = User.objects.create_user(username, is_staff=True)
        user.groups.add(Group.objects.get(name=roles.group_name(role)))

    rng = random.Random(args.seed)
    rows = args.rows
    with transaction.atomic():
        suzhou = Warehouse.objects.create(code="bench-suzhou", name="苏州仓(压测)", priority=10)
        Warehouse.objects.create(code="bench-tianjin", name="天津仓(压测)", priority=20)
        Sku.objects.bulk_create([Sku(code=f"B{i:06d}", name=f"压测商品 {i}", category=rng.choice(["日用", "厨具", "收纳"]))
                                 for i in range(rows)], batch_size=2000)
        skus = list(Sku.objects.order_by("id").values_list("id", flat=True))
        StockLevel.objects.bulk_create([StockLevel(warehouse=suzhou, sku_id=s, on_hand=100) for s in skus], batch_size=2000)
        StockMove.objects.bulk_create([StockMove(stock_level_id=p, kind="receipt", on_hand_delta=100, on_hand_after=100,
                                                 reserved_after=0, reason="bench")
                                       for p in StockLevel.objects.values_list("id", flat=True)], batch_size=2000)
        small = Shop.objects.create(platform=Platform.TAOBAO, code="bench-small", name="压测店铺 A")
        big = Shop.objects.create(platform=Platform.JD, code="bench-big", name="压测店铺 B")
        now = timezone.now()
        orders = []
        for i in range(args.orders):
            orders.append(Order(
                number=f"OHB{i:010d}", shop=small if i < args.small_orders else big, platform_order_id=f"P{i}",
                status=OrderStatus.PAID, receiver_name="张三", receiver_phone=f"138{i % 100000000:08d}",
                province="江苏省", city="苏州市", district="姑苏区", address=f"人民路 {i} 号",
                goods_amount="99.00", paid_amount="89.00", placed_at=now, paid_at=now,
                buyer_note="=HYPERLINK(\"x\")" if i % 1000 == 0 else "", seller_note=""))
            if len(orders) == 5000:
                Order.objects.bulk_create(orders)
                orders = []
        Order.objects.bulk_create(orders)
    connection.close()

    import xlsxwriter

    def write(path: Path, header: list, body) -> None:
        book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        sheet = book.add_worksheet("数据")
        sheet.write_row(0, 0, header)
        for r, row in enumerate(body, start=1):
            sheet.write_row(r, 0, row)
        book.close()

    stock_file = workdir / "stock-count.xlsx"
    write(stock_file, ["仓库", "SKU编码", "盘点数量", "备注"],
          (["bench-suzhou", f"B{i:06d}", rng.choice([100, rng.randint(0, 300)]), "月末盘点"] for i in range(rows)))
    sku_file = workdir / "sku-master.xlsx"
    half = rows // 2
    write(sku_file, ["SKU编码", "名称", "类目", "条码", "安全库存"],
          ([f"B{i:06d}" if i < half else f"N{i:06d}", f"商品 {i} 新名", "日用", f"69{i:011d}", i % 20]
           for i in range(rows)))
    return {"stock_file": str(stock_file), "sku_file": str(sku_file)}


# --- phases (each in a fresh process) ----------------------------------------------------------
def _phase(url: str, name: str, kwargs: dict, queue) -> None:
    _common.setup_django(url)
    import logging

    logging.getLogger("inventory").setLevel(logging.WARNING)
    logging.getLogger("config").setLevel(logging.WARNING)
    from django.contrib.auth.models import User

    from config.actors import Actor, Source

    # Import what the phase needs before the baseline, so imports are not counted.
    import import_export.resources  # noqa: F401
    import openpyxl  # noqa: F401
    import python_calamine  # noqa: F401
    import xlsxwriter  # noqa: F401

    from inventory import imports  # noqa: F401
    from orders import exports  # noqa: F401

    User.objects.count()
    base = _maxrss_mb()
    started = time.perf_counter()
    result = PHASES[name](Actor=Actor, Source=Source, User=User, **kwargs)
    result["seconds"] = time.perf_counter() - started
    result["peak_mb"] = max(0.0, _maxrss_mb() - base)
    queue.put(result)


def phase_ours(*, Actor, Source, User, path, kind, username, dry_run=False):
    from inventory import imports

    data = Path(path).read_bytes()
    actor = Actor.of(User.objects.get(username=username), Source.IMPORT)
    spec = imports.KINDS[kind]
    if dry_run:
        table = imports.read_table(data, Path(path).name, spec)
        plan = spec.plan(table, actor)
    else:
        plan = imports.import_file(kind=kind, data=data, file_name=Path(path).name, actor=actor)
    assert not plan.errors, plan.errors[:3]
    return {"rows": plan.total_rows, "created": plan.created, "updated": plan.updated, "unchanged": plan.unchanged}


def phase_peer(*, Actor, Source, User, path):
    from import_export import fields, resources
    from import_export.formats.base_formats import XLSX
    from import_export.widgets import ForeignKeyWidget

    from inventory.models import Sku, StockLevel, Warehouse

    class StockLevelResource(resources.ModelResource):
        warehouse = fields.Field(attribute="warehouse", column_name="仓库", widget=ForeignKeyWidget(Warehouse, "code"))
        sku = fields.Field(attribute="sku", column_name="SKU编码", widget=ForeignKeyWidget(Sku, "code"))
        on_hand = fields.Field(attribute="on_hand", column_name="盘点数量")

        class Meta:
            model = StockLevel
            fields = ("warehouse", "sku", "on_hand")
            import_id_fields = ("warehouse", "sku")

    dataset = XLSX().create_dataset(Path(path).read_bytes())
    result = StockLevelResource().import_data(dataset, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    return {"rows": result.total_rows}


def phase_export(*, Actor, Source, User, username, fmt, shop=None):
    from django.test import RequestFactory  # noqa: F401 - (no request needed: the module API)

    from orders import exports
    from orders.models import Order

    actor = Actor.of(User.objects.get(username=username), Source.ADMIN)
    orders = Order.objects.filter(shop__code=shop) if shop else None
    table = exports.order_table(actor=actor, orders=orders)
    with tempfile.TemporaryFile() as out:
        if fmt == "xlsx":
            n = exports.write_xlsx(table, out)
        else:
            n = 0
            for chunk in exports.csv_lines(table):
                out.write(chunk.encode("utf-8"))
            n = Order.objects.filter(shop__code=shop).count() if shop else Order.objects.count()
        size = out.tell()
    return {"rows": n, "bytes": size, "pii": table.includes_pii}


def phase_audit(*, Actor, Source, User):
    from inventory.audit import audit

    return {"problems": len(audit()), "rows": 0}


PHASES = {"ours": phase_ours, "peer": phase_peer, "export": phase_export, "audit": phase_audit}


def run(url: str, name: str, **kwargs) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_phase, args=(url, name, kwargs, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--small-orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures as they come, also into a file

    url = database_url(args)
    _common.setup_django(url)
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    workdir = Path(tempfile.mkdtemp(prefix="excel-bench-files-"))
    t0 = time.perf_counter()
    files = setup(args, workdir)
    print(f"excel bench on {engine}: {args.rows:,} SKUs / stock rows, {args.orders:,} orders "
          f"(setup {time.perf_counter() - t0:.1f} s)")

    def line(label: str, r: dict) -> float:
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        extra = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in r.items()
                          if k in ("created", "updated", "unchanged", "bytes", "pii"))
        print(f"  {label:<34} {r['rows']:>8,} rows  {r['seconds']:7.2f} s  {rate:>9,.0f} rows/s  "
              f"peak +{r['peak_mb']:6.1f} MB{'  (' + extra + ')' if extra else ''}")
        return rate

    print("imports")
    dry = run(url, "ours", path=files["stock_file"], kind="stock_count", username="bench-warehouse", dry_run=True)
    line("stock count dry run (preview)", dry)
    ours = run(url, "ours", path=files["stock_file"], kind="stock_count", username="bench-warehouse")
    ours_rate = line("stock count (ours, with ledger)", ours)
    audit = run(url, "audit")
    peer = run(url, "peer", path=files["stock_file"])
    peer_rate = line("stock count (peer ModelResource)", peer)
    ratio = ours_rate / peer_rate if peer_rate else float("inf")
    print(f"  ours / peer: {ratio:.1f}x  (goal >= 5x);  inventory audit after ours: {audit['problems']} problem(s)")
    sku = run(url, "ours", path=files["sku_file"], kind="sku", username="bench-ops")
    sku_rate = line("SKU master (ours)", sku)

    print("exports (as 运营: personal data masked)")
    small = run(url, "export", username="bench-ops", fmt="xlsx", shop="bench-small")
    line(f"orders xlsx {args.small_orders:,}", small)
    big = run(url, "export", username="bench-ops", fmt="xlsx")
    big_rate = line(f"orders xlsx {args.orders:,}", big)
    csv_big = run(url, "export", username="bench-ops", fmt="csv")
    line(f"orders csv {args.orders:,}", csv_big)
    print(f"SUMMARY {engine}: stock count {ours_rate:,.0f} rows/s vs peer {peer_rate:,.0f} rows/s = {ratio:.1f}x; "
          f"SKU master {sku_rate:,.0f} rows/s; export {big_rate:,.0f} rows/s, peak +{small['peak_mb']:.0f} MB at "
          f"{args.small_orders:,} vs +{big['peak_mb']:.0f} MB at {args.orders:,}; audit problems {audit['problems']}")


if __name__ == "__main__":
    main()
