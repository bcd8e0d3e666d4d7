"""Staff roles (RBAC): groups and the permissions each holds.

Kept in sync after every `migrate` (post_migrate) and by `python manage.py setup_roles`.
Permissions named here are "app_label.codename".
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

# Stands for "every order action's permission", read from `orders.transitions.ACTIONS` when
# the roles are synced, so a new transition needs no edit here.
EVERY_ORDER_ACTION = "*every-order-action*"


def _view(*models: str) -> list[str]:
    return [f"{m.split('.')[0]}.view_{m.split('.')[1]}" for m in models]


ORDER_VIEW = _view("orders.order", "orders.orderline", "orders.orderevent", "orders.customer", "orders.shop",
                   "orders.shipment", "orders.shipmentline", "orders.trackingevent")
TRACKING_PUSH_VIEW = ["orders.view_trackingpush"]  # tracking numbers back to the platforms (issue 15)
TRACKING_PUSH_RETRY = ["orders.view_trackingpush", "orders.retry_trackingpush"]
NOTIFICATIONS = ["core.view_notification", "core.change_notification"]  # staff alerts: see, resend
CARRIER_CONFIG = ["orders.view_carrieraccount", "orders.add_carrieraccount", "orders.change_carrieraccount",
                  "orders.view_carrierpush"]
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
            "orders.view_carrierpush",
            "orders.build_pickbatch",
            *TRACKING_PUSH_VIEW,
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
            "orders.build_pickbatch",
            *CARRIER_CONFIG,
            *TRACKING_PUSH_RETRY,
            *NOTIFICATIONS,
        ],
    },
    "supervisor": {
        "name": "主管",
        "label": _("主管"),
        "perms": ORDER_VIEW + STOCK_VIEW + ["orders.view_pii", "orders.change_order",
                                            "orders.import_distributor_orders"]  # distributor order files
        + [EVERY_ORDER_ACTION]
        + [
            "orders.add_shop", "orders.change_shop",
            "inventory.add_warehouse", "inventory.change_warehouse",
            "inventory.add_sku", "inventory.change_sku",
            "inventory.add_skumapping", "inventory.change_skumapping", "inventory.delete_skumapping",
            "inventory.add_routingrule", "inventory.change_routingrule", "inventory.delete_routingrule",
            "inventory.receive_stock", "inventory.adjust_stock", "inventory.confirm_reservation",
            "orders.undo_customermerge",  # only a supervisor splits customers merged across platforms
            "orders.view_receiverdecryption",  # the audit of receiver decryptions (orders.waybills)
            "orders.build_pickbatch",
            *CARRIER_CONFIG,
            *TRACKING_PUSH_RETRY,
            *NOTIFICATIONS,
        ],
    },
}


def group_name(role: str) -> str:
    return ROLES[role]["name"]


def order_action_permissions() -> list[str]:
    from orders.transitions import ACTIONS  # roles are synced after migrate, never at import

    return sorted({a.required_permission for a in ACTIONS.values() if a.required_permission})


def role_permissions(role: str) -> list[str]:
    """The role's permissions as "app_label.codename", markers expanded."""
    perms: list[str] = []
    for dotted in ROLES[role]["perms"]:
        for perm in order_action_permissions() if dotted == EVERY_ORDER_ACTION else [dotted]:
            if perm not in perms:
                perms.append(perm)
    return perms


def sync_roles(verbosity: int = 0) -> dict[str, int]:
    """Create or update every role group with exactly its permissions. Idempotent."""
    from django.contrib.auth.models import Group, Permission

    result = {}
    for role, spec in ROLES.items():
        group, _created = Group.objects.get_or_create(name=spec["name"])
        perms = []
        for dotted in role_permissions(role):
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
