"""python manage.py seed_demo [--password P] [--webhook-secret S] [--orders N] [--seed N]"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from orders import demo
from orders.models import HoldReason, OrderStatus


class Command(BaseCommand):
    help = ("Create the demo: 7 shops, 6 warehouses, SKUs and stock, routing rules, staff logins and a few "
            "hundred orders in every state. Idempotent: a second run only resets passwords and webhook secrets.")

    def add_arguments(self, parser):
        parser.add_argument("--password", default=demo.DEFAULT_PASSWORD,
                            help=f"password for every demo login (default: {demo.DEFAULT_PASSWORD})")
        parser.add_argument("--webhook-secret", default=demo.DEFAULT_WEBHOOK_SECRET,
                            help=f"webhook secret of every demo shop (default: {demo.DEFAULT_WEBHOOK_SECRET})")
        parser.add_argument("--orders", type=int, default=demo.DEFAULT_ORDERS,
                            help=f"how many orders to create on the first run (default: {demo.DEFAULT_ORDERS})")
        parser.add_argument("--seed", type=int, default=demo.DEFAULT_SEED,
                            help="random seed: the same seed gives the same orders")

    def handle(self, *args, **options):
        if options["orders"] < 0:
            raise CommandError("--orders must be 0 or more")
        if not options["password"]:
            raise CommandError("--password must not be empty")
        started = time.monotonic()
        verbose = options["verbosity"] >= 2

        def progress(done: int, total: int) -> None:
            if verbose and (done % 50 == 0 or done == total):
                self.stdout.write(f"  {done}/{total} orders")

        try:
            result = demo.seed(password=options["password"], webhook_secret=options["webhook_secret"],
                               orders=options["orders"], seed=options["seed"], progress=progress)
        except RuntimeError as exc:  # the audit refused the result; the transaction was rolled back
            raise CommandError(str(exc)) from exc
        elapsed = time.monotonic() - started

        if result.created:
            self.stdout.write(self.style.SUCCESS(f"Demo data seeded in {elapsed:.1f}s."))
        else:
            self.stdout.write(self.style.WARNING(
                "Demo data already seeded: nothing created; passwords and webhook secrets reset."))
        self._summary(result)
        self._logins(options["password"], options["webhook_secret"])

    def _summary(self, result: demo.SeedResult) -> None:
        counts = result.counts
        self.stdout.write(
            f"\n{counts['shops']} shops, {counts['warehouses']} warehouses, {counts['skus']} SKUs "
            f"({counts['sku_mappings']} platform mappings), {counts['routing_rules']} routing rules, "
            f"{counts['stock_pools']} stock pools / {counts['stock_moves']} ledger moves, "
            f"{counts['customers']} customers"
        )
        self.stdout.write(f"{result.orders} orders:")
        labels = dict(OrderStatus.choices)
        reasons = dict(HoldReason.choices)
        for status, count in result.by_status.items():
            line = f"  {status:<18} {labels[status]:<6} {count:>5}"
            if status == OrderStatus.ON_HOLD and result.by_hold_reason:
                line += "   (" + ", ".join(f"{reasons.get(r, r)} {n}" for r, n in result.by_hold_reason.items()) + ")"
            self.stdout.write(line)
        self.stdout.write("inventory audit OK: every pool equals its ledger")

    def _logins(self, password: str, webhook_secret: str) -> None:
        self.stdout.write("\nLogins (password for all: " + self.style.SUCCESS(password) + "):")
        for username, role, *_ in demo.USERS:
            self.stdout.write(f"  {username:<11} {role or 'superuser'}")
        self.stdout.write(f"Webhook secret of every demo shop: {webhook_secret}")
        self.stdout.write(f"H5 demo customer phone: {demo.DEMO_PHONE}")
        for label, url in demo.URLS:
            self.stdout.write(f"  {label:<10} {url}")
