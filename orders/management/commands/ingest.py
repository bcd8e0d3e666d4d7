"""python manage.py ingest --shop CODE FILE — replay raw platform payloads through the sync path.

FILE holds one order object, the platform's single-order response (Shopify ``{"order": …}``,
Taobao ``trade_fullinfo_get_response``), a list of these, or the platform's list response
(JSON); for a platform whose adapter reads files (the distributor drop: CSV / Excel), the
file itself. Prints ``created=N updated=N unchanged=N failed=N`` and, for each failed payload,
its position (1 = the first payload) and reason; exits non-zero when any payload failed, or
with one clear line (no traceback) when the file, the shop or its adapter is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.actors import Actor, Source
from config.errors import DomainError
from orders.ingest import ingest_payloads, payloads_from_document
from orders.models import Shop
from orders.platforms.registry import adapter_for

FILE_SUFFIXES = {".csv", ".xlsx", ".xls", ".tsv"}


class Command(BaseCommand):
    help = "Replay raw platform payloads (JSON: one order, a list, or the platform's response) into a shop."

    def add_arguments(self, parser):
        parser.add_argument("--shop", required=True, help="shop code (店铺编码)")
        parser.add_argument("file", help="JSON file with the payloads (or CSV/Excel for a distributor shop)")

    def handle(self, *args, shop: str, file: str, **options):
        shop_obj = Shop.objects.filter(code=shop).first()
        if shop_obj is None:
            raise CommandError(f"unknown shop: {shop}")
        try:
            adapter = adapter_for(shop_obj)
        except DomainError as exc:
            raise CommandError(f"shop {shop}: {exc.message}") from None
        path = Path(file)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
        payloads = self._payloads(shop_obj, adapter, path, content)
        actor = Actor.system(f"ingest:{shop_obj.code}", Source.IMPORT)
        report = ingest_payloads(shop=shop_obj, payloads=payloads, actor=actor, adapter=adapter)
        self.stdout.write(report.summary())
        for position, reason in report.failures:
            self.stdout.write(f"failed #{position}: {reason}")
        for order_id, reason in report.allocation_errors:
            self.stdout.write(f"allocation of order id {order_id} failed: {reason}")
        if report.failed:
            raise CommandError(f"{report.failed} of {report.failed + report.created + report.updated + report.unchanged}"
                               " payloads failed")

    def _payloads(self, shop: Shop, adapter, path: Path, content: bytes) -> list:
        parse_file = getattr(adapter, "parse_file", None)
        if path.suffix.lower() in FILE_SUFFIXES:
            if parse_file is None:
                raise CommandError(f"{path.name}: platform {shop.platform} reads JSON payloads, not {path.suffix} files")
            try:
                return list(parse_file(content, path.name))
            except (DomainError, ValueError) as exc:
                raise CommandError(f"{path.name}: {getattr(exc, 'message', None) or exc}") from None
        try:
            doc = json.loads(content.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise CommandError(f"{path.name}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
        if not isinstance(doc, (dict, list)):
            raise CommandError(f"{path.name}: expected an order object, a list or a platform response, got {type(doc).__name__}")
        payloads = payloads_from_document(shop, doc)
        if not payloads:
            self.stderr.write(f"{path.name}: no orders in the document")
        return payloads
