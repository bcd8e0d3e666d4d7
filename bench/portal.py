"""Customer portal under load on PostgreSQL: order list and order timeline of logged-in
customers, against the same server's trivial view (the framework's ceiling here).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub .venv/bin/python bench/portal.py \
        [--orders 1000000 --customers 200000 --concurrency 50 --duration 20 --workers 3]

Uses its own database (`<dbname>_portal_bench`, created and migrated if missing). The data
set (orders, lines, public and internal timeline events) is built once with COPY and kept
for the next run while its size matches (`--rebuild` forces it). The server runs as in
production: gunicorn (sync workers), DEBUG off, whitenoise with collected static files,
and Redis for cache and sessions (`--redis-url`; `--redis-url ''` = database cache and
database sessions, the setup without Redis).
The load generator is a closed loop on 127.0.0.1: `--concurrency` connections, each sending
its next request when the last one finished, for `--duration` seconds per phase, the phases
taking turns in `--rounds` slices (so other load on a shared machine hits all alike). Every
answer must be 200 and the logged-in page (a redirect to the login page would be fast and
wrong): anything else is counted as an error. Prints requests/s and p50/p99 per phase, and
the ratio to the trivial view; the last line is a one-line summary. No asserts on time.

The render cache (portal/pagecache.py, `--page-cache-seconds`, 0 = off) is measured both
ways. First every list and order page is requested once (the cache fill: all misses). The
steady phases (list, timeline, mixed) then run on the filled cache; the cold phases
(list-miss, timeline-miss) empty the cache's page fragments before each slice and visit
each page at most once per slice, so they measure the miss path (fingerprint, render,
store) as after a change of the data. Each phase prints its hit ratio, counted from the
fragments the cache gained (a miss stores one): requests minus new fragments. A second
server runs the same code without the page cache (list-nocache, timeline-nocache; idle
while the others are measured, `--no-uncached` skips it), in the same interleaved rounds,
so before and after are compared under the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

# This file is named like the Django app `portal`: keep its folder off sys.path, or
# `import portal` would import this script.
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO_ROOT))
_spec = importlib.util.spec_from_file_location("_bench_common", BENCH_DIR / "_common.py")
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)

SCRIPT = "portal"
SECRET = "bench-only-not-secret"
PLATFORMS = ["taobao", "jd", "pdd", "douyin", "miniapp", "shopify", "amazon"]
# status → share of orders; events follow the lifecycle up to that status.
STATUSES = [("pending_payment", 3), ("paid", 6), ("allocated", 5), ("packed", 3), ("shipped", 12),
            ("delivered", 21), ("completed", 45), ("cancelled", 5)]
PATH_OF = {
    "pending_payment": ["created"], "paid": ["created", "paid"], "allocated": ["created", "paid", "allocated"],
    "packed": ["created", "paid", "allocated", "packed"],
    "shipped": ["created", "paid", "allocated", "packed", "shipped"],
    "delivered": ["created", "paid", "allocated", "packed", "shipped", "delivered"],
    "completed": ["created", "paid", "allocated", "packed", "shipped", "delivered", "completed"],
    "cancelled": ["created", "paid", "cancelled"],
}
TO_STATUS = {"created": "pending_payment", "paid": "paid", "allocated": "allocated", "packed": "packed",
             "shipped": "shipped", "delivered": "delivered", "completed": "completed", "cancelled": "cancelled"}
TITLES = ["折叠收纳盆", "厨房置物架", "保温杯 500ml", "硅胶锅铲", "棉麻抱枕", "洗碗海绵 10 片", "桌面收纳盒", "晾衣夹 20 个"]
PROVINCES = [("江苏省", "苏州市", "姑苏区"), ("浙江省", "杭州市", "西湖区"), ("上海市", "上海市", "浦东新区"),
             ("北京市", "北京市", "朝阳区"), ("广东省", "深圳市", "南山区"), ("四川省", "成都市", "武侯区")]
CARRIERS = ["SF", "YTO", "ZTO", "YD", "JD"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--sessions", type=int, default=1000, help="logged-in customers the load is spread over")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    # CPUs + 1: on 2 CPUs shared with PostgreSQL and the load generator, 3 workers beat the
    # textbook 2 × CPUs + 1 (list 132 vs 105 req/s in one comparison).
    p.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1, help="gunicorn sync workers")
    p.add_argument("--rounds", type=int, default=4, help="the phases take turns, this many times")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--database", default="", help="database name (default <dbname>_portal_bench)")
    # Production runs with Redis (cache, rate limits, sessions): so does the bench, server and all.
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9",
                   help="REDIS_URL for the server ('' = none: database cache and sessions)")
    p.add_argument("--page-cache-seconds", type=int, default=600,
                   help="PORTAL_PAGE_CACHE_SECONDS for the server (0 = render every page, no cold phases)")
    p.add_argument("--no-uncached", action="store_true",
                   help="skip the second server without the page cache (phases list-nocache, timeline-nocache)")
    return p.parse_args()


# --- the data set ---------------------------------------------------------------------------
def build(url: str, args) -> None:
    """Wipe and fill orders, lines and events with COPY (bench setup only: the application
    always goes through the services). Events carry internal `message`s like the services
    write, so a leak would show."""
    import psycopg
    from psycopg.types.json import Jsonb

    from orders.models import Order, OrderEvent, OrderLine, Shop

    rnd = random.Random(args.seed)
    now = datetime.now(dt_timezone.utc)
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE orders_orderevent, orders_orderline, orders_order, orders_customer, orders_shop, "
                     "portal_portallogincode, portal_portalsmsoutbox, django_session RESTART IDENTITY CASCADE")
        # Every Shop column from the model (defaults for the ones the bench does not care about),
        # so a new Shop field does not break the COPY.
        shop_fields = [f for f in Shop._meta.concrete_fields if f.column != "id"]
        shop_defaults = {}
        for f in shop_fields:
            value = f.get_default()
            shop_defaults[f.column] = Jsonb(value) if f.get_internal_type() == "JSONField" else value
        with conn.cursor().copy(f"COPY orders_shop ({', '.join(f.column for f in shop_fields)}) FROM STDIN") as copy:
            for platform in PLATFORMS:
                row = dict(shop_defaults)
                row.update(platform=platform, code=f"bench-{platform}", name=f"压测店 {platform}", ship_within_hours=48,
                           time_zone="Asia/Shanghai", currency="CNY", sync_enabled=False, is_active=True, created_at=now)
                copy.write_row([row[f.column] for f in shop_fields])
        with conn.cursor().copy("COPY orders_customer (id, phone, name, tags, created_at) FROM STDIN") as copy:
            for c in range(1, args.customers + 1):
                copy.write_row((c, f"+86139{c:08d}", "王" + "先生", Jsonb([]), now))
        fields = [f for f in Order._meta.concrete_fields]
        names = [f.column for f in fields]
        defaults = {}
        for f in fields:
            value = f.get_default()
            defaults[f.column] = Jsonb(value) if f.get_internal_type() == "JSONField" else value
        statuses = [s for s, _ in STATUSES]
        weights = [w for _, w in STATUSES]
        started = time.perf_counter()
        plan = []  # (status, placed_at) per order, for its lines and events
        with conn.cursor().copy(f"COPY orders_order ({', '.join(names)}) FROM STDIN") as copy:
            for i in range(1, args.orders + 1):
                customer = 1 + int(args.customers * rnd.random() ** 1.3) % args.customers
                status = rnd.choices(statuses, weights)[0]
                placed = now - timedelta(seconds=rnd.randrange(365 * 86400))
                province, city, district = PROVINCES[i % len(PROVINCES)]
                amount = f"{rnd.randrange(990, 99900) / 100:.2f}"
                gift_to = f"139{(customer % args.customers) + 1:08d}" if rnd.random() < 0.02 else f"139{customer:08d}"
                row = dict(defaults)
                row.update(id=i, number=f"OHB{i:011d}", shop_id=1 + i % len(PLATFORMS), platform_order_id=f"B{i}",
                           customer_id=customer, status=status, goods_amount=amount, paid_amount=amount,
                           receiver_name="王先生", receiver_phone=gift_to,
                           receiver_phone_normalized=f"+86{gift_to}", province=province, city=city,
                           district=district, address="人民路 1 号", placed_at=placed,
                           paid_at=None if status == "pending_payment" else placed + timedelta(minutes=1),
                           promised_ship_at=placed + timedelta(hours=48), created_at=placed, updated_at=placed,
                           seller_note="内部备注 SECRET")
                copy.write_row([row[n] for n in names])
                plan.append((status, placed))
        def copy_rows(model, rows):
            """COPY dicts into `model`'s table: every concrete column, model defaults for the rest."""
            cols = [f for f in model._meta.concrete_fields if f.column != "id"]
            base = {}
            for f in cols:
                value = f.get_default()
                base[f.column] = Jsonb(value) if f.get_internal_type() == "JSONField" else value
            with conn.cursor().copy(f"COPY {model._meta.db_table} ({', '.join(f.column for f in cols)}) FROM STDIN") as cp:
                for row in rows:
                    full = dict(base)
                    full.update(row)
                    cp.write_row([full[f.column] for f in cols])

        copy_rows(OrderLine, ({"order_id": i, "platform_sku_id": f"S{i % 500}", "title": TITLES[i % len(TITLES)],
                               "quantity": 1 + i % 3, "unit_price": "19.90", "discount_amount": "0.00", "is_gift": False}
                              for i in range(1, args.orders + 1)))

        def events():
            for i, (status, placed) in enumerate(plan, start=1):
                previous = ""
                for step, kind in enumerate(PATH_OF[status]):
                    data, message = {}, {"allocated": "分配至 苏州仓(SECRET)", "cancelled": "订单已取消: SECRET"}.get(kind, kind)
                    if kind == "shipped":
                        carrier = CARRIERS[i % len(CARRIERS)]
                        data = {"warehouse": "suzhou", "carrier": carrier, "tracking_number": f"{carrier}{i:012d}"}
                    yield {"order_id": i, "kind": kind, "from_status": previous, "to_status": TO_STATUS[kind],
                           "message": message, "actor_label": "bench", "source": "system", "is_public": True,
                           "data": Jsonb(data), "occurred_at": placed + timedelta(hours=6 * step)}
                    previous = TO_STATUS[kind]
                if i % 7 == 0:  # an internal note some staff typed
                    yield {"order_id": i, "kind": "note", "from_status": "", "to_status": "",
                           "message": "客户很难缠 SECRET", "actor_label": "客服小王", "source": "admin",
                           "is_public": False, "data": Jsonb({}), "occurred_at": placed + timedelta(hours=1)}

        copy_rows(OrderEvent, events())
        for table in ("orders_order", "orders_customer", "orders_shop", "orders_orderline", "orders_orderevent"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.execute("ANALYZE")
        print(f"built: {args.orders:,} orders, {args.customers:,} customers, "
              f"{conn.execute('SELECT count(*) FROM orders_orderevent').fetchone()[0]:,} events "
              f"in {time.perf_counter() - started:.0f} s")


def ensure_data(url: str, args) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]
        customers = conn.execute("SELECT count(*) FROM orders_customer").fetchone()[0]
    if args.rebuild or have != args.orders or customers != args.customers:
        print(f"building the data set ({have:,} orders there, {args.orders:,} wanted) …", flush=True)
        build(url, args)
    else:
        print(f"reusing the data set: {have:,} orders, {customers:,} customers")


