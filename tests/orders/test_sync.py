"""Platform sync against a fake Pinduoduo on 127.0.0.1: paging, back-off, failures, resume.

The fake (tests/orders/fake_platform.py) speaks the real PDD protocol to the real
`PddAdapter`; the client is the real httpx client. What is asserted is the outcome: orders
in the database (each exactly once), the stored cursor, the sync state an operator sees, the
sleeps the client asked for.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_httpserver import HTTPServer

from config.actors import Actor, Source
from config.errors import NotPermitted
from orders import sync, sync_tasks
from orders.models import Order, Shop, ShopSyncState, SyncStatus
from orders.platforms.client import PlatformCallFailed, PlatformClient, local_transport, parse_retry_after
from orders.platforms.interface import PlatformRequest, WindowCursor
from tests.factories import ShopFactory, staff
from tests.orders import fake_platform as fp

pytestmark = pytest.mark.django_db

N_ORDERS = 5
PAGE = 2  # 5 orders → pages of 2, 2, 1


class Killed(BaseException):
    """A worker dying (SIGKILL, OOM): nothing after it runs, not even `except Exception`."""


@pytest.fixture
def server():
    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


@pytest.fixture
def platform(server):
    fake = fp.FakePdd(orders=[fp.pdd_order(n) for n in range(1, N_ORDERS + 1)])
    server.expect_request("/api/router", method="POST").respond_with_handler(fake.handler)
    return fake


@pytest.fixture(autouse=True)
def ingest(monkeypatch):
    """The real ingest (`orders.ingest.ingest_payloads`); the PDD adapter on the fake's clock."""
    monkeypatch.setattr(sync, "adapter_for", lambda shop: fp.adapter())


@pytest.fixture
def shop(server):
    shop = ShopFactory(platform="pdd", code="pdd-main", app_key="cid", app_secret=fp.SECRET, access_token="tok",
                       sync_enabled=True, sync_interval_minutes=5, api_base_url=server.url_for("/").rstrip("/"))
    ShopSyncState.objects.create(shop=shop, start_from=fp.START)
    return shop


@pytest.fixture
def sleeps():
    return []


def run(shop, sleeps, **kwargs):
    kwargs.setdefault("page_size", PAGE)
    return sync.run_sync(shop, sleep=sleeps.append, **kwargs)


def order_ids(shop) -> list[str]:
    return sorted(Order.objects.filter(shop=shop).values_list("platform_order_id", flat=True))


ALL = sorted(fp.pdd_order(n)["order_sn"] for n in range(1, N_ORDERS + 1))


def first_window_page(page: int) -> str:
    """The first window (start_from minus PDD's 1 min overlap … the platform's now), page n."""
    return str(WindowCursor(fp.START - timedelta(minutes=1), fp.NOW, page))


NEXT_WINDOW = str(WindowCursor(fp.NOW, fp.NOW, 1))


# --- paging -----------------------------------------------------------------------------------
def test_pages_through_the_window_and_stores_the_next_one(shop, platform, sleeps):
    result = run(shop, sleeps)

    assert result.outcome == "ok", result.error
    assert (result.pages, result.fetched, result.created, result.updated, result.failed) == (3, 5, 5, 0, 0)
    assert order_ids(shop) == ALL
    assert platform.pages_asked() == [1, 2, 3]
    assert platform.bad_signatures == 0
    assert {c["type"] for c in platform.calls} == {"pdd.order.number.list.increment.get"}
    state = ShopSyncState.objects.get(shop=shop)
    assert state.cursor == NEXT_WINDOW
    assert state.status == SyncStatus.OK
    assert (state.last_pages, state.last_fetched, state.last_created, state.last_failed) == (3, 5, 5, 0)
    assert state.newest_platform_updated_at == fp.START + timedelta(minutes=1 + N_ORDERS)
    assert state.lag_seconds is not None and state.lag_seconds > 0
    assert state.last_error == "" and state.consecutive_failures == 0
    assert state.lease_owner == "" and state.lease_expires_at is None
    assert state.next_run_at > timezone.now() + timedelta(minutes=4)
    assert sleeps == []


