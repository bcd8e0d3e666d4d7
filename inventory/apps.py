from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import pgettext_lazy


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"
    verbose_name = pgettext_lazy("app", "库存")

    def ready(self) -> None:
        from inventory.models import RoutingRule, Warehouse, bump_routing_version

        # Any change to what routing reads invalidates every process's routing cache.
        for model in (RoutingRule, Warehouse):
            post_save.connect(bump_routing_version, sender=model, dispatch_uid=f"routing-version-save-{model.__name__}")
            post_delete.connect(bump_routing_version, sender=model, dispatch_uid=f"routing-version-delete-{model.__name__}")