def make_sessions(args) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(cookie, list path) and (cookie, order path) for logged-in customers, made the way the
    portal makes them (the same session keys); the login flow itself is not what is measured."""
    from importlib import import_module

    from django.conf import settings

    SessionStore = import_module(settings.SESSION_ENGINE).SessionStore  # what the server reads

    from orders.models import Customer, Order
    from portal.selectors import order_token

    rnd = random.Random(args.seed + 1)
    ids = rnd.sample(range(1, args.customers + 1), min(args.sessions, args.customers))
    lists, details = [], []
    phones = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "phone"))
    orders: dict[int, list[int]] = {}
    for order_id, customer_id in Order.objects.filter(customer_id__in=ids).values_list("pk", "customer_id"):
        orders.setdefault(customer_id, []).append(order_id)
    for cid in ids:
        if cid not in orders:
            continue
        store = SessionStore()
        store["portal_phone"], store["portal_seen"] = phones[cid], int(time.time())
        store.create()
        lists.append((store.session_key, "/h5/orders/"))
        for order_id in rnd.sample(orders[cid], min(3, len(orders[cid]))):
            details.append((store.session_key, f"/h5/orders/{order_token(phone=phones[cid], order_id=order_id)}/"))
    return lists, details


def profile_queries(lists, details) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for name, (cookie, path) in (("list", lists[0]), ("timeline", details[0])):
        client = Client()
        client.cookies["sessionid"] = cookie
        for attempt in ("", " again"):  # with the page cache: a miss, then a hit
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            counts[name + attempt] = len(queries.captured_queries)
    return counts


# --- the server -------------------------------------------------------------------------------
WSGI_MODULE = '''
from config.wsgi import application  # the production entry point
from django.http import HttpResponse
from django.urls import clear_url_caches, path
import config.urls

def trivial(request):
    return HttpResponse(b"ok", content_type="text/plain")

config.urls.urlpatterns.insert(0, path("bench-trivial/", trivial))
clear_url_caches()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(url: str, page_cache_seconds: int) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=url, DEBUG="0", SECRET_KEY=SECRET, SECURE_SSL_REDIRECT="0", LOG_LEVEL="WARNING",
               ALLOWED_HOSTS="127.0.0.1,localhost,testserver", DJANGO_SETTINGS_MODULE="config.settings",
               PORTAL_PAGE_CACHE_SECONDS=str(page_cache_seconds))
    return env


class PageCacheProbe:
    """Counts and drops the portal's cached page fragments (portal.pagecache.KEY_PREFIX) in
    the server's cache: Redis (only its own database number) or the database cache table."""

    def __init__(self, redis_url: str, db_url: str):
        from portal.pagecache import KEY_PREFIX

        self.pattern = f"*{KEY_PREFIX}*"
        if redis_url:
            import redis

            self.redis, self.db_url = redis.Redis.from_url(redis_url), ""
        else:
            from django.conf import settings

            self.redis, self.db_url = None, db_url
            from portal.pagecache import CACHE_ALIAS

            self.table = settings.CACHES[CACHE_ALIAS if CACHE_ALIAS in settings.CACHES else "default"]["LOCATION"]
        self.like = f"%{KEY_PREFIX}%"

    def count(self) -> int:
        if self.redis is not None:
            return sum(1 for _ in self.redis.scan_iter(match=self.pattern, count=1000))
        import psycopg

        with psycopg.connect(self.db_url) as conn:
            return conn.execute(f"SELECT count(*) FROM {self.table} WHERE cache_key LIKE %s", [self.like]).fetchone()[0]

    def clear(self) -> None:
        if self.redis is not None:
            keys = list(self.redis.scan_iter(match=self.pattern, count=1000))
            for start in range(0, len(keys), 500):
                self.redis.delete(*keys[start:start + 500])
            return
        import psycopg

        with psycopg.connect(self.db_url) as conn:
            conn.execute(f"DELETE FROM {self.table} WHERE cache_key LIKE %s", [self.like])


