"""Creating the demo: the catalogue rows, staff logins, opening stock, then every planned order.

Stock goes through `inventory.services.stock_receive` and every order change through
`orders.services` with `at=` to backdate it, so the ledger balances, each order has a
believable timeline, and nothing is set directly. Shops, warehouses, SKUs, mappings and
rules have no services: they are created with `get_or_create` from the catalogue tables.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from config import roles
from config.actors import Actor, Source
from inventory import services as inventory
from inventory.audit import audit
from inventory.models import Reservation, RoutingRule, Sku, SkuMapping, StockLevel, StockMove, Warehouse
from orders import services
from orders.demo.catalogue import (DEFAULT_ORDERS, DEFAULT_PASSWORD, DEFAULT_SEED, DEFAULT_WEBHOOK_SECRET, INBOUND,
                                   RECEIPT_REASON, RULES, SANDBOX_SHOP, SHOP_CODES, SHOPS, SKU_BY_CODE, SKUS, STOCK, US_PLATFORMS,
                                   USERS, WAREHOUSE_SENDERS, WAREHOUSES)
from orders.demo.fakes import ean13, platform_sku_id, tracking
from orders.demo.planner import Plan, Planner, Step
from orders.models import Order, OrderStatus, Shop
from orders.platforms.base import NormalizedOrder

ACTOR = Actor.system("seed_demo", source=Source.SYSTEM)
RETURNS_WAREHOUSE = "yiwu-returns"


@dataclass
class SeedResult:
    created: bool
    orders: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_hold_reason: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# --- executing a plan through the services ---------------------------------------------------
class Runner:
    """Executes one plan: creates the order, then takes each step through its service."""

    def __init__(self, *, rng: random.Random):
        self.rng = rng
        self.warehouses = {w.code: w for w in Warehouse.objects.all()}
        self.actions: dict[str, Callable[[Order, dict, datetime], Order]] = {
            "allocate": lambda o, p, at: services.order_allocate(order=o, actor=ACTOR, at=at),
            "hold": lambda o, p, at: services.order_hold(order=o, actor=ACTOR, reason=p["reason"], note=p["note"], at=at),
            "release": lambda o, p, at: services.order_release(order=o, actor=ACTOR, note=p["note"], at=at),
            "pack": lambda o, p, at: services.order_pack(order=o, actor=ACTOR, at=at),
            "ship": lambda o, p, at: self._ship(o, at, p["carrier"], p["gap"]),
            "ship_part": lambda o, p, at: self._ship(o, at, p["carrier"], p["gap"], only_first=True),
            "deliver": lambda o, p, at: services.order_deliver(order=o, actor=ACTOR, at=at),
            "complete": lambda o, p, at: services.order_complete(order=o, actor=ACTOR, at=at),
            "cancel": lambda o, p, at: services.order_cancel(order=o, actor=ACTOR, reason=p["reason"], at=at),
            "expire": lambda o, p, at: services.order_expire_reservations(order=o, actor=ACTOR, at=at),
            "return": self._return,
        }

    def run(self, shop: Shop, data: NormalizedOrder, placed: datetime, steps: list[tuple[Step, datetime]]) -> Order:
        order = services.order_create(shop=shop, data=data, actor=ACTOR, at=placed)
        for step, at in steps:
            if step.action == "allocate" and order.status != OrderStatus.PAID:
                break
            if step.action not in self.actions:  # pragma: no cover - a typo in a plan
                raise ValueError(step.action)
            order = self.actions[step.action](order, step.params, at)
            if step.action == "allocate" and order.status != OrderStatus.ALLOCATED:
                break  # held (e.g. stock short): the story ends here
        return order

    def _warehouses_to_ship(self, order: Order) -> list[Warehouse]:
        ids = (Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE)
               .values_list("stock_level__warehouse_id", flat=True).order_by("stock_level__warehouse__priority"))
        seen: list[int] = []
        for wid in ids:
            if wid not in seen:
                seen.append(wid)
        by_id = {w.pk: w for w in self.warehouses.values()}
        return [by_id[wid] for wid in seen]

    def _ship(self, order: Order, at: datetime, carrier: str, gap: timedelta, *, only_first: bool = False) -> Order:
        warehouses = self._warehouses_to_ship(order)
        if only_first and len(warehouses) > 1:
            warehouses = warehouses[:1]
        for i, warehouse in enumerate(warehouses):
            when = at + gap * i / max(1, len(warehouses) - 1)  # the last parcel leaves `gap` after the first
            order = services.order_ship(order=order, actor=ACTOR, warehouse=warehouse, carrier=carrier,
                                        tracking_number=tracking(self.rng, carrier), at=when)
        return order

    def _return(self, order: Order, params: dict, at: datetime) -> Order:
        order = services.order_mark_returned(order=order, actor=ACTOR, reason=params["reason"], at=at)
        if params["restock"]:
            self._restock(order)
        return order

    def _restock(self, order: Order) -> None:
        """Returned goods judged sellable go into the return centre (a ledger receipt)."""
        returns = self.warehouses[RETURNS_WAREHOUSE]
        for line in order.lines.filter(sku__isnull=False, is_gift=False):
            inventory.stock_receive(warehouse=returns, sku=line.sku, quantity=line.quantity, actor=ACTOR,
                                    reason=f"退货入库 订单 {order.number}", kind=StockMove.Kind.RETURN_RESTOCK)


# --- the catalogue, logins and stock ----------------------------------------------------------
@contextmanager
def _quiet_notifications():
    """Hundreds of seeded orders are not news: keep the notification log quiet meanwhile."""
    logger = logging.getLogger("orderhub.notify")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def is_seeded() -> bool:
    return Shop.objects.filter(code__in=SHOP_CODES).exists()


def reset_logins(*, password: str, webhook_secret: str) -> None:
    """Staff users in their role groups with the given password; demo shops with the given secret."""
    roles.sync_roles()
    User = get_user_model()
    for username, role, last_name, first_name in USERS:
        user, _created = User.objects.get_or_create(username=username)
        user.first_name, user.last_name = first_name, last_name
        user.email = user.email or f"{username}@orderhub.example"
        user.is_active = user.is_staff = True
        user.is_superuser = role is None
        user.set_password(password)
        user.save()
        if role is not None:
            user.groups.add(Group.objects.get(name=roles.group_name(role)))
    Shop.objects.filter(code__in=SHOP_CODES).update(webhook_secret=webhook_secret)
    _carrier_accounts(webhook_secret)


DEMO_KDNIAO_ID = "1109259"  # the EBusinessID of KDNiao's published push example
DEMO_KUAIDI100_CUSTOMER = "DEMO-KUAIDI100"


def _carrier_accounts(secret: str) -> None:
    """Tracking accounts for pushes: the secret is the KDNiao AppKey and the Kuaidi100 salt.
    Neither is the default poller, so demo parcels are tracked by the sandbox carrier."""
    from orders.models import CarrierAccount

    CarrierAccount.objects.update_or_create(provider="kdniao", account_id=DEMO_KDNIAO_ID,
                                            defaults={"app_key": secret, "is_active": True})
    CarrierAccount.objects.update_or_create(provider="kuaidi100", account_id=DEMO_KUAIDI100_CUSTOMER,
                                            defaults={"app_key": secret, "salt": secret, "is_active": True})


def _shops_and_warehouses(webhook_secret: str) -> None:
    for code, platform, name, currency, tz, hours in SHOPS:
        Shop.objects.get_or_create(code=code, defaults=dict(
            platform=platform, name=name, currency=currency, time_zone=tz, ship_within_hours=hours,
            webhook_secret=webhook_secret, sync_enabled=False))
    code, platform, name, currency, tz, hours = SANDBOX_SHOP
    shop, created = Shop.objects.get_or_create(code=code, defaults=dict(
        platform=platform, name=name, currency=currency, time_zone=tz, ship_within_hours=hours,
        webhook_secret=webhook_secret, sync_enabled=True, sync_interval_minutes=1))
    if created:
        # The sandbox stream starts when its shop was created: an hour back, so the first sync
        # already brings the last hour's orders and new ones follow every minute.
        Shop.objects.filter(pk=shop.pk).update(created_at=timezone.now() - timedelta(hours=1))
    for code, name, kind, country, province, city, region, priority, lead, allocatable, address in WAREHOUSES:
        Warehouse.objects.get_or_create(code=code, defaults=dict(
            name=name, kind=kind, country=country, province=province, city=city, region=region, priority=priority,
            lead_time_days=lead, allocatable=allocatable, address=address))
    for code, (contact, phone, district) in WAREHOUSE_SENDERS.items():
        # Fill the e-waybill sender once; never overwrite what staff typed since.
        Warehouse.objects.filter(code=code, contact_name="").update(contact_name=contact, contact_phone=phone,
                                                                    district=district)


def _skus(rng: random.Random) -> dict[str, Sku]:
    for spec in SKUS:
        Sku.objects.get_or_create(code=spec.code, defaults=dict(
            name=spec.name, category=spec.category, barcode=ean13(rng), safety_stock=spec.safety,
            emergency_buffer=spec.safety // 2, tax_exempt=spec.tax_exempt))
    return {s.code: s for s in Sku.objects.filter(code__in=SKU_BY_CODE)}


def _mappings(rng: random.Random, skus: dict[str, Sku]) -> dict[str, dict[str, str]]:
    """Each shop lists every SKU (the US shops only those with a USD price): shop → SKU → platform id."""
    mappings: dict[str, dict[str, str]] = {}
    for shop in Shop.objects.filter(code__in=SHOP_CODES).order_by("code"):
        us = shop.platform in US_PLATFORMS
        existing = dict(SkuMapping.objects.filter(shop=shop).values_list("sku__code", "platform_sku_id"))
        for spec in (s for s in SKUS if (s.usd is not None) or not us):
            if spec.code not in existing:
                pid = platform_sku_id(rng, shop.platform, spec.code)
                SkuMapping.objects.create(shop=shop, platform_sku_id=pid, sku=skus[spec.code])
                existing[spec.code] = pid
        mappings[shop.code] = existing
    return mappings


def _rules() -> None:
    warehouses = {w.code: w for w in Warehouse.objects.all()}
    for position, name, wh, conditions, note, mode in RULES:
        RoutingRule.objects.get_or_create(name=name, defaults=dict(
            position=position, conditions=conditions, warehouse=warehouses[wh], note=note, mode=mode))


def _catalogue(rng: random.Random, webhook_secret: str) -> dict[str, dict[str, str]]:
    """Shops, warehouses, SKUs, mappings and rules; returns shop → SKU code → platform SKU id."""
    _shops_and_warehouses(webhook_secret)
    mappings = _mappings(rng, _skus(rng))
    _rules()
    return mappings


def _stock(scale: int) -> None:
    warehouses = {w.code: w for w in Warehouse.objects.all()}
    skus = {s.code: s for s in Sku.objects.filter(code__in=SKU_BY_CODE)}
    for (wh, code), quantity in STOCK.items():
        inventory.stock_receive(warehouse=warehouses[wh], sku=skus[code], quantity=quantity * scale, actor=ACTOR,
                                reason=RECEIPT_REASON)
    today = timezone.localdate()
    for wh, code, quantity, days in INBOUND:
        # Inbound is shown, never sold: it is not part of on-hand, so no ledger move.
        pool, _created = StockLevel.objects.get_or_create(warehouse=warehouses[wh], sku=skus[code])
        StockLevel.objects.filter(pk=pool.pk).update(inbound=quantity * scale, inbound_eta=today + timedelta(days=days))


# --- the seed ---------------------------------------------------------------------------------
def _scheduled(planner: Planner, now: datetime) -> list[tuple[datetime, Plan, NormalizedOrder, list]]:
    """Every plan on the clock, in the order they happened: stock is taken first come."""
    scheduled = []
    for plan in planner.plans():
        placed, steps = planner.schedule(plan, now)
        last = steps[-1][1] if steps else (placed + (plan.paid_after or timedelta()))
        scheduled.append((placed, plan, planner.finish(plan, placed, last), steps))
    scheduled.sort(key=lambda item: item[0])
    return scheduled


def _first_run(*, password: str, webhook_secret: str, orders: int, seed: int, now: datetime,
               progress: Callable[[int, int], None] | None) -> None:
    rng = random.Random(seed)
    mappings = _catalogue(rng, webhook_secret)
    reset_logins(password=password, webhook_secret=webhook_secret)
    _stock(scale=max(1, -(-orders // DEFAULT_ORDERS)))
    planner = Planner(rng=rng, mappings=mappings, count=orders)
    runner = Runner(rng=rng)
    shops = {s.code: s for s in Shop.objects.filter(code__in=SHOP_CODES)}
    scheduled = _scheduled(planner, now)
    for i, (placed, plan, data, steps) in enumerate(scheduled, start=1):
        runner.run(shops[plan.shop_code], data, placed, steps)
        if progress:
            progress(i, len(scheduled))
    problems = audit()
    if problems:
        raise RuntimeError("inventory audit failed after seeding:\n" + "\n".join(problems[:20]))


def seed(*, password: str = DEFAULT_PASSWORD, webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
         orders: int = DEFAULT_ORDERS, seed: int = DEFAULT_SEED, now: datetime | None = None,
         progress: Callable[[int, int], None] | None = None) -> SeedResult:
    """Seed the demo (first run) or reset its logins (any later run)."""
    with _quiet_notifications(), transaction.atomic():
        if is_seeded():
            reset_logins(password=password, webhook_secret=webhook_secret)
            return SeedResult(created=False, **summary())
        now = (now or timezone.now()) - timedelta(minutes=5)
        _first_run(password=password, webhook_secret=webhook_secret, orders=orders, seed=seed, now=now,
                   progress=progress)
        return SeedResult(created=True, **summary())


def summary() -> dict:
    orders = Order.objects.filter(shop__code__in=SHOP_CODES)
    by_status = Counter(orders.values_list("status", flat=True))
    by_reason = Counter(orders.filter(status=OrderStatus.ON_HOLD).values_list("hold_reason", flat=True))
    return {
        "orders": sum(by_status.values()),
        "by_status": {s.value: by_status.get(s.value, 0) for s in OrderStatus},
        "by_hold_reason": dict(sorted(by_reason.items())),
        "counts": {
            "shops": Shop.objects.filter(code__in=SHOP_CODES).count(),
            "warehouses": Warehouse.objects.filter(code__in=[w[0] for w in WAREHOUSES]).count(),
            "skus": Sku.objects.filter(code__in=SKU_BY_CODE).count(),
            "sku_mappings": SkuMapping.objects.filter(shop__code__in=SHOP_CODES).count(),
            "routing_rules": RoutingRule.objects.filter(name__in=[r[1] for r in RULES]).count(),
            "stock_pools": StockLevel.objects.count(),
            "stock_moves": StockMove.objects.count(),
            "customers": orders.exclude(customer=None).values("customer").distinct().count(),
        },
    }
