"""factory_boy factories, and helpers that create orders and stock through the services."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from config import roles
from config.actors import Actor
from inventory import services as inventory_services
from inventory.models import RoutingRule, Sku, SkuMapping, Warehouse
from orders import services as order_services
from orders.models import Platform, Shop
from orders.platforms.base import NormalizedLine, NormalizedOrder

SYSTEM = Actor.system("tests")


class ShopFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shop
        django_get_or_create = ("code",)

    platform = Platform.TAOBAO
    code = factory.Sequence(lambda n: f"shop-{n}")
    name = factory.LazyAttribute(lambda o: f"店铺 {o.code}")
    webhook_secret = "secret"


class WarehouseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Warehouse
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"wh-{n}")
    name = factory.LazyAttribute(lambda o: f"仓库 {o.code}")
    priority = factory.Sequence(lambda n: 10 + n)


class SkuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sku
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.LazyAttribute(lambda o: f"商品 {o.code}")
    category = "日用"


class SkuMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SkuMapping

    shop = factory.SubFactory(ShopFactory)
    sku = factory.SubFactory(SkuFactory)
    platform_sku_id = factory.Sequence(lambda n: f"P{n}")


class RoutingRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoutingRule

    name = factory.Sequence(lambda n: f"rule {n}")
    position = factory.Sequence(lambda n: n)
    conditions = factory.LazyFunction(dict)
    warehouse = factory.SubFactory(WarehouseFactory)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pass-1234")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=roles.group_name(extracted)))
        if create:
            self.save()


def staff(role: str, username: str | None = None):
    """A staff user holding exactly one role."""
    return UserFactory(username=username or role, role=role)


def stock(warehouse: Warehouse, sku: Sku, quantity: int):
    """Receive stock through the service, so the ledger stays balanced."""
    return inventory_services.stock_receive(warehouse=warehouse, sku=sku, quantity=quantity, actor=SYSTEM, reason="test")


_order_seq = iter(range(1, 10**9))


def make_order(*, shop: Shop | None = None, lines: list[tuple[Sku, int]] | None = None, paid: bool = True,
               province: str = "江苏省", city: str = "苏州市", country: str = "CN", amount: str = "100.00",
               phone: str = "13800138000", **extra):
    """An order created through `order_create`, lines given as (sku, quantity)."""
    shop = shop or ShopFactory()
    data = NormalizedOrder(
        platform_order_id=extra.pop("platform_order_id", f"T{next(_order_seq)}"),
        lines=[NormalizedLine(title=sku.name, quantity=qty, unit_price=Decimal("10.00"), sku_code=sku.code)
               for sku, qty in (lines or [])],
        paid=paid,
        paid_amount=Decimal(amount),
        goods_amount=Decimal(amount),
        receiver_name="张三",
        receiver_phone=phone,
        buyer_phone=phone,
        province=province,
        city=city,
        district="姑苏区",
        address="人民路 1 号",
        country=country,
        **extra,
    )
    return order_services.order_create(shop=shop, data=data, actor=SYSTEM)


def scoped(user, *, shops=(), warehouses=()):
    """Limit `user` to some shops and/or warehouses (a StaffProfile); returns the user."""
    from orders.models import StaffProfile

    profile, _created = StaffProfile.objects.get_or_create(user=user)
    profile.shops.set(shops)
    profile.warehouses.set(warehouses)
    return user