def start_server(url: str, workers: int, tmp: Path, page_cache_seconds: int) -> tuple[subprocess.Popen, int]:
    (tmp / "bench_portal_wsgi.py").write_text(WSGI_MODULE)
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen([str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                             "--pythonpath", f"{tmp},{REPO_ROOT}", "--chdir", str(REPO_ROOT), "--log-level", "warning",
                             "--backlog", "2048", "bench_portal_wsgi:application"], env=server_env(url, page_cache_seconds))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise _common.BenchError(SCRIPT, "gunicorn did not start")


# --- the load generator ------------------------------------------------------------------------
async def fetch(port: int, path: str, cookie: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: sessionid={cookie}\r\n"
                  "Accept-Language: zh-hans\r\nConnection: close\r\n\r\n").encode())
    await writer.drain()
    data = await reader.read()  # sync workers close the connection after each response
    writer.close()
    status = int(data[9:12]) if data.startswith(b"HTTP/1.") else 0
    return status, data


async def run_phase(port: int, targets: list[tuple[str, str]], marker: bytes, concurrency: int, duration: float,
                    seed: int, *, unique: bool = False, once: bool = False) -> dict:
    """One closed-loop slice: raw latencies (s), error count, wall time and client CPU seconds.
    Targets are drawn at random; `unique`: in a shuffled order, each once before any again;
    `once`: each target exactly once, then stop (whatever the duration)."""
    latencies: list[float] = []
    errors = 0
    rnd = random.Random(seed)
    stop_at = time.perf_counter() + duration
    order = list(range(len(targets)))
    rnd.shuffle(order)
    drawn = 0

    def next_target():
        nonlocal drawn
        if not (unique or once):
            return targets[rnd.randrange(len(targets))]
        if once and drawn >= len(order):
            return None
        target = targets[order[drawn % len(order)]]
        drawn += 1
        return target

    async def worker():
        nonlocal errors
        while once or time.perf_counter() < stop_at:
            target = next_target()
            if target is None:
                return
            cookie, path = target
            started = time.perf_counter()
            try:
                status, body = await fetch(port, path, cookie)
            except OSError:
                status, body = 0, b""
            elapsed = time.perf_counter() - started
            if status == 200 and marker in body:
                latencies.append(elapsed)
            else:
                errors += 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"latencies": latencies, "errors": errors, "wall": wall,
            "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime}