def test_a_second_run_starts_where_the_first_stopped_and_a_replay_changes_nothing(shop, platform, sleeps):
    run(shop, sleeps)
    again = run(shop, sleeps)
    assert (again.outcome, again.fetched, again.created) == ("ok", 0, 0)
    assert platform.calls[-1]["start_updated_at"] == str(int(fp.NOW.timestamp()))

    ShopSyncState.objects.filter(shop=shop).update(cursor="")  # an operator replays the window
    replay = run(shop, sleeps)
    assert (replay.fetched, replay.created, replay.updated, replay.unchanged) == (5, 0, 0, 5)
    assert order_ids(shop) == ALL


def test_max_pages_leaves_the_rest_for_a_run_scheduled_at_once(shop, platform, sleeps):
    first = run(shop, sleeps, max_pages=2)
    assert (first.outcome, first.pages, first.created) == ("ok", 2, 4)
    state = ShopSyncState.objects.get(shop=shop)
    assert state.cursor == first_window_page(3)
    assert state.next_run_at <= timezone.now()
    second = run(shop, sleeps, max_pages=2)
    assert (second.pages, second.created) == (1, 1)
    assert order_ids(shop) == ALL


# --- back-off -----------------------------------------------------------------------------------
def test_429_with_retry_after_is_waited_out_then_the_page_is_fetched(shop, platform, sleeps):
    platform.faults = {2: ("status", 429, 7)}  # page 2, first try
    result = run(shop, sleeps)
    assert result.outcome == "ok", result.error
    assert sleeps == [7.0]  # Retry-After (7 s) beats the first back-off step (1 s)
    assert platform.pages_asked() == [1, 2, 2, 3]
    assert order_ids(shop) == ALL


def test_5xx_backs_off_exponentially_and_recovers_on_the_fifth_try(shop, platform, sleeps):
    platform.faults = {1: ("status", 503), 2: ("status", 502), 3: ("status", 500), 4: ("status", 504)}
    result = run(shop, sleeps)
    assert result.outcome == "ok", result.error
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert order_ids(shop) == ALL


