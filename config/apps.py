"""The project's own app: wiring that belongs to no business app."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_cache_table(sender, using: str = "default", verbosity: int = 1, **kwargs) -> None:
    """After `migrate`: create the DatabaseCache table if the settings use one (idempotent)."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=max(0, verbosity - 1))


class CoreConfig(AppConfig):
    name = "config"
    label = "core"
    verbose_name = "Order Hub"

    def ready(self) -> None:
        post_migrate.connect(create_cache_table, sender=self, dispatch_uid="orderhub-createcachetable")
