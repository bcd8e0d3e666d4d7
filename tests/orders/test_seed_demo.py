"""seed_demo: the demo a fresh install shows, created through the services, idempotent."""

from __future__ import annotations

import os
import random
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from config import roles
from inventory import conditions
from inventory.audit import audit
from inventory.models import Reservation, RoutingRule, Sku, SkuMapping, StockLevel, StockMove, Warehouse
from orders import demo, services
from orders.models import Customer, HoldReason, Order, OrderEvent, OrderStatus, Shop
from orders.services import normalize_phone
from tests.factories import make_order

SEED_ORDERS = 60


def fast_hasher():
    return override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seed once for the module inside a transaction that is rolled back afterwards."""
    with django_db_blocker.unblock(), fast_hasher(), transaction.atomic():
        out = StringIO()
        call_command("seed_demo", orders=SEED_ORDERS, stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


@pytest.fixture
def seed_output(seeded, db):
    return seeded


def demo_orders():
    return Order.objects.filter(shop__code__in=demo.SHOP_CODES)


def test_seed_creates_the_seven_demo_shops_and_the_sandbox_stream(seed_output):
    shops = {s.code: s for s in Shop.objects.filter(code__startswith="demo-")}
    assert sorted(shops) == sorted(["demo-taobao", "demo-jd", "demo-pdd", "demo-douyin", "demo-miniapp",
                                    "demo-shopify", "demo-amazon", "demo-sandbox"])
    assert {code: s.platform for code, s in shops.items()} == {code: code.removeprefix("demo-") for code in shops}
    assert shops["demo-shopify"].currency == shops["demo-amazon"].currency == "USD"
    assert shops["demo-shopify"].time_zone.startswith("America/")
    assert shops["demo-taobao"].currency == "CNY"
    assert {s.webhook_secret for s in shops.values()} == {"demo-webhook-secret"}


def test_seed_creates_the_six_warehouses(seed_output):
    rows = {w.code: w for w in Warehouse.objects.all()}
    assert {code: w.name for code, w in rows.items()} == {
        "suzhou": "苏州仓", "tianjin": "天津仓", "shenzhen": "深圳仓", "ningbo-bonded": "宁波保税仓",
        "yiwu-returns": "义乌退货仓", "la-overseas": "洛杉矶海外仓",
    }
    assert (rows["suzhou"].province, rows["suzhou"].region) == ("江苏省", "华东")
    assert rows["tianjin"].region == "华北"
    assert rows["shenzhen"].region == "华南"
    assert (rows["ningbo-bonded"].kind, rows["ningbo-bonded"].lead_time_days) == ("bonded", 0)
    assert (rows["yiwu-returns"].kind, rows["yiwu-returns"].allocatable) == ("return_center", False)
    overseas = rows["la-overseas"]
    assert (overseas.kind, overseas.country, overseas.lead_time_days) == ("overseas", "US", 2)


def test_seed_warehouses_have_the_sender_an_e_waybill_prints(seed_output):
    from orders.waybills import sender_of

    for warehouse in Warehouse.objects.all():
        sender = sender_of(warehouse)  # refuses a warehouse without a complete sender address
        assert sender.name and sender.phone and sender.address
    assert sender_of(Warehouse.objects.get(code="suzhou")).district == "吴中区"


def test_seed_creates_a_catalogue_with_folding_basins_barcodes_and_mappings(seed_output):
    skus = list(Sku.objects.all())
    assert 25 <= len(skus) <= 40
    categories = {s.category for s in skus}
    assert {"折叠盆", "收纳", "厨具", "清洁", "母婴"} <= categories
    assert all(len(s.barcode) == 13 and s.barcode.isdigit() for s in skus)
    assert len({s.barcode for s in skus}) == len(skus)
    assert sum(s.tax_exempt for s in skus) >= 2
    for shop in Shop.objects.filter(code__in=demo.SHOP_CODES):
        assert SkuMapping.objects.filter(shop=shop).count() >= 5, shop.code


def test_seed_creates_staff_in_their_role_groups(seed_output):
    User = get_user_model()
    expected = {"cs": "customer_service", "warehouse": "warehouse", "finance": "finance", "ops": "operations",
                "supervisor": "supervisor"}
    for username, role in expected.items():
        user = User.objects.get(username=username)
        assert user.is_staff and user.is_active and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [roles.group_name(role)]
        assert user.check_password("orderhub-demo")
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("orderhub-demo")


def test_seed_creates_the_three_routing_rules(seed_output):
    rules = list(RoutingRule.objects.order_by("position").select_related("warehouse"))
    assert [(r.position, r.name, r.warehouse.code) for r in rules] == [
        (10, "江浙沪非折叠盆 → 苏州仓", "suzhou"), (20, "折叠盆 → 深圳仓", "shenzhen"), (30, "华北 → 天津仓", "tianjin"),
    ]
    assert rules[0].conditions == {"all": [{"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},
                                           {"not": {"field": "sku_category", "op": "eq", "value": "折叠盆"}}]}
    assert rules[1].conditions == {"field": "sku_category", "op": "eq", "value": "折叠盆"}
    assert rules[2].conditions == {"field": "region", "op": "eq", "value": "华北"}
    for rule in rules:
        conditions.validate(rule.conditions)


def test_seed_orders_reach_every_status(seed_output):
    statuses = set(demo_orders().values_list("status", flat=True))
    assert statuses == set(OrderStatus.values)
    reasons = set(demo_orders().filter(status=OrderStatus.ON_HOLD).values_list("hold_reason", flat=True))
    assert {HoldReason.STOCK_SHORT, HoldReason.SKU_UNMAPPED, HoldReason.MANUAL} <= reasons
    assert demo_orders().count() == SEED_ORDERS


def test_seed_creates_exactly_the_catalogue_tables(seed_output):
    assert Warehouse.objects.count() == 6
    assert Sku.objects.count() == 31
    assert Shop.objects.count() == 8  # the seven platform shops and the live sandbox stream
    sandbox = Shop.objects.get(code="demo-sandbox")
    assert (sandbox.platform, sandbox.sync_enabled, sandbox.sync_interval_minutes) == ("sandbox", True, 1)
    assert RoutingRule.objects.count() == 3
    # The five Chinese shops list all 31 SKUs; Shopify and Amazon only the 10 with a USD price.
    assert SkuMapping.objects.filter(shop__currency="CNY").count() == 5 * 31
    for code in ["demo-shopify", "demo-amazon"]:
        assert sorted(SkuMapping.objects.filter(shop__code=code).values_list("sku__code", flat=True)) == [
            "CJ-002", "CJ-004", "CJ-005", "QJ-001", "QJ-002", "RY-002", "SN-001", "SN-002", "SN-003", "SN-006"]
    assert RoutingRule.objects.get(name="折叠盆 → 深圳仓").mode == RoutingRule.Mode.STRICT
    assert set(RoutingRule.objects.exclude(name="折叠盆 → 深圳仓").values_list("mode", flat=True)) == {
        RoutingRule.Mode.PREFERRED}
    assert get_user_model().objects.filter(username__in=["cs", "warehouse", "finance", "ops", "supervisor",
                                                         "admin"]).count() == 6


def test_seed_orders_per_status_for_the_default_seed(seed_output):
    """Pins what seed 2024 gives for 60 orders: a change to planning shows up here on purpose."""
    counts = {status: demo_orders().filter(status=status).count() for status in OrderStatus.values}
    assert counts == {
        "pending_payment": 5, "paid": 5, "on_hold": 11, "allocated": 4, "packed": 2, "partially_shipped": 2,
        "shipped": 5, "delivered": 5, "completed": 13, "cancelled": 6, "returned": 2,
    }
    reasons = Counter(demo_orders().filter(status=OrderStatus.ON_HOLD).values_list("hold_reason", flat=True))
    assert dict(reasons) == {"address": 1, "manual": 4, "reservation_expired": 2, "sku_unmapped": 1, "stock_short": 3}


# scenario → (status it ends in, hold reasons it may be held for)
SCENARIO_ENDS = {
    "pending_payment": ("pending_payment", set()), "paid": ("paid", set()), "paid_presale": ("paid", set()),
    "hold_stock_short": ("on_hold", {"stock_short"}), "hold_sku_unmapped": ("on_hold", {"sku_unmapped"}),
    "hold_manual": ("on_hold", {"manual"}), "hold_check": ("on_hold", {"address", "risk"}),
    "hold_reservation_expired": ("on_hold", {"reservation_expired"}),
    "allocated": ("allocated", set()), "packed": ("packed", set()), "partially_shipped": ("partially_shipped", set()),
    "shipped": ("shipped", set()), "delivered": ("delivered", set()), "completed": ("completed", set()),
    "cancelled_unpaid": ("cancelled", set()), "cancelled_paid": ("cancelled", set()),
    "cancelled_allocated": ("cancelled", set()), "returned": ("returned", set()),
}


def test_every_order_ends_where_its_scenario_says(seed_output):
    assert set(SCENARIO_ENDS) == set(demo.SCENARIOS)
    for order in demo_orders():
        status, reasons = SCENARIO_ENDS[order.raw["scenario"]]
        assert order.status == status, (order.number, order.raw["scenario"], order.hold_reason)
        if reasons:
            assert order.hold_reason in reasons, order.number


def test_seed_leaves_the_stock_books_balanced(seed_output):
    assert audit() == []
    assert StockMove.objects.filter(kind=StockMove.Kind.SHIP).exists()
    assert StockMove.objects.filter(kind=StockMove.Kind.RELEASE).exists()
    assert StockLevel.objects.filter(inbound__gt=0, inbound_eta__isnull=False).exists()
    assert not StockLevel.objects.filter(on_hand__lt=0).exists()


def test_seed_orders_went_through_the_services(seed_output):
    """Every status change left an event by the seed's system actor, ending in the order's status."""
    for order in demo_orders().prefetch_related("events"):
        events = list(order.events.all())
        assert events[0].kind == "created"
        assert events[-1].to_status == order.status, order.number
        transitions = [e for e in events if e.from_status]
        assert all(a.to_status == b.from_status for a, b in zip(transitions, transitions[1:])), order.number
        assert {e.actor_label for e in events} == {"seed_demo"}
        assert {e.source for e in events} == {"system"}


def test_seed_timelines_move_forward_within_the_last_two_weeks(seed_output):
    now = timezone.now()
    for order in demo_orders().prefetch_related("events"):
        times = [e.occurred_at for e in order.events.all()]
        assert times == sorted(times), order.number
        assert times[0] == order.placed_at
        assert now - timedelta(days=15) < order.placed_at and times[-1] <= now
        if order.paid_at:
            assert order.placed_at < order.paid_at <= order.placed_at + timedelta(hours=1)
    shipped = demo_orders().filter(status__in=[OrderStatus.DELIVERED, OrderStatus.COMPLETED])
    for order in shipped.prefetch_related("events"):
        at = {e.kind: e.occurred_at for e in order.events.all()}
        assert at["paid"] < at["allocated"] < at["packed"] < at["shipped"] < at["delivered"]
        assert at["delivered"] - at["shipped"] >= timedelta(hours=12)


def test_seed_orders_carry_believable_business_context(seed_output):
    orders = demo_orders()
    assert orders.filter(is_presale=True, promised_ship_at__isnull=False).exists()
    assert orders.filter(is_vip=True).exists()
    assert orders.exclude(coupon_codes=[]).exists()
    assert orders.exclude(buyer_note="").exists()
    assert orders.exclude(invoice_title="").exists()
    assert orders.filter(lines__is_gift=True).exists()
    assert orders.filter(currency="USD", country="US").exists()
    provinces = set(orders.filter(country="CN").values_list("province", flat=True))
    assert len(provinces) >= 8 and provinces <= set(p for p in demo.PLACES)
    for order in orders:
        assert isinstance(order.paid_amount, Decimal)
        assert order.paid_amount == order.goods_amount - order.discount_amount + order.shipping_fee, order.number
        assert normalize_phone(order.receiver_phone, order.country), order.receiver_phone
        assert order.customer_id is not None


def test_seed_demo_customer_has_orders_on_several_channels(seed_output):
    orders = demo_orders().filter(customer__phone="+86" + demo.DEMO_PHONE)
    assert orders.count() >= 3
    assert orders.values("shop").distinct().count() >= 3


def test_seed_prints_logins_urls_and_the_summary(seed_output):
    assert "orderhub-demo" in seed_output
    base = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"
    for url in [f"{base}/admin/", f"{base}/api/v1/", f"{base}/api/docs/", f"{base}/healthz"]:
        assert url in seed_output
    assert "inventory audit OK" in seed_output
    assert f"{SEED_ORDERS} orders" in seed_output


def _counts() -> dict[str, int]:
    return {
        "orders": Order.objects.count(), "events": OrderEvent.objects.count(), "moves": StockMove.objects.count(),
        "shops": Shop.objects.count(), "warehouses": Warehouse.objects.count(), "skus": Sku.objects.count(),
        "mappings": SkuMapping.objects.count(), "rules": RoutingRule.objects.count(),
        "users": get_user_model().objects.count(), "reservations": Reservation.objects.count(),
        "customers": Customer.objects.count(), "pools": StockLevel.objects.count(), "groups": Group.objects.count(),
        "memberships": get_user_model().groups.through.objects.count(),
    }


def _state() -> dict:
    """What a re-run must leave as it was (besides passwords and webhook secrets)."""
    return {
        "orders": sorted(Order.objects.values_list("number", "status", "hold_reason", "customer_id", "updated_at")),
        "pools": sorted(StockLevel.objects.values_list("pk", "on_hand", "reserved", "inbound", "inbound_eta")),
        "barcodes": sorted(Sku.objects.values_list("code", "barcode")),
        "mappings": sorted(SkuMapping.objects.values_list("shop__code", "sku__code", "platform_sku_id")),
    }


@fast_hasher()
def test_seed_twice_creates_nothing_and_resets_passwords_and_secrets(seed_output):
    before, state = _counts(), _state()
    out = StringIO()
    call_command("seed_demo", orders=SEED_ORDERS, password="new-pass-1", webhook_secret="new-secret", stdout=out)
    assert "already seeded" in out.getvalue()
    assert _counts() == before
    assert _state() == state
    assert get_user_model().objects.get(username="cs").check_password("new-pass-1")
    assert set(Shop.objects.filter(code__in=demo.SHOP_CODES).values_list("webhook_secret", flat=True)) == {"new-secret"}
    assert audit() == []


@fast_hasher()
def test_a_rerun_with_another_size_and_seed_adds_nothing_either(seed_output):
    before, state = _counts(), _state()
    result = demo.seed(orders=500, seed=99)
    assert result.created is False
    assert result.orders == SEED_ORDERS and result.counts["warehouses"] == 6 and result.counts["skus"] == 31
    assert _counts() == before
    assert _state() == state


# --- the seeded routing rules pick the warehouse -------------------------------------------
def _sku_with_stock(warehouse: str, *, folding: bool) -> Sku:
    pools = StockLevel.objects.filter(warehouse__code=warehouse, on_hand__gte=50).select_related("sku")
    pools = pools.filter(sku__category="折叠盆") if folding else pools.exclude(sku__category="折叠盆")
    return pools.order_by("sku__code").first().sku


def _allocated_warehouses(order: Order) -> set[str]:
    return set(Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE)
               .values_list("stock_level__warehouse__code", flat=True))


def _allocate(province: str, city: str, sku: Sku) -> Order:
    shop = Shop.objects.get(code="demo-taobao")
    order = make_order(shop=shop, lines=[(sku, 1)], province=province, city=city)
    order = services.order_allocate(order=order, actor=demo.ACTOR)
    assert order.status == OrderStatus.ALLOCATED
    return order


def test_seed_rules_send_a_jiangsu_order_without_folding_basins_to_suzhou(seed_output):
    sku = _sku_with_stock("suzhou", folding=False)
    assert StockLevel.objects.filter(sku=sku, warehouse__code="tianjin", on_hand__gt=0).exists()  # a real choice
    order = _allocate("江苏省", "南京市", sku)
    assert _allocated_warehouses(order) == {"suzhou"}


def test_seed_rules_send_folding_basins_from_jiangsu_to_shenzhen(seed_output):
    order = _allocate("江苏省", "苏州市", _sku_with_stock("shenzhen", folding=True))
    assert _allocated_warehouses(order) == {"shenzhen"}


def test_seed_rules_send_a_beijing_order_to_tianjin(seed_output):
    sku = _sku_with_stock("tianjin", folding=False)
    assert StockLevel.objects.filter(sku=sku, warehouse__code="suzhou", on_hand__gt=0).exists()  # suzhou ranks first
    order = _allocate("北京市", "北京市", sku)
    assert _allocated_warehouses(order) == {"tianjin"}


# --- planning is deterministic --------------------------------------------------------------
def _plan_fingerprint(seed: int) -> list[tuple]:
    mappings = {code: {s.code: f"{code}:{s.code}" for s in demo.SKUS} for code in demo.SHOP_CODES}
    planner = demo.Planner(rng=random.Random(seed), mappings=mappings, count=40)
    return [(p.scenario, p.shop_code, p.data.receiver_phone, str(p.data.paid_amount)) for p in planner.plans()]


def test_same_seed_plans_the_same_orders():
    assert _plan_fingerprint(7) == _plan_fingerprint(7)
    assert _plan_fingerprint(7) != _plan_fingerprint(8)


def test_every_scenario_is_planned_even_for_a_small_demo():
    mappings = {code: {s.code: f"{code}:{s.code}" for s in demo.SKUS} for code in demo.SHOP_CODES}
    plans = demo.Planner(rng=random.Random(1), mappings=mappings, count=len(demo.SCENARIOS)).plans()
    assert {p.scenario for p in plans} == set(demo.SCENARIOS)
