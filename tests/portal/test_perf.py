"""The portal's pages stay cheap (issue 16 benchmark): bounded queries whatever the number
of orders, the buyer/receiver page merge, and the cache-backed session engine used with Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.portal.conftest import login, place_order
from tests.portal.test_orders import BUYER, order_page, tokens

pytestmark = pytest.mark.django_db

FRIEND = "13900001111"


def _count(client, path: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries.captured_queries), [q["sql"] for q in queries.captured_queries]


def test_the_list_merges_bought_and_received_orders_newest_first_without_duplicates(client):
    now = timezone.now()
    expected = []  # titles, newest first
    for i in range(25):
        placed = now - timedelta(hours=i)
        if i % 3 == 0:  # a gift from a friend, addressed to me
            place_order(buyer=FRIEND, receiver=BUYER, title=f"礼物{i:02d}", placed_at=placed)
            expected.append(f"礼物{i:02d}")  # the receiver sees no items: checked by token count below
        elif i % 3 == 1:  # bought for someone else: mine as the buyer
            place_order(buyer=BUYER, receiver="13700009999", title=f"送人{i:02d}", placed_at=placed)
            expected.append(f"送人{i:02d}")
        else:  # bought for myself: buyer and receiver, listed once
            place_order(buyer=BUYER, title=f"自用{i:02d}", placed_at=placed)
            expected.append(f"自用{i:02d}")
    place_order(buyer=FRIEND, title="朋友自己的", placed_at=now)
    login(client, BUYER)

    first = client.get("/h5/orders/").content.decode()
    second = client.get("/h5/orders/?page=2").content.decode()

    assert len(tokens(first)) == 20 and len(tokens(second)) == 5
    assert not set(tokens(first)) & set(tokens(second))
    assert "朋友自己的" not in first + second
    shown = [t for t in expected if not t.startswith("礼物")]  # gifts show no item titles
    pages = first + second
    assert all(t in pages for t in shown)
    assert [pages.index(t) for t in shown] == sorted(pages.index(t) for t in shown)
    assert first.count("寄给您的包裹") + second.count("寄给您的包裹") == 9


def _session_queries() -> int:
    """1 with database sessions; 0 with the cache-backed ones used with Redis."""
    from django.conf import settings

    return 0 if settings.SESSION_ENGINE.endswith("cached_db") else 1


@pytest.fixture
def no_page_cache(settings):
    """The pages rendered for every request (portal/pagecache.py off)."""
    settings.PORTAL_PAGE_CACHE_SECONDS = 0


def test_list_queries_are_bounded_whatever_the_number_of_orders(client, no_page_cache, django_assert_max_num_queries):
    now = timezone.now()
    place_order(buyer=BUYER, placed_at=now - timedelta(days=1))
    place_order(buyer=FRIEND, receiver=BUYER, placed_at=now - timedelta(days=2))
    login(client, BUYER)
    few, _ = _count(client, "/h5/orders/")
    for i in range(24):
        place_order(buyer=BUYER if i % 2 else FRIEND, receiver=BUYER, placed_at=now - timedelta(hours=i))

    many, _ = _count(client, "/h5/orders/")
    with django_assert_max_num_queries(4):  # session, orders (page ids as a subquery), latest events, lines
        client.get("/h5/orders/?page=2")

    assert many == few <= 4


def test_timeline_queries_are_bounded(client, shipped_order, no_page_cache, django_assert_max_num_queries):
    for i in range(10):
        place_order(buyer=BUYER)
    login(client, BUYER)
    listing = client.get("/h5/orders/").content.decode()
    token = tokens(listing)[-1]  # the shipped order: the oldest

    with django_assert_max_num_queries(6):  # session, visible ids, order, events, lines (+ warehouse)
        response = client.get(f"/h5/orders/{token}/")
    assert response.status_code == 200 and "SF1234567890" in response.content.decode()


def test_with_the_page_cache_a_repeated_list_is_one_query_besides_the_session(client, page_cache):
    now = timezone.now()
    for i in range(30):
        place_order(buyer=BUYER if i % 2 else FRIEND, receiver=BUYER, placed_at=now - timedelta(hours=i))
    login(client, BUYER)

    miss, _ = _count(client, "/h5/orders/?page=2")
    hit, sql = _count(client, "/h5/orders/?page=2")

    assert miss <= 5  # session, fingerprint, page ids + orders, latest events, lines
    assert hit == _session_queries() + 1 and "django_session" not in sql[-1]  # (session,) fingerprint


def test_with_the_page_cache_a_repeated_timeline_is_one_query_besides_the_session(client, shipped_order, page_cache):
    for i in range(10):
        place_order(buyer=BUYER)
    login(client, BUYER)
    token = tokens(client.get("/h5/orders/").content.decode())[-1]

    miss, _ = _count(client, f"/h5/orders/{token}/")
    hit, _ = _count(client, f"/h5/orders/{token}/")

    assert miss <= 7  # session, visible ids, fingerprint, order, events, lines (+ warehouse)
    assert hit == _session_queries() + 1  # (session,) fingerprint: the token's order id is remembered too


@pytest.fixture
def cached_sessions(settings):
    """The session engine used with Redis (config/settings.py), on an in-process cache."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "portal-perf-tests"}}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_cached_sessions_read_no_session_row_per_page(client, cached_sessions):
    from django.contrib.sessions.models import Session

    place_order(buyer=BUYER)
    login(client, BUYER)
    assert Session.objects.filter(session_key=client.cookies["sessionid"].value).exists()  # written through

    _, sql = _count(client, "/h5/orders/")

    assert not any("django_session" in q for q in sql)


def test_cached_sessions_still_forget_the_phone_after_30_minutes_idle(client, cached_sessions):
    place_order(buyer=BUYER)
    start = timezone.now()
    login(client, BUYER)
    with time_machine.travel(start + timedelta(minutes=29)):
        assert client.get("/h5/orders/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=58)):
        assert order_page(client).status_code == 200
    with time_machine.travel(start + timedelta(minutes=58 + 31)):
        response = client.get("/h5/orders/")
        assert response.status_code == 302 and response["Location"] == "/h5/"
        assert client.get("/h5/orders/").status_code == 302


def test_cached_sessions_logout_and_a_new_session_id_at_login(client, cached_sessions):
    place_order(buyer=BUYER)
    client.get("/h5/")
    login(client, BUYER)
    logged_in_key = client.cookies["sessionid"].value
    assert client.get("/h5/orders/").status_code == 200

    client.post("/h5/logout/")

    assert client.cookies["sessionid"].value != logged_in_key
    assert client.get("/h5/orders/").status_code == 302
    other = client.__class__()
    other.cookies["sessionid"] = logged_in_key  # the old id is dead, in the cache too
    assert other.get("/h5/orders/").status_code == 302
