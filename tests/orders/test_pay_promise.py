"""`order_pay` stamps the paid time and the promised ship time (paid + the shop's
ship-within hours); a presale order keeps its own promised date."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from rest_framework.test import APIClient

from config.errors import NotPermitted, TransitionNotAllowed
from orders import services
from orders.models import Order, OrderStatus as S
from tests.factories import SYSTEM, ShopFactory, SkuFactory, make_order, staff

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
PAID = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
PRESALE_DATE = datetime(2025, 3, 20, 0, 0, tzinfo=UTC)


@pytest.fixture
def sku():
    return SkuFactory(code="SKU-PAY")


def unpaid(sku, **kwargs) -> Order:
    order = make_order(lines=[(sku, 1)], paid=False, **kwargs)
    assert (order.status, order.paid_at, order.promised_ship_at) == (S.PENDING_PAYMENT, None, kwargs.get("promised_ship_at"))
    return order


@pytest.mark.parametrize("hours", [24, 48, 72])
def test_paying_a_normal_order_promises_shipping_within_the_shops_hours(sku, hours):
    order = unpaid(sku, shop=ShopFactory(code=f"shop-{hours}h", ship_within_hours=hours))
    order = services.order_pay(order=order, actor=SYSTEM, at=PAID)
    stored = Order.objects.get(pk=order.pk)
    assert stored.status == S.PAID
    assert stored.paid_at == PAID
    assert stored.promised_ship_at == PAID + timedelta(hours=hours)


def test_the_default_shop_promises_48_hours(sku):
    order = services.order_pay(order=unpaid(sku), actor=SYSTEM, at=PAID)
    assert Order.objects.get(pk=order.pk).promised_ship_at == datetime(2025, 3, 3, 2, 30, tzinfo=UTC)


def test_without_a_time_the_promise_counts_from_now(sku):
    order = unpaid(sku, shop=ShopFactory(code="shop-24h", ship_within_hours=24))
    with time_machine.travel(PAID, tick=False):
        order = services.order_pay(order=order, actor=SYSTEM)
    stored = Order.objects.get(pk=order.pk)
    assert (stored.paid_at, stored.promised_ship_at) == (PAID, PAID + timedelta(hours=24))


def test_an_order_created_paid_promises_from_its_platform_paid_time(sku):
    """A channel order that arrives paid: the promise counts from when the buyer paid, not
    from when we stored it."""
    stored_at = PAID + timedelta(hours=5)
    with time_machine.travel(stored_at, tick=False):
        order = make_order(shop=ShopFactory(code="shop-24h", ship_within_hours=24), lines=[(sku, 1)], paid_at=PAID)
    assert order.status == S.PAID
    stored = Order.objects.get(pk=order.pk)
    assert stored.paid_at == PAID
    assert stored.promised_ship_at == PAID + timedelta(hours=24)


def test_a_presale_order_keeps_its_own_promised_date(sku):
    order = unpaid(sku, is_presale=True, promised_ship_at=PRESALE_DATE,
                   shop=ShopFactory(code="shop-24h", ship_within_hours=24))
    order = services.order_pay(order=order, actor=SYSTEM, at=PAID)
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.paid_at) == (S.PAID, PAID)
    assert stored.promised_ship_at == PRESALE_DATE  # not PAID + 24 h


def test_a_presale_order_without_a_date_is_not_given_the_normal_promise(sku):
    """Presale goods ship later than the shop's normal hours: without the platform's date
    there is no promise to make, rather than a wrong one."""
    order = services.order_pay(order=unpaid(sku, is_presale=True), actor=SYSTEM, at=PAID)
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.paid_at, stored.promised_ship_at) == (S.PAID, PAID, None)


def test_a_platform_promise_on_a_normal_order_is_kept(sku):
    promised = PAID + timedelta(hours=12)
    order = services.order_pay(order=unpaid(sku, promised_ship_at=promised), actor=SYSTEM, at=PAID)
    assert Order.objects.get(pk=order.pk).promised_ship_at == promised


def test_paying_again_is_refused_and_moves_neither_time(sku):
    order = services.order_pay(order=unpaid(sku), actor=SYSTEM, at=PAID)
    with pytest.raises(TransitionNotAllowed):
        services.order_pay(order=order, actor=SYSTEM, at=PAID + timedelta(days=3))
    stored = Order.objects.get(pk=order.pk)
    assert (stored.paid_at, stored.promised_ship_at) == (PAID, PAID + timedelta(hours=48))


@pytest.mark.parametrize("role", ["customer_service", "warehouse", "finance", "operations"])
def test_only_the_supervisor_may_mark_paid_and_a_refusal_stamps_nothing(sku, role):
    from config.actors import Actor, Source

    order = unpaid(sku)
    with pytest.raises(NotPermitted):
        services.order_pay(order=order, actor=Actor.of(staff(role), Source.ADMIN), at=PAID)
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.paid_at, stored.promised_ship_at) == (S.PENDING_PAYMENT, None, None)


def test_paying_through_the_api_returns_the_promise_in_shanghai_time(sku):
    order = unpaid(sku, shop=ShopFactory(code="shop-24h", ship_within_hours=24))
    client = APIClient()
    client.force_authenticate(staff("supervisor"))
    with time_machine.travel(PAID, tick=False):
        response = client.post(f"/api/v1/orders/{order.number}/transitions/pay/", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["paid_at"], body["promised_ship_at"]) == (
        "paid", "2025-03-01T10:30:00+08:00", "2025-03-02T10:30:00+08:00")
