"""bench/webhooks.py — the platform webhook path under load (PostgreSQL + the Redis broker).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhooks.py [--load both|closed|open] [--rate 200] [--senders 50]
        [--seconds 10] [--port 8765] [--web-workers 2] [--threads 16] [--worker-class gthread]
        [--q-workers 2] [--cluster-nice 0] [--no-cluster] [--database NAME]

Uses its own database (`<dbname>_bench`, created and migrated if missing; its order tables are
emptied) and purges the Redis queue it is given. Starts a real web server (gunicorn, DEBUG off)
and a real `qcluster` on the Redis broker, as production runs them, then posts signed Shopify
`orders/create` webhooks (the real order.single.json sample, each with its own order id, buyer
and delivery id) for `--seconds` seconds per phase, through `--senders` keep-alive connections:

- closed loop (`--load closed`): each sender posts again as soon as it is answered. Latency
  is then concurrency / throughput (50 senders at 400 answers/s = 125 ms whatever the code
  does), so this measures the throughput ceiling, not what a platform sees;
- open loop (`--load open`): deliveries arrive at `--rate` per second in total (Poisson), as a
  platform pushes them per event, whether or not earlier ones were answered; latency counts
  from the scheduled send time (waiting for a free sender included).

`--load both` (the default) runs the two, one after the other. The three SKUs are mapped and in
stock, so each order goes the whole way: inbox → drain task → adapter → bulk upsert → customer
match → allocation.

Prints per phase the answer latency (p50/p99/max), and receipt → order visible p50/p99: from
the inbox row's `received_at` to the moment a watcher thread polling the orders table from its
own connection (every 10 ms) first sees the order; with two bounds beside it (the order row's
`created_at`, taken before its transaction commits, and the inbox row's `processed_at`, after
the order is committed and allocated). All clocks are this machine's. Last line: the summary.
The load generator shares the machine's cores with the server and the cluster: it is a lean
asyncio HTTP/1.1 client, not httpx, to take as little of them as it can.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCRIPT = "bench/webhooks.py"
SECRET = "bench-webhook-secret"
SHOP = "bench-shopify"
FIXTURE_CANDIDATES = [_common.REPO_ROOT.parent / "shared" / "fixtures" / "shopify" / "order.single.json",
                      Path("/work/shared/fixtures/shopify/order.single.json")]
GOAL_ANSWER_P99_MS = 20
GOAL_VISIBLE_P50_MS = 83


def load_order() -> dict:
    for candidate in FIXTURE_CANDIDATES:
        if candidate.is_file():
            return json.loads(candidate.read_text())["order"]
    raise _common.BenchError(SCRIPT, "the Shopify sample (../shared/fixtures/shopify/order.single.json) is missing")


def wipe() -> None:
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for label in ("orders", "inventory", "aftersales", "finance")
              if label in {a.label for a in apps.get_app_configs()}
              for m in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")


def build_world(order: dict) -> None:
    from config.actors import Actor
    from inventory import services as stock_services
    from inventory.models import Sku, SkuMapping, Warehouse
    from orders.models import Platform, Shop

    shop = Shop.objects.create(platform=Platform.SHOPIFY, code=SHOP, name="Bench Shopify", webhook_secret=SECRET,
                               currency="USD", time_zone="America/New_York")
    warehouse = Warehouse.objects.create(code="bench-la", name="洛杉矶海外仓", country="US", priority=10)
    actor = Actor.system("bench")
    for line in order["line_items"]:
        sku = Sku.objects.create(code=line["sku"], name=line["title"], category="bench")
        SkuMapping.objects.create(shop=shop, sku=sku, platform_sku_id=str(line["variant_id"]))
        stock_services.stock_receive(warehouse=warehouse, sku=sku, quantity=10_000_000, actor=actor, reason="bench")


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator shares the 2
    cores with the server and the cluster, and httpx costs several times more CPU per request."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            await self.open()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
        self.writer.write(head.encode("latin-1") + body)
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in fields:
            raise RuntimeError(f"answer without Content-Length: {fields}")
        await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status


class Sender:
    def __init__(self, order: dict, base_url: str):
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.path = f"/hooks/shopify/{SHOP}/"
        self.next_id = 9_000_000_000
        self.answers: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.sent: dict[str, str] = {}  # delivery id → platform order id
        order = copy.deepcopy(order)
        order["id"], order["name"] = 1_234_567_890_123, "#B1234567890123"
        order["updated_at"] = order["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        # Each order from its own buyer (a customer id and a valid phone of its own), as a shop's
        # orders are: the sample's buyer repeated thousands of times is not a seller's traffic.
        if isinstance(order.get("customer"), dict):
            order["customer"]["id"] = 1_234_567_890_123
        for key in ("shipping_address", "billing_address"):
            if isinstance(order.get(key), dict):
                order[key]["phone"] = "+1 646 PHONE77"
        # The ids and the phone are put in by replacing these placeholders.
        self.template = json.dumps(order).encode()

    def make(self) -> tuple[bytes, dict[str, str], str, str]:
        self.next_id += 1
        raw = (self.template.replace(b"1234567890123", str(self.next_id).encode())
               .replace(b"PHONE77", str(2_000_000 + self.next_id % 8_000_000).encode()))
        delivery = str(uuid.uuid4())
        signature = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                   "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Webhook-Id": delivery,
                   "X-Shopify-Shop-Domain": f"{SHOP}.myshopify.com"}
        return raw, headers, delivery, str(self.next_id)

    async def post_one(self, conn: Connection, scheduled: float | None = None) -> None:
        """One delivery; its latency counts from ``scheduled`` (open loop: when the platform
        wanted to send it, so time spent waiting for a free connection is counted too)."""
        raw, headers, delivery, order_id = self.make()
        started = time.perf_counter() if scheduled is None else scheduled
        try:
            status = await conn.post(self.path, raw, headers)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            conn.close()
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.answers.append((time.perf_counter() - started) * 1000)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.sent[delivery] = order_id

    async def run(self, *, senders: int, seconds: float, rate: float) -> float:
        """Closed loop (``rate`` 0): each sender posts again as soon as it is answered. Open loop
        (``rate`` > 0): deliveries arrive at ``rate`` per second in total (Poisson arrivals, as
        independent buyers' orders do), each taken by a free sender of ``senders``."""
        conns = [Connection(self.host, self.port) for _ in range(senders)]
        for conn in conns:
            await conn.open()
        started = time.perf_counter()
        deadline = started + seconds
        if rate <= 0:
            async def closed(conn: Connection) -> None:
                while time.perf_counter() < deadline:
                    await self.post_one(conn)

            await asyncio.gather(*(closed(conn) for conn in conns))
        else:
            import random

            arrivals = random.Random(14)
            queue: asyncio.Queue = asyncio.Queue()

            async def produce() -> None:
                at = started
                while True:
                    at += arrivals.expovariate(rate)
                    if at >= deadline:
                        break
                    delay = at - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    queue.put_nowait(at)
                for _ in conns:
                    queue.put_nowait(None)

            async def paced(conn: Connection) -> None:
                while (at := await queue.get()) is not None:
                    await self.post_one(conn, scheduled=at)

            await asyncio.gather(produce(), *(paced(conn) for conn in conns))
        for conn in conns:
            conn.close()
        return time.perf_counter() - started


class Watcher(threading.Thread):
    """Polls the orders table from its own connection and notes when each order first shows.
    Each poll looks back `WINDOW` ids below the highest seen: concurrent transactions commit
    their ids out of order (a drain's batch can commit after a later-numbered one)."""

    INTERVAL = 0.01
    WINDOW = 500

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        from django.db import connection

        from orders.models import Order

        # Every id up to `floor` has been seen: the next poll reads from there (or from the
        # window below the highest id, if a rolled-back id leaves a hole), so a poll costs
        # about the rows that are new, not the whole window.
        floor = last = Order.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        pks: set[int] = set()
        try:
            while not self._halt.is_set():
                rows = list(Order.objects.filter(pk__gt=max(floor, last - self.WINDOW))
                            .exclude(pk__in=[pk for pk in pks if pk > floor]).values_list("pk", "platform_order_id"))
                now = time.time()
                for pk, platform_order_id in rows:
                    self.seen.setdefault(platform_order_id, now)
                    pks.add(pk)
                    last = max(last, pk)
                while floor + 1 in pks:
                    floor += 1
                pks = {pk for pk in pks if pk > floor}
                self._halt.wait(self.INTERVAL)
        finally:
            connection.close()


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its live descendants (Linux /proc; 0 elsewhere)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        parents, cpu = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError):
        return 0.0
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise _common.BenchError(SCRIPT, f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--load", choices=["closed", "open", "both"], default="both",
                        help="closed loop (senders post again as soon as answered), open loop (at --rate), or both")
    parser.add_argument("--rate", type=float, default=200,
                        help="open loop: deliveries per second offered in total (Poisson arrivals)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread or sync)")
    parser.add_argument("--q-workers", type=int, default=2)
    parser.add_argument("--cluster-nice", type=int, default=0,
                        help="run the cluster at this nice level (answers before processing on a busy machine)")
    parser.add_argument("--no-cluster", action="store_true",
                        help="answers only: no cluster, so nothing is processed (isolates the answer path)")
    parser.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for processing to finish")
    parser.add_argument("--database", default=None, help="bench database name (default: <dbname>_bench)")
    args = parser.parse_args(argv)

    base_url = _common.require_postgres_url(SCRIPT)
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith(("redis://", "rediss://")):
        raise _common.BenchError(SCRIPT, "needs the Redis broker: run with REDIS_URL=redis://127.0.0.1:6379/N")
    name = args.database or f"{_common.database_name(base_url) or 'orderhub'}_bench"
    if name in {_common.database_name(base_url), "postgres", "template0", "template1"}:
        raise _common.BenchError(SCRIPT, f"refusing to wipe database {name!r}: the bench needs a database of its own")
    url = _common.with_database(base_url, name)
    created = _common.ensure_database(url, SCRIPT)
    os.environ["SECURE_SSL_REDIRECT"] = "0"  # plain http on 127.0.0.1
    _common.setup_django(url)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would measure the terminal
    from django.core.management import call_command
    from django.db import connection
    from django_q.brokers import get_broker

    print(f"database: {name}" + (" (created)" if created else "")
          + f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    call_command("migrate", verbosity=0, interactive=False)
    wipe()
    get_broker().purge_queue()
    order = load_order()
    build_world(order)
    connection.close()

    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "DEBUG": "0", "SECURE_SSL_REDIRECT": "0",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-secret", "LOG_LEVEL": "WARNING",
           "Q_WORKERS": str(args.q_workers), "DJANGO_SETTINGS_MODULE": "config.settings"}
    manage = [sys.executable, str(_common.REPO_ROOT / "manage.py")]
    children = [
        subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{args.port}",
                          "-w", str(args.web_workers), "-k", args.worker_class, "--threads", str(args.threads),
                          "--log-level", "warning"], cwd=_common.REPO_ROOT, env=env),
    ]
    if not args.no_cluster:
        nice = ["nice", "-n", str(args.cluster_nice)] if args.cluster_nice else []
        children.append(subprocess.Popen(nice + manage + ["qcluster"], cwd=_common.REPO_ROOT, env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        return run(args, order, children)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _server_up(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def _load_label(args, rate: float) -> str:
    if rate <= 0:
        return f"closed loop: {args.senders} senders, each posts again as soon as answered"
    return (f"open loop: {rate:g} deliveries/s offered (Poisson arrivals), up to {args.senders} in flight; "
            f"latency counted from the scheduled send time")


def run_phase(args, order: dict, base: str, rate: float, first_id: int, children) -> tuple[int, dict]:
    from orders.models import Order, WebhookEvent, WebhookStatus

    finished = [WebhookStatus.DONE, WebhookStatus.FAILED, WebhookStatus.DEAD]
    sender = Sender(order, base)
    sender.next_id = first_id
    label = _load_label(args, rate)
    print(f"--- {label}; {args.seconds:g} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    watcher = None if args.no_cluster else Watcher()
    if watcher:
        watcher.start()
    web_cpu = tree_cpu_seconds(children[0].pid)
    cluster_cpu = tree_cpu_seconds(children[1].pid) if len(children) > 1 else 0.0
    elapsed = asyncio.run(sender.run(senders=args.senders, seconds=args.seconds, rate=rate))
    web_cpu = tree_cpu_seconds(children[0].pid) - web_cpu
    answers = sorted(sender.answers)
    accepted = len(sender.sent)
    p50, p99 = _common.percentile(answers, 50), _common.percentile(answers, 99)
    print(f"answers: {len(answers)} in {elapsed:.1f} s ({len(answers) / elapsed:.0f}/s"
          + (f", offered {rate:g}/s" if rate > 0 else "") + f"), statuses {sender.statuses}, errors {len(sender.errors)}"
          + (f" (first: {sender.errors[0]})" if sender.errors else "")
          + f"; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {answers[-1] if answers else 0:.1f} ms", flush=True)
    figures = {"label": "closed" if rate <= 0 else f"open {rate:g}/s", "answers_per_s": len(answers) / elapsed,
               "p50": p50, "p99": p99}
    events = WebhookEvent.objects.filter(event_id__in=list(sender.sent))
    if args.no_cluster:
        print(f"CPU: web server {web_cpu / max(1, len(answers)) * 1000:.2f} ms per answer", flush=True)
        stored = events.count()
        print(f"inbox: {stored} rows for {accepted} accepted deliveries (no cluster: nothing processed)", flush=True)
        return (0 if stored == accepted and not sender.errors else 1), figures
    drain_started = time.monotonic()
    wait_until(lambda: events.filter(status__in=finished).count() >= accepted, args.drain_timeout,
               "the cluster to process every delivery")
    drained = time.monotonic() - drain_started
    watcher.stop()
    cluster_cpu = tree_cpu_seconds(children[1].pid) - cluster_cpu
    rows = list(events.values_list("event_id", "received_at", "processed_at"))
    by_order = {sender.sent[e]: (received, processed) for e, received, processed in rows}
    created = dict(Order.objects.filter(platform_order_id__in=list(by_order)).values_list("platform_order_id",
                                                                                           "created_at"))
    # Lower bound: the order row's created_at (taken when it is built, before its transaction
    # commits). Upper bound: the inbox row's processed_at (written after the order's transaction
    # committed and it was allocated). The order became visible in between.
    created_ms = sorted((created[o] - r).total_seconds() * 1000 for o, (r, _p) in by_order.items() if o in created)
    # Measured: the first time another connection (the watcher) could read the order.
    visible = sorted((watcher.seen[o] - r.timestamp()) * 1000 for o, (r, _p) in by_order.items() if o in watcher.seen)
    processed = sorted((p - r).total_seconds() * 1000 for o, (r, p) in by_order.items() if o in created and p)
    statuses = {s: events.filter(status=s).count() for s in WebhookStatus.values}
    allocated = Order.objects.filter(platform_order_id__in=list(by_order), status="allocated").count()
    v50, v99 = _common.percentile(visible, 50), _common.percentile(visible, 99)
    c50, c99 = _common.percentile(created_ms, 50), _common.percentile(created_ms, 99)
    d50, d99 = _common.percentile(processed, 50), _common.percentile(processed, 99)
    print(f"processing: {len(created)} orders of {accepted} accepted, inbox {statuses}, allocated {allocated}; "
          f"backlog drained {drained:.1f} s after the load", flush=True)
    print(f"CPU (PostgreSQL's not counted): web server {web_cpu / max(1, len(answers)) * 1000:.2f} ms per answer, "
          f"cluster {cluster_cpu / max(1, accepted) * 1000:.2f} ms per processed delivery", flush=True)
    print(f"receipt → order visible to another connection (polled every {Watcher.INTERVAL * 1000:.0f} ms, "
          f"{len(visible)} seen) p50 {v50:.0f} ms, p99 {v99:.0f} ms  [order row built: p50 {c50:.0f} / p99 {c99:.0f} ms; "
          f"inbox event done, order allocated: p50 {d50:.0f} / p99 {d99:.0f} ms]", flush=True)
    figures.update(v50=v50, v99=v99)
    return (0 if len(visible) == accepted and not sender.errors else 1), figures


def run(args, order: dict, children) -> int:
    from orders.models import WebhookEvent, WebhookStatus

    base = f"http://127.0.0.1:{args.port}"
    wait_until(lambda: _server_up(base) or any(c.poll() is not None for c in children), 60, "the web server")
    if any(c.poll() is not None for c in children):
        raise _common.BenchError(SCRIPT, "the web server or the cluster exited at start")
    finished = [WebhookStatus.DONE, WebhookStatus.FAILED, WebhookStatus.DEAD]

    # Warm-up (not measured): both processes up, connections open, code paths imported.
    warm = Sender(order, base)
    warm.next_id = 8_000_000_000
    asyncio.run(warm.run(senders=4, seconds=1.0, rate=20))
    if not warm.sent:
        raise _common.BenchError(SCRIPT, f"warm-up deliveries were not accepted: {warm.statuses} {warm.errors[:1]}")
    if not args.no_cluster:
        wait_until(lambda: WebhookEvent.objects.filter(status__in=finished).count() >= len(warm.sent), 60,
                   "the cluster to process the warm-up")
    print(f"server: gunicorn {args.web_workers} workers × {args.threads} threads ({args.worker_class}); "
          + ("no cluster" if args.no_cluster else f"qcluster {args.q_workers} workers on Redis"), flush=True)
    rates = {"closed": [0.0], "open": [args.rate], "both": [0.0, args.rate]}[args.load]
    code, results = 0, []
    for i, rate in enumerate(rates):
        phase_code, figures = run_phase(args, order, base, rate, first_id=9_000_000_000 + i * 100_000_000,
                                        children=children)
        code |= phase_code
        results.append(figures)
    parts = []
    for f in results:
        part = f"{f['label']}: {f['answers_per_s']:.0f} answers/s, answer p50 {f['p50']:.1f} / p99 {f['p99']:.1f} ms"
        if "v50" in f:
            part += f", receipt → visible p50 {f['v50']:.0f} / p99 {f['v99']:.0f} ms"
        parts.append(part)
    print(f"webhooks ({args.senders} senders, {args.seconds:g} s each, load avg {os.getloadavg()[0]:.1f}; goals answer "
          f"p99 ≤ {GOAL_ANSWER_P99_MS} ms, visible p50 ≤ {GOAL_VISIBLE_P50_MS} ms): " + "; ".join(parts), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