def test_five_failures_fail_the_run_visibly_and_keep_the_cursor(shop, platform, sleeps, client):
    run(shop, sleeps, max_pages=1)  # page 1 stored
    platform.faults = {n: ("status", 503) for n in range(2, 20)}
    result = run(shop, sleeps)

    assert result.outcome == "failed"
    assert sleeps == [1.0, 2.0, 4.0, 8.0]  # 5 tries, then it gives up
    assert platform.pages_asked() == [1, 2, 2, 2, 2, 2]
    state = ShopSyncState.objects.get(shop=shop)
    assert state.status == SyncStatus.FAILED
    assert "http_503" in state.last_error and "after 5" in state.last_error
    assert state.consecutive_failures == 1
    assert state.cursor == first_window_page(2)  # not advanced, not rewound
    assert state.lease_owner == "" and state.lease_expires_at is None
    assert state.last_succeeded_at is not None and state.last_finished_at >= state.last_succeeded_at
    assert order_ids(shop) == ALL[:2]

    run(shop, sleeps)
    state.refresh_from_db()
    assert state.consecutive_failures == 2
    # Backs off: 5 min × 2 after the second failure in a row.
    assert state.next_run_at > timezone.now() + timedelta(minutes=9)

    client.force_login(staff("operations"))
    page = client.get("/admin/orders/shopsyncstate/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "pdd-main" in body and "失败" in body and "http_503" in body


def test_a_timeout_is_retried(shop, platform, sleeps):
    platform.faults = {1: ("slow", 1.0)}
    result = run(shop, sleeps, timeout=httpx.Timeout(0.3))
    assert result.outcome == "ok", result.error
    assert sleeps == [1.0]
    assert order_ids(shop) == ALL


def test_a_platform_error_envelope_marked_rate_limited_fails_at_once_and_waits_before_the_next_run(
        shop, platform, sleeps):
    platform.faults = {1: ("envelope", 52101, "当前接口您已被限流,请稍后重试")}
    result = run(shop, sleeps)
    assert result.outcome == "failed"
    assert sleeps == []  # 60 s is more than a run sleeps through (MAX_RETRY_AFTER): fail now
    state = ShopSyncState.objects.get(shop=shop)
    assert "52101" in state.last_error
    assert state.next_run_at >= timezone.now() + timedelta(minutes=5) - timedelta(seconds=5)


def test_a_non_retryable_platform_error_is_not_retried(shop, platform, sleeps):
    platform.faults = {1: ("envelope", 10019, "access_token已过期")}
    result = run(shop, sleeps)
    assert result.outcome == "failed" and sleeps == [] and len(platform.calls) == 1
    assert "10019" in ShopSyncState.objects.get(shop=shop).last_error


def test_a_refused_payload_is_counted_and_shown_and_its_neighbours_are_kept(shop, platform, sleeps):
    broken = fp.pdd_order(3)
    del broken["order_sn"]
    platform.orders = [fp.pdd_order(n) for n in (1, 2, 4, 5)] + [broken]
    result = run(shop, sleeps)
    assert result.outcome == "partial"
    assert (result.fetched, result.created, result.failed) == (5, 4, 1)
    assert len(order_ids(shop)) == 4
    state = ShopSyncState.objects.get(shop=shop)
    assert state.status == SyncStatus.PARTIAL and "order_sn" in state.last_error
    assert state.consecutive_failures == 0 and state.cursor == NEXT_WINDOW
    with pytest.raises(CommandError, match="1 payload"):  # the command says so with its exit code
        ShopSyncState.objects.filter(shop=shop).update(cursor="")
        call_command("sync_shop", "pdd-main", stdout=StringIO())


# --- a worker killed, a page half done -------------------------------------------------------
def test_worker_killed_between_pages_loses_nothing_and_duplicates_nothing(shop, platform, sleeps):
    def die(number, page):
        if number == 1:
            raise Killed

    with pytest.raises(Killed):
        run(shop, sleeps, after_page=die)
    state = ShopSyncState.objects.get(shop=shop)
    assert state.cursor == first_window_page(2)  # page 1 was committed, so its cursor was stored
    assert order_ids(shop) == ALL[:2]
    assert state.lease_owner  # the dead worker never released it …

    blocked = run(shop, sleeps)
    assert blocked.outcome == "skipped"  # … so nobody runs the shop until it expires,
    later = timezone.now() + timedelta(seconds=sync.LEASE_SECONDS + 1)
    resumed = run(shop, sleeps, now=lambda: later)  # … and then the next worker resumes
    assert resumed.outcome == "ok", resumed.error
    assert (resumed.created, resumed.unchanged) == (3, 0)
    assert order_ids(shop) == ALL
    assert Order.objects.filter(shop=shop).count() == N_ORDERS


def test_a_crash_between_pages_releases_the_lease_and_the_next_run_resumes(shop, platform, sleeps):
    def crash(number, page):
        if number == 1:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run(shop, sleeps, after_page=crash)
    state = ShopSyncState.objects.get(shop=shop)
    assert state.status == SyncStatus.FAILED and "disk full" in state.last_error
    assert state.lease_owner == ""
    assert run(shop, sleeps).created == 3
    assert order_ids(shop) == ALL


def test_a_worker_killed_mid_page_fetches_that_page_again_without_duplicates(shop, platform, sleeps, monkeypatch):
    real = sync.ingest_payloads
    calls = []

    def dies_inside_page_two(*, shop, payloads, actor, adapter=None):
        calls.append(len(payloads))
        if len(calls) == 2:
            real(shop=shop, payloads=payloads[:1], actor=actor, adapter=adapter)  # one order of page 2 committed
            raise Killed
        return real(shop=shop, payloads=payloads, actor=actor, adapter=adapter)

    monkeypatch.setattr(sync, "ingest_payloads", dies_inside_page_two)
    with pytest.raises(Killed):
        run(shop, sleeps)
    assert ShopSyncState.objects.get(shop=shop).cursor == first_window_page(2)
    assert order_ids(shop) == ALL[:3]

    monkeypatch.setattr(sync, "ingest_payloads", real)
    later = timezone.now() + timedelta(seconds=sync.LEASE_SECONDS + 1)
    resumed = run(shop, sleeps, now=lambda: later)
    assert (resumed.created, resumed.unchanged) == (2, 1)
    assert order_ids(shop) == ALL


# --- the admin during a sync ----------------------------------------------------------------------
def _shop_form(shop: Shop, **changes) -> dict:
    data = {"platform": shop.platform, "code": shop.code, "name": shop.name, "is_active": "on",
            "currency": shop.currency, "time_zone": shop.time_zone, "ship_within_hours": shop.ship_within_hours,
            "sync_enabled": "on", "sync_interval_minutes": shop.sync_interval_minutes,
            "api_base_url": shop.api_base_url, "app_key": shop.app_key, "app_secret": "", "access_token": "",
            "webhook_secret": ""}
    data.update(changes)
    return data


def test_saving_the_shop_in_the_admin_during_a_sync_does_not_rewind_the_cursor(shop, platform, sleeps, client):
    client.force_login(staff("operations"))
    saved = []

    def operator_saves_the_shop(number, page):
        if number == 2:
            response = client.post(f"/admin/orders/shop/{shop.pk}/change/", _shop_form(shop, name="拼多多旗舰店"))
            assert response.status_code == 302, response.content.decode()[:2000]
            saved.append(ShopSyncState.objects.get(shop=shop).cursor)

    result = run(shop, sleeps, after_page=operator_saves_the_shop)

    assert result.outcome == "ok", result.error
    assert saved == [first_window_page(3)]
    shop.refresh_from_db()
    assert shop.name == "拼多多旗舰店"
    assert shop.app_secret == fp.SECRET  # a blank secret box keeps the stored one
    state = ShopSyncState.objects.get(shop=shop)
    assert state.cursor == NEXT_WINDOW
    assert order_ids(shop) == ALL


# --- the lease ------------------------------------------------------------------------------------
def test_a_second_sync_while_one_holds_the_lease_skips_and_changes_nothing(shop, platform, sleeps):
    assert sync.acquire_lease(shop, "other-machine:1", now=timezone.now())
    result = run(shop, sleeps)
    assert result.outcome == "skipped" and "other-machine:1" in result.error
    assert platform.calls == [] and order_ids(shop) == []
    state = ShopSyncState.objects.get(shop=shop)
    assert state.lease_owner == "other-machine:1" and state.cursor == ""


def test_the_lease_is_renewed_while_the_client_backs_off(shop, platform):
    platform.faults = {1: ("status", 503), 2: ("status", 503)}
    clock = {"now": timezone.now()}
    thief = []

    def slow_sleep(seconds):  # each back-off "takes" 170 s: an unrenewed 180 s lease would lapse
        clock["now"] += timedelta(seconds=170)
        thief.append(sync.acquire_lease(shop, "thief", now=clock["now"]))

    result = sync.run_sync(shop, sleep=slow_sleep, now=lambda: clock["now"], page_size=PAGE)
    assert result.outcome == "ok", result.error
    assert thief == [False, False]
    assert order_ids(shop) == ALL


def test_a_lost_lease_stops_the_run_without_storing_its_cursor(shop, platform, sleeps):
    def stolen(number, page):
        if number == 1:  # our lease lapsed and another worker took the shop
            ShopSyncState.objects.filter(shop=shop).update(lease_owner="thief", cursor="theirs|x|1")

    result = run(shop, sleeps, after_page=stolen)
    assert result.outcome == "failed" and "LeaseLost" in result.error
    state = ShopSyncState.objects.get(shop=shop)
    assert (state.lease_owner, state.cursor) == ("thief", "theirs|x|1")


# --- dispatcher, task, sync now -----------------------------------------------------------------
def test_dispatcher_enqueues_each_due_enabled_shop_once(shop):
    now = timezone.now()
    due = shop
    ShopSyncState.objects.filter(shop=due).update(next_run_at=now - timedelta(seconds=1))
    later = ShopFactory(platform="pdd", code="later", sync_enabled=True)
    ShopSyncState.objects.create(shop=later, next_run_at=now + timedelta(minutes=3))
    ShopFactory(platform="pdd", code="disabled", sync_enabled=False)
    ShopFactory(platform="taobao", code="inactive", sync_enabled=True, is_active=False)
    ShopFactory(platform="distributor", code="files", sync_enabled=True)
    running = ShopFactory(platform="jd", code="running", sync_enabled=True)
    ShopSyncState.objects.create(shop=running, lease_owner="w", lease_expires_at=now + timedelta(minutes=1))
    fresh = ShopFactory(platform="douyin", code="fresh", sync_enabled=True)  # no state yet: due now

    queued = []
    assert sync_tasks.dispatch_due_syncs(enqueue=lambda func, *args, **kw: queued.append((func, args))) == 2
    assert sorted(queued) == sorted([("orders.sync_tasks.sync_shop_task", (due.pk,)),
                                     ("orders.sync_tasks.sync_shop_task", (fresh.pk,))])
    assert ShopSyncState.objects.get(shop=due).next_run_at > now + timedelta(minutes=4)

    again = []
    assert sync_tasks.dispatch_due_syncs(enqueue=lambda func, *args, **kw: again.append(args)) == 0


def test_claim_due_lets_one_of_two_dispatchers_win(shop):
    state = ShopSyncState.objects.select_related("shop").get(shop=shop)
    now = timezone.now()
    assert sync.claim_due(state, now) is True
    assert sync.claim_due(state, now) is False  # the second dispatcher read the same row


def test_the_task_runs_one_sync_and_reports_it(shop, platform):
    result = sync_tasks.sync_shop_task(shop.pk)
    assert result["outcome"] == "ok" and result["created"] == N_ORDERS
    assert order_ids(shop) == ALL
    assert sync_tasks.sync_shop_task(999999) == {"shop": 999999, "outcome": "gone"}


def test_the_dispatcher_schedule_is_installed():
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=StringIO())
    schedule = Schedule.objects.get(name="platform sync dispatcher")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "orders.sync_tasks.dispatch_due_syncs", Schedule.MINUTES, 1)


