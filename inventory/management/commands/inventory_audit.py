from django.core.management.base import BaseCommand, CommandError

from inventory.audit import audit
from inventory.models import StockLevel, StockMove


class Command(BaseCommand):
    help = "Check that every stock pool equals the sum of its ledger moves and every invariant holds."

    def handle(self, *args, **options):
        problems = audit()
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(f"inventory audit FAILED: {len(problems)} problem(s)")
        self.stdout.write(
            f"inventory audit OK: {StockLevel.objects.count()} pools, {StockMove.objects.count()} moves balance"
        )
