"""bench/webhooks.py — the platform webhook path under load (PostgreSQL + the Redis broker).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderhub REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhooks.py [--senders 50] [--seconds 10] [--rate 0] [--port 8765]
        [--web-workers 2] [--threads 16] [--q-workers 2] [--database NAME]

Uses its own database (`<dbname>_bench`, created and migrated if missing; its order tables are
emptied) and purges the Redis queue it is given. Starts a real web server (gunicorn, gthread
workers, DEBUG off) and a real `qcluster` on the Redis broker, as production runs them, then
`--senders` concurrent senders post signed Shopify `orders/create` webhooks (the real
order.single.json sample, each with its own order id and delivery id) for `--seconds`
seconds: as fast as they are answered (`--rate 0`), or each at `--rate` deliveries per second.
The three SKUs are mapped and in stock, so each order goes the whole way: inbox → task →
adapter → upsert → customer match → allocation.

Prints the answer latency seen by the senders (p50/p99/max) and receipt → order visible
(the inbox row's `received_at` to the order's `created_at`, both taken by the application on
this machine) p50/p99, once every delivery has been processed. Last line: the summary.
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


class Sender:
    def __init__(self, order: dict, base_url: str):
        self.order = order
        self.url = f"{base_url}/hooks/shopify/{SHOP}/"
        self.next_id = 9_000_000_000
        self.answers: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.sent: dict[str, str] = {}  # delivery id → platform order id

    def make(self) -> tuple[bytes, dict[str, str], str, str]:
        self.next_id += 1
        order = copy.deepcopy(self.order)
        order["id"] = self.next_id
        order["name"] = f"#B{self.next_id}"
        order["updated_at"] = order["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        raw = json.dumps(order).encode()
        delivery = str(uuid.uuid4())
        signature = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                   "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Webhook-Id": delivery,
                   "X-Shopify-Shop-Domain": f"{SHOP}.myshopify.com"}
        return raw, headers, delivery, str(self.next_id)

    async def post_one(self, client) -> None:
        raw, headers, delivery, order_id = self.make()
        started = time.perf_counter()
        try:
            response = await client.post(self.url, content=raw, headers=headers)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.answers.append((time.perf_counter() - started) * 1000)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            self.sent[delivery] = order_id

    async def run(self, *, senders: int, seconds: float, rate: float) -> float:
        import httpx

        limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            deadline = time.perf_counter() + seconds

            async def one_sender(i: int) -> None:
                await asyncio.sleep(i / max(1, senders) / max(rate, 1))  # spread the start
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    await self.post_one(client)
                    if rate > 0:
                        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))

            started = time.perf_counter()
            await asyncio.gather(*(one_sender(i) for i in range(senders)))
            return time.perf_counter() - started


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
    parser.add_argument("--rate", type=float, default=1,
                        help="deliveries per second per sender (0: closed loop, as fast as answered)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
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
                          "-w", str(args.web_workers), "-k", "gthread", "--threads", str(args.threads),
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


def run(args, order: dict, children) -> int:
    from orders.models import Order, WebhookEvent, WebhookStatus

    base = f"http://127.0.0.1:{args.port}"
    wait_until(lambda: _server_up(base) or any(c.poll() is not None for c in children), 60, "the web server")
    if any(c.poll() is not None for c in children):
        raise _common.BenchError(SCRIPT, "the web server or the cluster exited at start")
    finished = [WebhookStatus.DONE, WebhookStatus.FAILED, WebhookStatus.DEAD]

    # Warm-up (not measured): both processes up, connections open, code paths imported.
    warm = Sender(order, base)
    warm.next_id = 8_000_000_000
    asyncio.run(warm.run(senders=4, seconds=1.0, rate=5))
    if not warm.sent:
        raise _common.BenchError(SCRIPT, f"warm-up deliveries were not accepted: {warm.statuses} {warm.errors[:1]}")
    if not args.no_cluster:
        wait_until(lambda: WebhookEvent.objects.filter(status__in=finished).count() >= len(warm.sent), 60,
                   "the cluster to process the warm-up")
    warm_ids = set(warm.sent)

    sender = Sender(order, base)
    mode = "as fast as answered" if args.rate <= 0 else f"{args.rate:g}/s each"
    print(f"load: {args.senders} senders for {args.seconds:g} s ({mode}); gunicorn {args.web_workers}×{args.threads} "
          f"threads, qcluster {args.q_workers} workers on Redis", flush=True)
    elapsed = asyncio.run(sender.run(senders=args.senders, seconds=args.seconds, rate=args.rate))
    answers = sorted(sender.answers)
    accepted = len(sender.sent)
    print(f"answers: {len(answers)} in {elapsed:.1f} s ({len(answers) / elapsed:.0f}/s), statuses {sender.statuses}, "
          f"errors {len(sender.errors)}; latency p50 {_common.percentile(answers, 50):.1f} ms, "
          f"p99 {_common.percentile(answers, 99):.1f} ms, max {answers[-1] if answers else 0:.1f} ms", flush=True)

    events = WebhookEvent.objects.exclude(event_id__in=warm_ids)
    if args.no_cluster:
        stored = events.count()
        print(f"webhooks: {accepted} deliveries from {args.senders} senders ({mode}), {stored} inbox rows, no cluster: "
              f"answer p50 {_common.percentile(answers, 50):.1f} ms / p99 {_common.percentile(answers, 99):.1f} ms "
              f"(goal ≤ {GOAL_ANSWER_P99_MS})", flush=True)
        return 0 if stored == accepted and not sender.errors else 1
    drain_started = time.monotonic()
    wait_until(lambda: events.filter(status__in=finished).count() >= accepted, args.drain_timeout,
               "the cluster to process every delivery")
    drained = time.monotonic() - drain_started
    received = dict(events.values_list("event_id", "received_at"))
    by_order = {sender.sent[e]: received[e] for e in received if e in sender.sent}
    created = dict(Order.objects.filter(platform_order_id__in=list(by_order)).values_list("platform_order_id",
                                                                                           "created_at"))
    visible = sorted((created[o] - by_order[o]).total_seconds() * 1000 for o in by_order if o in created)
    statuses = {s: events.filter(status=s).count() for s in WebhookStatus.values}
    allocated = Order.objects.filter(platform_order_id__in=list(by_order), status="allocated").count()
    print(f"processing: {len(visible)} orders visible of {accepted} accepted, inbox {statuses}, allocated {allocated}; "
          f"backlog drained {drained:.1f} s after the load; receipt → visible p50 "
          f"{_common.percentile(visible, 50):.0f} ms, p99 {_common.percentile(visible, 99):.0f} ms", flush=True)
    p99 = _common.percentile(answers, 99)
    v50 = _common.percentile(visible, 50)
    print(f"webhooks: {accepted} deliveries from {args.senders} senders ({mode}): answer p50 "
          f"{_common.percentile(answers, 50):.1f} ms / p99 {p99:.1f} ms (goal ≤ {GOAL_ANSWER_P99_MS}); receipt → visible "
          f"p50 {v50:.0f} ms / p99 {_common.percentile(visible, 99):.0f} ms (goal p50 ≤ {GOAL_VISIBLE_P50_MS})", flush=True)
    return 0 if len(visible) == accepted and not sender.errors else 1


if __name__ == "__main__":
    sys.exit(main())
