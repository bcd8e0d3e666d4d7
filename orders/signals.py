"""Reactions of the orders app to changes elsewhere (the arrows point into orders).

A SKU mapping added or fixed — in the admin, by an import, by any code path that saves
one — re-resolves the orders held for that platform SKU once the change is committed.
"""

from __future__ import annotations

from django.db import transaction


def sku_mapping_saved(sender, instance, **kwargs) -> None:
    shop_id, platform_sku_id = instance.shop_id, instance.platform_sku_id
    transaction.on_commit(lambda: resolve_orders_waiting_for(shop_id, platform_sku_id))


def resolve_orders_waiting_for(shop_id: int, platform_sku_id: str) -> int:
    from config.actors import Actor, Source
    from orders.services import mapping_added

    return mapping_added(shop_id=shop_id, platform_sku_id=platform_sku_id,
                         actor=Actor.system("sku_mapping", Source.SYSTEM))
