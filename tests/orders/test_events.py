"""orders.events: the wording and data of the stock-lines events (expired, confirmed)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orders import events
from orders.models import OrderEvent
from tests.factories import make_order

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
LINES = [("洛杉矶海外仓", "SN-001", 2), ("洛杉矶海外仓", "CJ-004", 1)]


def test_reservations_expired_lists_what_was_released(system):
    order = make_order()
    event = events.reservations_expired(order=order, actor=system, released=LINES, at=AT)
    event = OrderEvent.objects.get(pk=event.pk)
    assert event.kind == "reservations_expired"
    assert event.message == "备货预占未在时限内确认,已释放: 洛杉矶海外仓 SN-001×2、洛杉矶海外仓 CJ-004×1"
    assert event.data == {"released": [["洛杉矶海外仓", "SN-001", 2], ["洛杉矶海外仓", "CJ-004", 1]]}
    assert (event.from_status, event.to_status, event.occurred_at, event.actor_label) == ("", "", AT, "tests")


def test_stock_confirmed_lists_what_was_confirmed(system):
    order = make_order()
    event = events.stock_confirmed(order=order, actor=system, confirmed=LINES[:1], at=AT)
    event = OrderEvent.objects.get(pk=event.pk)
    assert event.kind == "stock_confirmed"
    assert event.message == "备货已确认,预占不再过期: 洛杉矶海外仓 SN-001×2"
    assert event.data == {"confirmed": [["洛杉矶海外仓", "SN-001", 2]]}
    assert (event.from_status, event.to_status, event.occurred_at) == ("", "", AT)
