"""Portal test helpers: orders built through orders.services, login through the real flow."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from config.actors import Actor
from orders import services as order_services
from orders.platforms.base import NormalizedLine, NormalizedOrder
from portal.models import PortalSmsOutbox
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, staff, stock

SYSTEM = Actor.system("tests")
_seq = iter(range(1, 10**9))


def place_order(*, buyer: str, receiver: str | None = None, shop=None, amount: str = "88.00", paid: bool = True,
                sku=None, title: str = "折叠收纳盆", seller_note: str = "", buyer_note: str = "", placed_at=None,
                receiver_name: str = "张三", **extra):
    """An order created through `order_create`: buyer phone, optionally another receiver."""
    shop = shop or ShopFactory()
    sku = sku or SkuFactory()
    data = NormalizedOrder(
        platform_order_id=f"P{next(_seq)}",
        lines=[NormalizedLine(title=title, quantity=2, unit_price=Decimal("44.00"), sku_code=sku.code)],
        paid=paid, paid_amount=Decimal(amount), goods_amount=Decimal(amount),
        buyer_name="李四", buyer_phone=buyer,
        receiver_name=receiver_name, receiver_phone=receiver or buyer,
        province="江苏省", city="苏州市", district="姑苏区", address="人民路 88 号 3 栋 502",
        seller_note=seller_note, buyer_note=buyer_note, placed_at=placed_at, **extra,
    )
    return order_services.order_create(shop=shop, data=data, actor=SYSTEM)


def last_code(phone_digits: str) -> str:
    digits = re.sub(r"\D", "", phone_digits)
    row = PortalSmsOutbox.objects.filter(phone__endswith=digits[-11:]).order_by("-id").first()
    assert row is not None, "no SMS in the outbox"
    return re.search(r"\b(\d{6})\b", row.text).group(1)


def login(client, phone: str, *, ip: str = "127.0.0.1"):
    response = client.post("/h5/", {"phone": phone}, REMOTE_ADDR=ip)
    assert response.status_code == 302, response.content[:500]
    response = client.post("/h5/verify/", {"code": last_code(phone)}, REMOTE_ADDR=ip)
    assert response.status_code == 302 and response["Location"] == "/h5/orders/"
    return response


@pytest.fixture
def staff_user():
    return staff("supervisor", username="secretstaff")


@pytest.fixture
def warehouse():
    return WarehouseFactory(code="wh-secret", name="SECRET苏州仓")


@pytest.fixture
def shipped_order(db, staff_user, warehouse):
    """A buyer's order through every step, with staff-typed text containing SECRET."""
    sku = SkuFactory(code="PORTAL-1", name="折叠盆")
    stock(warehouse, sku, 10)
    actor = Actor.of(staff_user, "admin")
    order = place_order(buyer="13800138000", sku=sku, seller_note="SECRET seller note")
    order_services.order_add_note(order=order, actor=actor, note="SECRET staff note")
    order = order_services.order_allocate(order=order, actor=actor)
    order = order_services.order_hold(order=order, actor=actor, reason="manual", note="SECRET hold reason")
    order = order_services.order_release(order=order, actor=actor, note="SECRET release note")
    order = order_services.order_pack(order=order, actor=actor)
    order = order_services.order_ship(order=order, actor=actor, carrier="SF", tracking_number="SF1234567890")
    order = order_services.order_deliver(order=order, actor=actor)
    return order


@pytest.fixture
def page_cache(settings):
    """The render cache (portal/pagecache.py) on an in-process cache: like Redis, the cache
    itself costs no SQL, and it is empty at the start of each test."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "portal-page-cache-tests"}}
    from django.core.cache import cache

    cache.clear()
    yield cache
    cache.clear()