# Who may start a sync: "config edits (shops …)" are operations' and the supervisor's.
@pytest.mark.parametrize("role, allowed", [
    ("operations", True), ("supervisor", True),
    ("customer_service", False), ("warehouse", False), ("finance", False),
])
def test_sync_now_is_for_operations_and_supervisors(shop, role, allowed):
    queued = []
    actor = Actor.of(staff(role), Source.ADMIN)
    if allowed:
        sync.request_sync(shop=shop, actor=actor, enqueue=lambda *a, **kw: queued.append(a) or "task-1")
        assert queued == [("orders.sync_tasks.sync_shop_task", shop.pk)]
    else:
        with pytest.raises(NotPermitted):
            sync.request_sync(shop=shop, actor=actor, enqueue=lambda *a, **kw: queued.append(a))
        assert queued == []


@pytest.fixture
def enqueued(monkeypatch):
    import django_q.tasks

    queued = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda func, *args, **kw: queued.append((func, args)) or "t1")
    return queued


def test_sync_now_action_on_the_shop_admin_enqueues_a_task_and_says_so(shop, client, enqueued):
    client.force_login(staff("operations"))
    response = client.post("/admin/orders/shop/", {"action": "sync_now", "_selected_action": [shop.pk]}, follow=True)
    assert response.status_code == 200
    assert enqueued == [("orders.sync_tasks.sync_shop_task", (shop.pk,))]
    assert "已加入同步队列:pdd-main" in [str(m) for m in response.context["messages"]]


