"""The pool (StockLevel) change form never writes quantities: not even a superuser's POST
can set on_hand or reserved, and saving the form does not put back the numbers it read
when a reservation was made meanwhile."""

from __future__ import annotations

from datetime import date
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from inventory.admin import StockLevelAdmin
from inventory.audit import audit
from inventory.models import StockLevel, StockMove
from orders import services
from orders.models import OrderStatus as S
from tests.factories import SYSTEM, SkuFactory, UserFactory, WarehouseFactory, make_order, stock

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    return stock(WarehouseFactory(code="form-wh"), SkuFactory(code="SKU-FORM"), 10)


@pytest.fixture
def root_client():
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))
    return client


def post_form(client, pool, **fields):
    data = {"inbound": "0", "inbound_eta": "", **{k: str(v) for k, v in fields.items()}}
    return client.post(reverse("admin:inventory_stocklevel_change", args=[pool.pk]), data)


def test_superuser_post_cannot_set_on_hand_or_reserved(pool, root_client):
    moves = StockMove.objects.count()
    response = post_form(root_client, pool, on_hand=999, reserved=5, inbound=7, inbound_eta="2026-12-24")
    assert response.status_code == 302
    pool.refresh_from_db()
    assert (pool.on_hand, pool.reserved) == (10, 0)
    assert (pool.inbound, pool.inbound_eta) == (7, date(2026, 12, 24))
    assert StockMove.objects.count() == moves
    assert audit() == []


def test_saving_the_form_keeps_a_reservation_made_meanwhile(pool, root_client):
    order = make_order(lines=[(pool.sku, 3)])
    moves_before = StockMove.objects.count()
    save_form = StockLevelAdmin.save_form

    def allocate_then_save_form(self, request, form, change):
        # The admin has read the pool already; another person allocates an order now.
        services.order_allocate(order=order, actor=SYSTEM)
        return save_form(self, request, form, change)

    with mock.patch.object(StockLevelAdmin, "save_form", allocate_then_save_form):
        response = post_form(root_client, pool, on_hand=999, reserved=0, inbound=4)
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == S.ALLOCATED
    pool = StockLevel.objects.get(pk=pool.pk)
    assert (pool.on_hand, pool.reserved) == (10, 3)  # the concurrent allocation's numbers, untouched
    assert pool.inbound == 4
    assert StockMove.objects.count() == moves_before + 1  # the allocation's reserve move only
    assert audit() == []


def test_form_offers_no_quantity_inputs_even_to_a_superuser(pool, root_client):
    form = root_client.get(reverse("admin:inventory_stocklevel_change", args=[pool.pk])).context["adminform"].form
    assert set(form.fields) == {"inbound", "inbound_eta"}
