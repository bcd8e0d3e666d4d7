"""Which adapter serves a shop: adapter modules are imported lazily, by platform code.

``adapter_class("taobao")`` imports ``orders.platforms.taobao`` only when first asked and
returns the class in it whose ``code`` is the platform; ``adapter_for(shop)`` builds one with
the shop's credentials. A platform without an adapter module raises `NoAdapter` (an
`InvalidInput`, so callers show one clear line).
"""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache

from config.errors import InvalidInput
from orders.platforms.interface import Credentials, PlatformAdapter

# Platform code (orders.models.Platform) → module under orders/platforms/.
MODULES: dict[str, str] = {
    "taobao": "taobao",
    "jd": "jd",
    "pdd": "pdd",
    "douyin": "douyin",
    "miniapp": "wechat",
    "shopify": "shopify",
    "amazon": "amazon",
    "distributor": "distributor",
    "sandbox": "sandbox",
}


class NoAdapter(InvalidInput):
    default_message = "该平台没有适配器"


@lru_cache(maxsize=None)
def adapter_class(platform: str) -> type:
    """The adapter class for a platform code; `NoAdapter` when there is none."""
    module_name = MODULES.get(platform or "")
    if module_name is None:
        raise NoAdapter(f"平台「{platform}」没有适配器")
    dotted = f"orders.platforms.{module_name}"
    try:
        module = importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name != dotted:  # the module exists but something it imports does not: a real fault
            raise
        raise NoAdapter(f"平台「{platform}」没有适配器(缺少模块 {dotted})") from None
    for _name, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ == dotted and getattr(obj, "code", None) == platform and hasattr(obj, "normalize"):
            return obj
    raise NoAdapter(f"平台「{platform}」没有适配器(模块 {dotted} 中没有 code={platform!r} 的适配器类)")


def credentials_for(shop) -> Credentials:
    extra = {str(k): v for k, v in (getattr(shop, "platform_extra", None) or {}).items()}  # per-shop settings
    return Credentials(app_key=shop.app_key or "", app_secret=shop.app_secret or "",
                       access_token=shop.access_token or "", shop_id=str(extra.get("shop_id", "")), extra=extra)


def adapter_for(shop) -> PlatformAdapter:
    """An adapter for the shop's platform, with the shop's credentials."""
    return adapter_class(shop.platform)(credentials_for(shop))