def test_sync_now_while_the_shop_is_syncing_queues_nothing_and_says_so(shop, client, enqueued):
    assert sync.acquire_lease(shop, "busy-worker", now=timezone.now())
    client.force_login(staff("operations"))
    response = client.post("/admin/orders/shop/", {"action": "sync_now", "_selected_action": [shop.pk]}, follow=True)
    assert enqueued == []
    assert "正在同步,无需重复排队:pdd-main" in [str(m) for m in response.context["messages"]]


def test_sync_now_action_is_not_offered_to_warehouse_staff(shop, client, enqueued):
    client.force_login(staff("warehouse"))
    listing = client.get("/admin/orders/shop/")
    assert listing.status_code == 200 and "sync_now" not in listing.content.decode()
    client.post("/admin/orders/shop/", {"action": "sync_now", "_selected_action": [shop.pk]})
    assert enqueued == []


def test_sync_now_from_the_health_list(shop, client, enqueued):
    client.force_login(staff("supervisor"))
    state = ShopSyncState.objects.get(shop=shop)
    response = client.post("/admin/orders/shopsyncstate/", {"action": "sync_selected", "_selected_action": [state.pk]},
                           follow=True)
    assert response.status_code == 200
    assert enqueued == [("orders.sync_tasks.sync_shop_task", (shop.pk,))]


