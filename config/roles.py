"""Staff roles (RBAC): groups and the permissions each holds.

Kept in sync after every `migrate` (post_migrate) and by `python manage.py setup_roles`.
Permissions named here are "app_label.codename".
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

TRANSITIONS = ["pay", "allocate", "hold", "release", "pack", "ship", "deliver", "complete", "cancel", "return"]


def _view(*models: str) -> list[str]:
    return [f"{m.split('.')[0]}.view_{m.split('.')[1]}" for m in models]


ORDER_VIEW = _view("orders.order", "orders.orderline", "orders.orderevent", "orders.customer", "orders.shop")
STOCK_VIEW = _view("inventory.warehouse", "inventory.sku", "inventory.skumapping", "inventory.stocklevel", "inventory.reservation", "inventory.stockmove", "inventory.routingrule")

ROLES: dict[str, dict] = {
    "customer_service": {
        "name": "客服",
        "label": _("客服"),
        "perms": ORDER_VIEW + STOCK_VIEW + [
            "orders.view_pii",
            "orders.hold_order",
            "orders.release_order",
            "orders.cancel_order",
            "orders.complete_order",
            "orders.change_order",  # notes only: the status is read-only everywhere
        ],
    },
    "warehouse": {
        "name": "仓管",
        "label": _("仓管"),
        "perms": ORDER_VIEW + STOCK_VIEW + [
            "orders.allocate_order",
            "orders.pack_order",
            "orders.ship_order",
            "orders.deliver_order",
            "orders.hold_order",
            "inventory.receive_stock",
            "inventory.adjust_stock",
            "inventory.confirm_reservation",
        ],
    },
    "finance": {
        "name": "财务",
        "label": _("财务"),
        "perms": ORDER_VIEW + STOCK_VIEW,
    },
    "operations": {
        "name": "运营",
        "label": _("运营"),
        "perms": ORDER_VIEW + STOCK_VIEW + [
            "orders.add_shop", "orders.change_shop",
            "inventory.add_warehouse", "inventory.change_warehouse",
            "inventory.add_sku", "inventory.change_sku",
            "inventory.add_skumapping", "inventory.change_skumapping", "inventory.delete_skumapping",
            "inventory.add_routingrule", "inventory.change_routingrule", "inventory.delete_routingrule",
            "inventory.receive_stock", "inventory.adjust_stock", "inventory.confirm_reservation",
            "orders.allocate_order", "orders.hold_order", "orders.release_order",
        ],
    },
    "supervisor": {
        "name": "主管",
        "label": _("主管"),
        "perms": ORDER_VIEW + STOCK_VIEW + ["orders.view_pii", "orders.change_order"]
        + [f"orders.{t}_order" for t in TRANSITIONS]
        + [
            "orders.add_shop", "orders.change_shop",
            "inventory.add_warehouse", "inventory.change_warehouse",
            "inventory.add_sku", "inventory.change_sku",
            "inventory.add_skumapping", "inventory.change_skumapping", "inventory.delete_skumapping",
            "inventory.add_routingrule", "inventory.change_routingrule", "inventory.delete_routingrule",
            "inventory.receive_stock", "inventory.adjust_stock", "inventory.confirm_reservation",
            "orders.undo_customermerge",  # only a supervisor splits customers merged across platforms
        ],
    },
}


def group_name(role: str) -> str:
    return ROLES[role]["name"]


def sync_roles(verbosity: int = 0) -> dict[str, int]:
    """Create or update every role group with exactly its permissions. Idempotent."""
    from django.contrib.auth.models import Group, Permission

    result = {}
    for role, spec in ROLES.items():
        group, _created = Group.objects.get_or_create(name=spec["name"])
        perms = []
        for dotted in spec["perms"]:
            app_label, codename = dotted.split(".", 1)
            try:
                perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
            except Permission.DoesNotExist as exc:
                raise RuntimeError(f"role {role}: unknown permission {dotted}") from exc
        group.permissions.set(perms)
        result[role] = len(perms)
        if verbosity:
            print(f"role {spec['name']} ({role}): {len(perms)} permissions")
    return result


def sync_roles_after_migrate(sender, app_config=None, using="default", **kwargs) -> None:
    # post_migrate fires once per app; permissions of every app exist only after the last.
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    if app_config is None or app_config.label != "orders":
        return
    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using)
    sync_roles()
