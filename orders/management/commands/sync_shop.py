"""python manage.py sync_shop CODE — run one sync of one shop now (in this process)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orders import sync
from orders.models import Shop


class Command(BaseCommand):
    help = ("Sync one shop's orders from its platform now: prints created/updated/unchanged/failed; "
            "exits non-zero when the run fails, a payload is refused, or another sync holds the shop.")

    def add_arguments(self, parser):
        parser.add_argument("code", help="the shop's code (店铺编码)")
        parser.add_argument("--max-pages", type=int, default=sync.MAX_PAGES)
        parser.add_argument("--page-size", type=int, default=sync.PAGE_SIZE)

    def handle(self, *args, code: str, max_pages: int, page_size: int, **options):
        shop = Shop.objects.filter(code=code).first()
        if shop is None:
            raise CommandError(f"unknown shop: {code}")
        result = sync.run_sync(shop, owner=sync.default_owner("cli"), max_pages=max(max_pages, 1),
                               page_size=max(page_size, 1))
        if result.outcome == "skipped":
            raise CommandError(f"{shop.code}: skipped, {result.error}")
        self.stdout.write(f"{shop.code}: {result.outcome} {result.line()}"
                          + (f" lag={result.lag_seconds}s" if result.lag_seconds is not None else ""))
        for page, pos, reason in result.failures:
            self.stdout.write(f"  page {page} #{pos}: {reason}")
        if result.outcome == "failed":
            raise CommandError(f"{shop.code}: sync failed: {result.error}")
        if result.failed:
            raise CommandError(f"{shop.code}: {result.failed} payload(s) refused")