def test_health_list_is_read_only_and_limited_to_the_persons_shops(shop, client):
    from tests.factories import scoped

    other = ShopFactory(platform="jd", code="jd-other")
    ShopSyncState.objects.create(shop=other, status=SyncStatus.FAILED, last_error="secret-jd-error")
    user = scoped(staff("finance"), shops=[shop])
    client.force_login(user)
    listing = client.get("/admin/orders/shopsyncstate/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "pdd-main" in body and "jd-other" not in body and "secret-jd-error" not in body
    state = ShopSyncState.objects.get(shop=shop)
    assert client.get(f"/admin/orders/shopsyncstate/{state.pk}/change/").status_code == 200
    other_state = ShopSyncState.objects.get(shop=other)
    assert client.get(f"/admin/orders/shopsyncstate/{other_state.pk}/change/").status_code == 404
    assert client.post(f"/admin/orders/shopsyncstate/{state.pk}/change/", {"cursor": "rewound"}).status_code == 403
    assert ShopSyncState.objects.get(shop=shop).cursor == ""
    assert "sync_selected" not in body  # finance may look, not start syncs


# --- the command ----------------------------------------------------------------------------------
def test_sync_shop_command_prints_the_counts(shop, platform):
    out = StringIO()
    call_command("sync_shop", "pdd-main", "--page-size", "2", stdout=out)
    assert "pdd-main: ok created=5 updated=0 unchanged=0 failed=0 fetched=5 pages=3" in out.getvalue()
    assert order_ids(shop) == ALL


def test_sync_shop_command_fails_for_an_unknown_shop():
    with pytest.raises(CommandError, match=r"^unknown shop: nope$"):
        call_command("sync_shop", "nope", stdout=StringIO())


def test_sync_shop_command_exits_non_zero_when_the_run_fails(shop, platform, monkeypatch):
    monkeypatch.setattr(sync.time, "sleep", lambda s: None)
    platform.faults = {n: ("status", 500) for n in range(1, 10)}
    with pytest.raises(CommandError, match="sync failed"):
        call_command("sync_shop", "pdd-main", stdout=StringIO())
    assert ShopSyncState.objects.get(shop=shop).status == SyncStatus.FAILED


# --- the client on its own ------------------------------------------------------------------------
def test_retry_after_as_seconds_or_http_date():
    from datetime import datetime, timezone as tz

    now = datetime(2024, 1, 2, 7, 30, tzinfo=tz.utc)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Tue, 02 Jan 2024 07:30:45 GMT", now=now) == 45.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_client_sends_form_and_json_bodies_and_the_signed_query(server):
    seen = []

    def echo(request):
        from werkzeug.wrappers import Response

        seen.append((request.method, request.path, dict(request.args), request.get_data(as_text=True),
                     request.headers.get("Content-Type", "")))
        return Response('{"ok": true}', content_type="application/json")

    server.expect_request("/x").respond_with_handler(echo)

    class A:
        code = "test"
        base_url = "https://example.invalid"

    with PlatformClient(A(), base_url=server.url_for("/")) as c:
        assert c.send_once(PlatformRequest("POST", "/x", {"a": "1"}, {"k": "值"}, {}, "form")).body == {"ok": True}
        c.send_once(PlatformRequest("POST", "/x", {}, {"b": 2, "a": 1}, {"Content-Type": "application/json"}, "json"))
    assert seen[0][:3] == ("POST", "/x", {"a": "1"}) and "k=%E5%80%BC" in seen[0][3]
    assert seen[1][3] == '{"b":2,"a":1}' and seen[1][4] == "application/json"


def test_send_retries_and_re_signs_each_try(server):
    from datetime import datetime, timezone as tz

    from werkzeug.wrappers import Response

    from orders.platforms.interface import Credentials
    from orders.platforms.pdd import PddAdapter

    answers = iter([Response("", status=502), Response('{"ok": true}', content_type="application/json")])
    seen = []

    def handler(request):
        seen.append(request.args["timestamp"])
        return next(answers)

    server.expect_request("/api/router", method="POST").respond_with_handler(handler)
    ticks = iter(range(1704180600, 1704180700))
    pdd = PddAdapter(Credentials(app_key="cid", app_secret="s"),
                     now=lambda: datetime.fromtimestamp(next(ticks), tz=tz.utc))
    sleeps = []
    with PlatformClient(pdd, base_url=server.url_for("/"), sleep=sleeps.append) as c:
        response = c.send(lambda: pdd.build_stock_push("1100", 7, item_id="3001"))
    assert response.body == {"ok": True} and c.attempts == 2 and sleeps == [1.0]
    assert seen == ["1704180600", "1704180601"]  # signed afresh for the second try


def test_a_local_transport_answers_without_a_network():
    class Local:
        code = "sandbox"
        base_url = ""

        def handle(self, request: PlatformRequest) -> dict:
            return {"echo": request.params}

    with PlatformClient(Local()) as c:
        assert c.send_once(PlatformRequest("GET", "/orders", {"cursor": "7"})).body == {"echo": {"cursor": "7"}}
    assert local_transport(object()) is None


def test_a_client_without_an_address_refuses_clearly():
    class Nowhere:
        code = "miniapp"
        base_url = ""

    with pytest.raises(PlatformCallFailed, match="no API address"):
        PlatformClient(Nowhere())


@pytest.mark.django_db(transaction=True)
def test_migration_moves_the_old_cursor_into_the_sync_state():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return executor.loader.project_state(targets).apps

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = migrate([("orders", "0005_staffprofile")])
        OldShop = old.get_model("orders", "Shop")
        OldShop.objects.create(platform="pdd", code="old-a", name="A", sync_cursor=fp.START)
        OldShop.objects.create(platform="jd", code="old-b", name="B", sync_cursor=None)
        migrate(latest)
        assert ShopSyncState.objects.get(shop__code="old-a").start_from == fp.START
        assert ShopSyncState.objects.get(shop__code="old-b").start_from is None
        assert ShopSyncState.objects.get(shop__code="old-a").cursor == ""
        assert "sync_cursor" not in [f.name for f in Shop._meta.get_fields()]

        back = migrate([("orders", "0005_staffprofile")])  # and back again, value kept
        assert back.get_model("orders", "Shop").objects.get(code="old-a").sync_cursor == fp.START
    finally:
        migrate(latest)
        Shop.objects.filter(code__startswith="old-").delete()


# --- the sandbox platform: in-process, through the same client -----------------------------------
def test_a_sandbox_shop_syncs_without_a_network(monkeypatch, sleeps):
    import socket

    from orders.platforms.sandbox import SandboxAdapter, SandboxPlatform
    from tests.factories import SkuFactory

    skus = [SkuFactory(code=f"SBX-SKU-{n}").code for n in range(1, 4)]
    t0 = fp.NOW
    shop = ShopFactory(platform="sandbox", code="sandbox", sync_enabled=True)
    Shop.objects.filter(pk=shop.pk).update(created_at=t0)
    shop.refresh_from_db()
    clock = {"now": t0 + timedelta(minutes=30)}
    monkeypatch.setattr(sync, "adapter_for", lambda s: SandboxAdapter(now=lambda: clock["now"]))

    def no_network(*args, **kwargs):
        raise AssertionError("the sandbox must not open a socket")

    monkeypatch.setattr(socket, "create_connection", no_network)
    stream = SandboxPlatform(sku_ids=skus, start=t0)

    def orders_until(when):
        seen, cursor, more = set(), "", True
        while more:
            page = stream.list(cursor, 200, now=when)
            seen |= {o["order_no"] for o in page["orders"]}
            cursor, more = page["next_cursor"], page["has_more"]
        return seen

    first = sync.run_sync(shop, sleep=sleeps.append, now=lambda: clock["now"])
    assert first.outcome == "ok", first.error
    expected = orders_until(clock["now"])
    assert len(expected) >= 40  # ~120 orders an hour
    assert set(order_ids(shop)) == expected
    assert set(Order.objects.filter(shop=shop).values_list("lines__sku__code", flat=True)) <= set(skus)

    clock["now"] = t0 + timedelta(minutes=75)
    second = sync.run_sync(shop, sleep=sleeps.append, now=lambda: clock["now"])
    assert second.outcome == "ok", second.error
    assert set(order_ids(shop)) == orders_until(clock["now"])
    assert second.created == len(order_ids(shop)) - len(expected) > 0
    assert Order.objects.filter(shop=shop).count() == len(order_ids(shop))
    assert sleeps == []


# --- Amazon: getOrders gives bare orders; the sync fetches each one's items ----------------------
def test_amazon_orders_are_fetched_with_their_items(server, monkeypatch, sleeps):
    import json
    import re
    from datetime import datetime, timezone as tz

    from werkzeug.wrappers import Response

    from orders.models import OrderLine
    from orders.platforms.amazon import AmazonAdapter
    from orders.platforms.interface import Credentials
    from tests.orders.platforms.shared import load

    orders_body, items_body = load("amazon/getOrders.200.json"), load("amazon/getOrderItems.200.json")
    item_calls = []

    def items(request):
        item_calls.append(request.path)
        if len(item_calls) == 1:  # the first getOrderItems is throttled
            return Response('{"errors": [{"code": "QuotaExceeded"}]}', status=429, headers={"Retry-After": "2"},
                            content_type="application/json")
        return Response(json.dumps(items_body), content_type="application/json")

    server.expect_request("/orders/v0/orders", method="GET").respond_with_json(orders_body)
    server.expect_request(re.compile(r"^/orders/v0/orders/[^/]+/orderItems$"), method="GET").respond_with_handler(items)
    now = datetime(2024, 3, 1, 12, 0, tzinfo=tz.utc)
    monkeypatch.setattr(sync, "adapter_for", lambda shop: AmazonAdapter(
        Credentials(access_token="Atza|test", shop_id="A2SELLER"), now=lambda: now))
    shop = ShopFactory(platform="amazon", code="amz", currency="USD", api_base_url=server.url_for("/").rstrip("/"))
    ShopSyncState.objects.create(shop=shop, start_from=now - timedelta(hours=1))

    result = sync.run_sync(shop, sleep=sleeps.append)

    assert result.outcome == "ok", result.error
    assert order_ids(shop) == ["902-1845936-5435065", "902-8745147-1934268"]
    assert sorted(item_calls) == sorted(["/orders/v0/orders/902-1845936-5435065/orderItems"] * 2
                                        + ["/orders/v0/orders/902-8745147-1934268/orderItems"])
    assert sleeps == [2.0]
    assert OrderLine.objects.filter(order__shop=shop).count() == 2  # one line each, none dropped


def test_three_failed_runs_in_a_row_tell_staff_once(shop, platform, sleeps, django_capture_on_commit_callbacks):
    from config.models import Notification

    platform.faults = {n: ("status", 503) for n in range(1, 200)}
    for expected in (0, 0, 1, 1):
        with django_capture_on_commit_callbacks(execute=True):
            assert run(shop, sleeps).outcome == "failed"
        assert Notification.objects.count() == expected
    row = Notification.objects.get()
    assert row.topic == "sync_failed" and "pdd-main" in row.text and "连续 3 次" in row.text
