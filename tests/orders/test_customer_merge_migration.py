"""0003_merge_duplicate_customers: duplicates by phone are merged before uniq_customer_phone.

The database is migrated back to the state just before the merge, rows are written with
the historical models (as an old installation would hold them), then migrated forward to
the newest state, which also adds the unique constraint.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from orders.models import Customer, Order

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("orders", "0002_event_status_choices")]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def old_apps():
    """The historical models as they were before the merge; the newest schema again afterwards."""
    try:
        yield _migrate(BEFORE)
    finally:
        _migrate(_latest())


class Old:
    """Writes rows with the historical models."""

    def __init__(self, apps):
        self.Customer = apps.get_model("orders", "Customer")
        self.Order = apps.get_model("orders", "Order")
        self.shop = apps.get_model("orders", "Shop").objects.create(code="old-shop", platform="taobao", name="老店")
        self.orders = 0

    def customer(self, phone: str, *, age_days: int, name: str = "", tags: list | None = None):
        customer = self.Customer.objects.create(phone=phone, name=name, tags=tags or [])
        created = T0 - timedelta(days=age_days)  # auto_now_add: set the creation time afterwards
        self.Customer.objects.filter(pk=customer.pk).update(created_at=created)
        return customer.pk

    def order(self, customer_id: int | None) -> int:
        self.orders += 1
        return self.Order.objects.create(shop=self.shop, number=f"OLD{self.orders:04d}",
                                         platform_order_id=f"P{self.orders}", customer_id=customer_id).pk


def test_duplicates_merge_into_the_oldest_and_their_orders_follow(old_apps):
    old = Old(old_apps)
    newer = old.customer("+8613800138000", age_days=1, name="张三", tags=["VIP"])
    oldest = old.customer("+8613800138000", age_days=30, tags=["老客"])
    middle = old.customer("+8613800138000", age_days=10, tags=["VIP", "直播"])
    orders = [old.order(newer), old.order(oldest), old.order(middle), old.order(middle)]
    assert oldest > newer  # the oldest is the one created first, not the lowest id

    _migrate(_latest())

    assert list(Customer.objects.filter(phone="+8613800138000").values_list("pk", flat=True)) == [oldest]
    assert not Customer.objects.filter(pk__in=[newer, middle]).exists()
    assert set(Order.objects.filter(pk__in=orders).values_list("customer_id", flat=True)) == {oldest}
    kept = Customer.objects.get(pk=oldest)
    assert kept.name == "张三"  # its own name was empty
    assert kept.tags == ["老客", "VIP", "直播"]


def test_phones_typed_differently_are_one_customer_stored_as_e164(old_apps):
    old = Old(old_apps)
    oldest = old.customer("138 0013 8000", age_days=5, name="李四")
    newer = old.customer("+8613800138000", age_days=2, name="李小四")
    order_ids = [old.order(oldest), old.order(newer)]

    _migrate(_latest())

    kept = Customer.objects.get(pk=oldest)
    assert (kept.phone, kept.name) == ("+8613800138000", "李四")
    assert not Customer.objects.filter(pk=newer).exists()
    assert set(Order.objects.filter(pk__in=order_ids).values_list("customer_id", flat=True)) == {oldest}


def test_virtual_number_extensions_are_different_people(old_apps):
    old = Old(old_apps)
    owner = old.customer("+8613800138000", age_days=9)
    ext_1234 = old.customer("13800138000-1234", age_days=8)
    ext_5678 = old.customer("13800138000-5678", age_days=7)
    order_ids = {pk: old.order(pk) for pk in (owner, ext_1234, ext_5678)}

    _migrate(_latest())

    assert set(Customer.objects.values_list("pk", flat=True)) == {owner, ext_1234, ext_5678}
    assert Customer.objects.get(pk=ext_1234).phone == "13800138000-1234"  # left as it was
    for customer_id, order_id in order_ids.items():
        assert Order.objects.get(pk=order_id).customer_id == customer_id


def test_identical_virtual_numbers_are_one_buyer(old_apps):
    old = Old(old_apps)
    first = old.customer("13800138000-1234", age_days=4)
    second = old.customer("13800138000-1234", age_days=3)
    order_id = old.order(second)

    _migrate(_latest())

    assert list(Customer.objects.values_list("pk", flat=True)) == [first]
    assert Order.objects.get(pk=order_id).customer_id == first


def test_distinct_and_empty_phones_are_left_alone(old_apps):
    old = Old(old_apps)
    alone = old.customer("+8613911112222", age_days=3, name="王五")
    empty = [old.customer("", age_days=2), old.customer("", age_days=1)]  # '' is outside the constraint
    order_id = old.order(None)

    _migrate(_latest())

    assert set(Customer.objects.values_list("pk", flat=True)) == {alone, *empty}
    assert Customer.objects.get(pk=alone).phone == "+8613911112222"
    assert Order.objects.get(pk=order_id).customer_id is None


def test_after_the_merge_the_constraint_holds(old_apps):
    old = Old(old_apps)
    old.customer("+8613800138000", age_days=2)
    old.customer("+8613800138000", age_days=1)

    _migrate(_latest())

    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(phone="+8613800138000")