def summarize(slices: list[dict]) -> dict:
    latencies = sorted(x for s in slices for x in s["latencies"])
    wall = sum(s["wall"] for s in slices) or 1
    requests = len(latencies) + sum(s["errors"] for s in slices)
    stored = sum(s.get("stored", 0) for s in slices)
    return {"requests": len(latencies), "errors": sum(s["errors"] for s in slices), "rps": len(latencies) / wall,
            "p50": _common.percentile(latencies, 50) * 1000, "p99": _common.percentile(latencies, 99) * 1000,
            "client_cpu": sum(s["cpu"] for s in slices) / wall,
            "hit": max(0.0, 1 - stored / requests) if requests and "stored" in slices[0] else None}


def print_results(results: dict[str, dict]) -> None:
    for label, r in results.items():
        hit = f"   cache hits {r['hit'] * 100:5.1f} %" if r["hit"] is not None else ""
        print(f"{label:13s} {r['rps']:8.1f} req/s   p50 {r['p50']:7.1f} ms   p99 {r['p99']:7.1f} ms   "
              f"ok {r['requests']:>7}   errors {r['errors']:>4}   client CPU {r['client_cpu'] * 100:4.0f} %{hit}")


def main() -> None:
    args = parse_args()
    base = _common.require_postgres_url(SCRIPT)
    name = args.database or f"{_common.database_name(base)}_portal_bench"
    url = _common.with_database(base, name)
    _common.ensure_database(url, SCRIPT)
    os.environ.update(SECURE_SSL_REDIRECT="0", ALLOWED_HOSTS="127.0.0.1,localhost,testserver", SECRET_KEY=SECRET)
    os.environ["REDIS_URL"] = args.redis_url  # the server inherits it (server_env)
    os.environ["PORTAL_PAGE_CACHE_SECONDS"] = str(args.page_cache_seconds)
    _common.setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG off: whitenoise's manifest
    ensure_data(url, args)
    lists, details = make_sessions(args)
    mixed = lists + details
    queries = profile_queries(lists, details)
    from django.conf import settings

    print(f"settings: SESSION_ENGINE {settings.SESSION_ENGINE}, cache {settings.CACHES['default']['BACKEND']}, "
          f"REDIS_URL {'set' if args.redis_url else 'unset'}")
    print(f"sessions: {len(lists)} logged-in customers, {len(details)} order pages; "
          f"queries per request: list {queries['list']} then {queries['list again']}, "
          f"timeline {queries['timeline']} then {queries['timeline again']} (the second request of a page)")
    from django.db import connections

    connections.close_all()
    cached = args.page_cache_seconds > 0
    probe = PageCacheProbe(args.redis_url, url) if cached else None
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(url, args.workers, Path(tmp), args.page_cache_seconds)
        # The same code without the page cache, on a second server that idles while the
        # first is measured: its phases take turns with the others, under the same load.
        plain = start_server(url, args.workers, Path(tmp), 0) if cached and not args.no_uncached else None
        try:
            print(f"server: gunicorn, {args.workers} sync workers, DEBUG off, on 127.0.0.1:{port}; "
                  f"load: {args.concurrency} connections, {args.duration:.0f} s per phase, {os.cpu_count()} CPUs shared; "
                  f"page cache {f'{args.page_cache_seconds} s' if cached else 'off'}")
            phases = [("trivial", [("-", "/bench-trivial/")], b"ok"),
                      ("list", lists, "我的订单".encode()),
                      ("timeline", details, "订单进度".encode()),
                      ("mixed", mixed, "订单".encode())]
            cold = [("list-miss", lists, "我的订单".encode()), ("timeline-miss", details, "订单进度".encode())]
            if plain is not None:
                phases += [("list-nocache", lists, "我的订单".encode()), ("timeline-nocache", details, "订单进度".encode())]
                asyncio.run(run_phase(plain[1], mixed, b"", args.concurrency, 3, args.seed))
            asyncio.run(run_phase(port, mixed, b"", args.concurrency, 3, args.seed))  # warm up every worker

            def one_slice(label, targets, marker, seed, *, clear=False, unique=False, once=False):
                if probe is not None and clear:
                    probe.clear()
                uncached = label.endswith("-nocache")
                before = probe.count() if probe is not None and label != "trivial" and not uncached else None
                result = asyncio.run(run_phase(plain[1] if uncached else port, targets, marker, args.concurrency,
                                               args.duration / args.rounds, seed, unique=unique, once=once))
                if before is not None:
                    result["stored"] = max(0, probe.count() - before)
                return result

            if probe is not None:
                probe.clear()
                fill = summarize([one_slice("fill", mixed, "订单".encode(), args.seed, once=True)])
                print(f"cache fill: every page once ({fill['requests']} pages, all misses): {fill['rps']:.1f} req/s "
                      f"p50 {fill['p50']:.1f} ms p99 {fill['p99']:.1f} ms, cache hits {fill['hit'] * 100:.1f} %")
            # The phases take turns in short slices, so a change in the machine's other load
            # (a shared box) falls on every phase alike and the ratios stay fair.
            slices: dict[str, list[dict]] = {label: [] for label, _, _ in phases}
            load_before = os.getloadavg()[0]
            for round_no in range(args.rounds):
                for label, targets, marker in phases:
                    slices[label].append(one_slice(label, targets, marker, args.seed + round_no))
            results = {label: summarize(parts) for label, parts in slices.items()}
            print(f"machine load average {load_before:.1f} → {os.getloadavg()[0]:.1f} "
                  f"({args.rounds} rounds, phases interleaved; steady state: the cache filled)")
            print_results(results)
            if probe is not None:
                # After the steady phases (they would find the cache emptied): each slice
                # starts on an empty cache and visits each page at most once.
                cold_slices: dict[str, list[dict]] = {label: [] for label, _, _ in cold}
                load_before = os.getloadavg()[0]
                for round_no in range(args.rounds):
                    for label, targets, marker in cold:
                        cold_slices[label].append(one_slice(label, targets, marker, args.seed + 100 + round_no,
                                                            clear=True, unique=True))
                cold_results = {label: summarize(parts) for label, parts in cold_slices.items()}
                print(f"machine load average {load_before:.1f} → {os.getloadavg()[0]:.1f} "
                      f"(cold: the cache's page fragments emptied before each slice)")
                print_results(cold_results)
                results.update(cold_results)
        finally:
            for server in (proc, plain[0] if plain is not None else None):
                if server is not None:
                    server.terminate()
                    server.wait(timeout=30)
    ceiling = results["trivial"]["rps"] or 1
    for label in [k for k in results if k != "trivial"]:
        r = results[label]
        print(f"ratio {label}/trivial: {r['rps'] / ceiling * 100:5.1f} %   "
              f"(goals: p99 ≤ 100 ms → {'met' if r['p99'] <= 100 else 'missed'}, "
              f"≥ 50 % of the ceiling → {'met' if r['rps'] / ceiling >= 0.5 else 'missed'})")
    errors = sum(r["errors"] for r in results.values())
    r_list, r_tl = results["list"], results["timeline"]
    cold_line = ""
    if "list-nocache" in results:
        r_ln, r_tn = results["list-nocache"], results["timeline-nocache"]
        cold_line += (f"; without the page cache: list {r_ln['rps']:.0f} req/s p99 {r_ln['p99']:.0f} ms, "
                      f"timeline {r_tn['rps']:.0f} req/s p99 {r_tn['p99']:.0f} ms")
    if "list-miss" in results:
        r_lm, r_tm = results["list-miss"], results["timeline-miss"]
        cold_line += (f"; misses: list {r_lm['rps']:.0f} req/s p99 {r_lm['p99']:.0f} ms, "
                     f"timeline {r_tm['rps']:.0f} req/s p99 {r_tm['p99']:.0f} ms")
    hits = (f" (cache hits {r_list['hit'] * 100:.0f} % / {r_tl['hit'] * 100:.0f} %)"
            if r_list["hit"] is not None else " (page cache off)")
    print(f"portal: {args.orders:,} orders; list {r_list['rps']:.0f} req/s p50 {r_list['p50']:.0f} ms "
          f"p99 {r_list['p99']:.0f} ms; timeline {r_tl['rps']:.0f} req/s p50 {r_tl['p50']:.0f} ms "
          f"p99 {r_tl['p99']:.0f} ms{hits}; trivial {ceiling:.0f} req/s; ratio list {r_list['rps'] / ceiling * 100:.0f} % "
          f"timeline {r_tl['rps'] / ceiling * 100:.0f} %{cold_line}; errors {errors}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
