from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import pgettext_lazy


class OrdersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "orders"
    verbose_name = pgettext_lazy("app", "订单")

    def ready(self) -> None:
        from config import roles

        # Roles are data: kept in sync after every migrate (and by `setup_roles`).
        post_migrate.connect(roles.sync_roles_after_migrate, dispatch_uid="orderhub-roles")

        from django.db.models.signals import post_save

        from orders import signals

        post_save.connect(signals.sku_mapping_saved, sender="inventory.SkuMapping",
                          dispatch_uid="orderhub-sku-mapping-resolves-orders")

        from orders import stock_push

        stock_push.connect_signals()

        from orders import imports  # noqa: F401 - registers the bulk-ship import kind
