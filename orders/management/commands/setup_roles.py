"""python manage.py setup_roles — create or update the staff role groups (idempotent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from config import roles


class Command(BaseCommand):
    help = "Create or update the staff role groups (客服, 仓管, 财务, 运营, 主管) with exactly their permissions."

    def handle(self, *args, **options):
        result = roles.sync_roles(verbosity=1)
        self.stdout.write(self.style.SUCCESS(f"{len(result)} roles in sync"))
