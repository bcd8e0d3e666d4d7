"""Stock back to channels, against a fake platform server on 127.0.0.1 (pytest-httpserver).

What a seller needs: the channels show what can really be sold (available − buffer, only
from warehouses that can ship to that shop's buyers), a SKU below its safety stock stops
being offered and comes back when it recovers, and a burst of orders costs one call, not one
per reservation.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from werkzeug import Response

from config.actors import Actor, Source
from config.errors import NotPermitted
from inventory import services as inventory_services
from inventory.models import StockLevel, Warehouse
from orders import services as order_services
from orders import stock_push
from orders.models import Platform, StockAlert, StockPush, StockPushCursor, StockPushDirty, StockPushState
from orders.platforms.wechat import signature
from orders.stock_push_tasks import push_stock_to_channels
from tests.factories import ShopFactory, SkuFactory, SkuMappingFactory, WarehouseFactory, make_order, staff, stock

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
STOCK_PATH = "/api/orderhub/v1/stock/"


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture
def channel(httpserver, monkeypatch):
    """The fake platform server; shops point at it through `Shop.api_base_url`."""
    monkeypatch.setattr(stock_push, "SLEEP", lambda seconds: None)  # back-off without waiting
    return httpserver


def mini(httpserver, code: str, **extra):
    """A mini-program shop (our JSON API) whose pushes go to the fake server."""
    extra.setdefault("app_key", f"{code}-key")
    extra.setdefault("app_secret", f"{code}-secret")
    return ShopFactory(code=code, platform=Platform.MINIAPP, api_base_url=httpserver.url_for("/").rstrip("/"), **extra)


def accept_stock_puts(httpserver, answer=None):
    httpserver.expect_request(re.compile(rf"^{STOCK_PATH}.+$"), method="PUT").respond_with_handler(
        answer or (lambda request: Response(json.dumps({"ok": True}), 200, content_type="application/json")))


def pushes(httpserver) -> list[tuple[str, int]]:
    """(platform SKU id, quantity) of every stock PUT the fake server received, in order."""
    out = []
    for request, _response in httpserver.log:
        if request.method == "PUT" and request.path.startswith(STOCK_PATH):
            out.append((request.path[len(STOCK_PATH):], json.loads(request.get_data())["quantity"]))
    return out


def run():
    return stock_push.push_changed(actor=SYSTEM)


def age_pools():
    """Pretend no pool changed recently (so only marks and retries bring a SKU back)."""
    StockLevel.objects.update(updated_at=timezone.now() - timedelta(hours=2))


@pytest.fixture
def shop(channel):
    return mini(channel, "mini")


@pytest.fixture
def cn():
    return WarehouseFactory(code="cn-main", country="CN")


def test_ten_reservations_in_a_row_make_one_push_with_the_final_figure(channel, shop, cn):
    accept_stock_puts(channel)
    sku = SkuFactory(code="CUP")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-CUP")
    stock(cn, sku, 100)
    run()
    assert pushes(channel) == [("M-CUP", 100)]

    channel.clear_log()
    for _ in range(10):
        order_services.order_allocate(order=make_order(shop=shop, lines=[(sku, 1)]), actor=SYSTEM)
    assert StockLevel.objects.get(sku=sku).reserved == 10

    report = run()

    assert pushes(channel) == [("M-CUP", 90)]
    assert (report.pushed, report.failed) == (1, 0)
    state = StockPushState.objects.get(shop=shop, platform_sku_id="M-CUP")
    assert (state.last_quantity, state.pending, state.offered) == (90, False, True)
    assert list(StockPush.objects.filter(shop=shop).order_by("id").values_list("quantity", "ok", "http_status")) == [
        (100, True, 200), (90, True, 200)]


def test_the_request_is_the_one_the_adapter_signed(channel, shop, cn):
    seen = []

    def answer(request):
        seen.append(request)
        return Response(json.dumps({"ok": True}), 200, content_type="application/json")

    accept_stock_puts(channel, answer)
    sku = SkuFactory(code="SIGNED")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-SIGNED")
    stock(cn, sku, 7)
    run()

    request = seen[0]
    body = request.get_data(as_text=True)
    ts = request.headers["X-OrderHub-Timestamp"]
    assert json.loads(body) == {"quantity": 7}
    assert request.headers["X-OrderHub-App"] == "mini-key"
    assert request.headers["X-OrderHub-Signature"] == signature("mini-secret", "PUT", request.path, {}, ts, body)


def test_below_safety_stock_pushes_zero_and_alerts_then_recovery_pushes_the_real_figure(channel, shop, cn):
    accept_stock_puts(channel)
    sku = SkuFactory(code="PAN", safety_stock=20)
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-PAN")
    stock(cn, sku, 25)
    run()
    assert pushes(channel) == [("M-PAN", 25)]
    assert not StockAlert.objects.exists()

    inventory_services.stock_adjust(warehouse=cn, sku=sku, delta=-10, actor=SYSTEM, reason="破损")
    channel.clear_log()
    run()

    assert pushes(channel) == [("M-PAN", 0)]
    alert = StockAlert.objects.get(sku=sku)
    assert (alert.country, alert.available, alert.threshold, alert.resolved_at) == ("CN", 15, 20, None)
    assert StockPushState.objects.get(platform_sku_id="M-PAN").offered is False
    assert StockPush.objects.latest("id").reason == StockPush.Reason.BELOW_SAFETY

    # Still below: no new alert, no new call.
    inventory_services.stock_adjust(warehouse=cn, sku=sku, delta=-1, actor=SYSTEM, reason="破损")
    channel.clear_log()
    run()
    assert pushes(channel) == []
    assert StockAlert.objects.filter(sku=sku).count() == 1

    stock(cn, sku, 11)  # 25 again
    channel.clear_log()
    run()

    assert pushes(channel) == [("M-PAN", 25)]
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.recovered_available == 25
    assert StockPushState.objects.get(platform_sku_id="M-PAN").offered is True
    assert StockPush.objects.latest("id").reason == StockPush.Reason.RECOVERED


def test_an_unchanged_figure_is_not_pushed_again(channel, shop, cn):
    accept_stock_puts(channel)
    sku = SkuFactory(code="BOWL")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-BOWL")
    stock(cn, sku, 30)
    run()
    stock(cn, sku, 5)
    inventory_services.stock_adjust(warehouse=cn, sku=sku, delta=-5, actor=SYSTEM, reason="盘亏")
    channel.clear_log()

    report = run()

    assert pushes(channel) == []
    assert (report.pushed, report.unchanged) == (0, 1)
    assert StockPush.objects.count() == 1


def test_a_failed_push_is_retried_on_the_next_run(channel, shop, cn):
    answers = iter([Response("gateway down", 503), Response("gateway down", 503)])  # both tries of a run

    def flaky(request):
        return next(answers, None) or Response(json.dumps({"ok": True}), 200, content_type="application/json")

    accept_stock_puts(channel, flaky)
    sku = SkuFactory(code="MOP")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-MOP")
    stock(cn, sku, 12)

    first = run()

    assert (first.pushed, first.failed) == (0, 1)
    failed = StockPush.objects.get()
    assert (failed.ok, failed.http_status, failed.quantity) == (False, 503, 12)
    assert "gateway down" in failed.error
    state = StockPushState.objects.get(platform_sku_id="M-MOP")
    assert (state.pending, state.failures, state.last_quantity) == (True, 1, None)

    age_pools()  # nothing changed since: only the pending state brings it back
    channel.clear_log()
    second = run()

    assert pushes(channel) == [("M-MOP", 12)]
    assert (second.pushed, second.failed) == (1, 0)
    state.refresh_from_db()
    assert (state.pending, state.failures, state.last_quantity, state.last_error) == (False, 0, 12, "")
    assert StockPush.objects.latest("id").reason == StockPush.Reason.RETRY

    channel.clear_log()
    run()
    assert pushes(channel) == []


def test_a_platform_error_envelope_is_a_failure_and_the_item_id_is_sent(channel, cn):
    httpserver = channel
    httpserver.expect_oneshot_request("/router/rest", method="POST").respond_with_json(
        {"error_response": {"code": 15, "msg": "Remote service error", "sub_code": "isv.item-not-exist",
                            "sub_msg": "商品不存在"}})
    httpserver.expect_request("/router/rest", method="POST").respond_with_json(
        {"item_quantity_update_response": {"item": {"num_iid": 5550001}}})
    tmall = ShopFactory(code="tmall", platform=Platform.TAOBAO, app_key="k", app_secret="s", access_token="t",
                        api_base_url=httpserver.url_for("/").rstrip("/"))
    sku = SkuFactory(code="KNIFE")
    SkuMappingFactory(shop=tmall, sku=sku, platform_sku_id="4455667788", platform_item_id="5550001")
    stock(cn, sku, 9)

    run()

    failed = StockPush.objects.get()
    assert (failed.ok, failed.http_status) == (False, 200)
    assert "isv.item-not-exist" in failed.error
    params = {k: v[0] for k, v in parse_qs(httpserver.log[0][0].query_string.decode()).items()}
    assert (params["method"], params["num_iid"], params["sku_id"], params["quantity"]) == (
        "taobao.item.quantity.update", "5550001", "4455667788", "9")

    age_pools()
    run()
    assert StockPushState.objects.get(shop=tmall).last_quantity == 9


def test_the_buffer_is_held_back_absolute_or_share_whichever_is_larger(channel, shop, cn):
    accept_stock_puts(channel)
    by_share = SkuFactory(code="SHARE", emergency_buffer=5, emergency_buffer_percent=10)
    by_units = SkuFactory(code="UNITS", emergency_buffer=5, emergency_buffer_percent=1)
    SkuMappingFactory(shop=shop, sku=by_share, platform_sku_id="M-SHARE")
    SkuMappingFactory(shop=shop, sku=by_units, platform_sku_id="M-UNITS")
    stock(cn, by_share, 100)
    stock(cn, by_units, 100)

    run()

    assert sorted(pushes(channel)) == [("M-SHARE", 90), ("M-UNITS", 95)]
    assert dict(StockPush.objects.values_list("platform_sku_id", "buffer")) == {"M-SHARE": 10, "M-UNITS": 5}


def test_only_mapped_skus_are_pushed_and_each_shop_gets_its_own_mapping_ids(channel, cn):
    seen = []

    def answer(request):
        seen.append((request.headers["X-OrderHub-App"], request.path[len(STOCK_PATH):]))
        return Response("{}", 200, content_type="application/json")

    accept_stock_puts(channel, answer)
    a, b = mini(channel, "mini-a", app_key="key-a"), mini(channel, "mini-b", app_key="key-b")
    shared, only_b, unmapped = SkuFactory(code="SHARED"), SkuFactory(code="ONLY-B"), SkuFactory(code="LOOSE")
    SkuMappingFactory(shop=a, sku=shared, platform_sku_id="A-1")
    SkuMappingFactory(shop=b, sku=shared, platform_sku_id="B-1")
    SkuMappingFactory(shop=b, sku=only_b, platform_sku_id="B-2")
    for sku in (shared, only_b, unmapped):
        stock(cn, sku, 10)

    run()

    assert sorted(seen) == [("key-a", "A-1"), ("key-b", "B-1"), ("key-b", "B-2")]
    assert not StockPush.objects.filter(sku=unmapped).exists()


def test_warehouses_that_cannot_serve_the_shop_are_not_counted(channel, shop, cn):
    accept_stock_puts(channel)
    us_shop = mini(channel, "mini-us", currency="USD")
    sku = SkuFactory(code="TOWEL")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="CN-TOWEL")
    SkuMappingFactory(shop=us_shop, sku=sku, platform_sku_id="US-TOWEL")
    closed = WarehouseFactory(code="cn-closed", country="CN")
    returns = WarehouseFactory(code="cn-returns", country="CN", kind=Warehouse.Kind.RETURN_CENTER, allocatable=False)
    la = WarehouseFactory(code="la", country="US", kind=Warehouse.Kind.OVERSEAS, lead_time_days=2)
    stock(cn, sku, 10)
    stock(closed, sku, 7)
    stock(returns, sku, 5)
    stock(la, sku, 20)
    Warehouse.objects.filter(pk=closed.pk).update(is_active=False)

    run()

    assert sorted(pushes(channel)) == [("CN-TOWEL", 10), ("US-TOWEL", 20)]


def test_a_config_edit_marks_the_sku_and_the_next_run_pushes_the_new_figure(channel, shop, cn,
                                                                         django_capture_on_commit_callbacks):
    accept_stock_puts(channel)
    sku = SkuFactory(code="LID")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-LID")
    stock(cn, sku, 40)
    run()
    age_pools()

    with django_capture_on_commit_callbacks(execute=True):
        sku.emergency_buffer = 15
        sku.save()
    assert StockPushDirty.objects.filter(sku=sku).exists()
    channel.clear_log()

    run()

    assert pushes(channel) == [("M-LID", 25)]
    assert not StockPushDirty.objects.exists()


def test_a_second_run_while_one_holds_the_lease_does_nothing(channel, shop, cn):
    accept_stock_puts(channel)
    sku = SkuFactory(code="FORK")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-FORK")
    stock(cn, sku, 3)
    StockPushCursor.objects.create(pk=1, lease_until=timezone.now() + timedelta(minutes=1), lease_owner="other")

    assert run().skipped is True
    assert pushes(channel) == []


def test_the_scheduled_task_pushes_and_reports(channel, shop, cn):
    accept_stock_puts(channel)
    sku = SkuFactory(code="SPOON")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-SPOON")
    stock(cn, sku, 4)

    result = push_stock_to_channels()

    assert (result["pushed"], result["failed"], result["full_pass"]) == (1, 0, True)
    assert pushes(channel) == [("M-SPOON", 4)]


# --- push now: 运营 and 主管 only (from the role descriptions: config edits) -----------------------
@pytest.mark.parametrize("role, allowed", [
    ("operations", True), ("supervisor", True),
    ("customer_service", False), ("warehouse", False), ("finance", False),
])
def test_push_now_is_for_operations_and_supervisors(channel, shop, cn, role, allowed):
    accept_stock_puts(channel)
    sku = SkuFactory(code="PLATE")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-PLATE")
    stock(cn, sku, 6)
    run()
    channel.clear_log()
    actor = Actor.of(staff(role), Source.ADMIN)

    if allowed:
        report = stock_push.push_now(actor=actor, shop_ids=[shop.pk])
        assert report.pushed == 1
        assert pushes(channel) == [("M-PLATE", 6)]  # unchanged, pushed anyway
        assert StockPush.objects.latest("id").reason == StockPush.Reason.MANUAL
    else:
        with pytest.raises(NotPermitted):
            stock_push.push_now(actor=actor, shop_ids=[shop.pk])
        assert pushes(channel) == []


@pytest.mark.parametrize("role, allowed", [("operations", True), ("finance", False)])
def test_admin_push_now_action(channel, shop, cn, role, allowed):
    accept_stock_puts(channel)
    sku = SkuFactory(code="JAR")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-JAR")
    stock(cn, sku, 8)
    run()
    channel.clear_log()
    client = Client()
    client.force_login(staff(role))
    url = reverse("admin:orders_stockpushstate_changelist")
    state = StockPushState.objects.get()

    assert client.get(url).status_code == 200  # every role may read the listing states
    assert client.get(reverse("admin:orders_stockpush_changelist")).status_code == 200
    assert client.get(reverse("admin:orders_stockpush_add")).status_code == 403
    response = client.post(url, {"action": "push_now_selected", "_selected_action": [state.pk]})

    assert response.status_code in (200, 302)
    assert pushes(channel) == ([("M-JAR", 8)] if allowed else [])

    channel.clear_log()
    logged = StockPush.objects.earliest("id")
    client.post(reverse("admin:orders_stockpush_changelist"),
                {"action": "push_again_selected", "_selected_action": [logged.pk]})
    assert pushes(channel) == ([("M-JAR", 8)] if allowed else [])


def test_a_shop_we_cannot_reach_is_never_called(channel, cn):
    """A demo Taobao shop without credentials or address: nothing goes to the real gateway."""
    accept_stock_puts(channel)
    bare = ShopFactory(code="tmall-demo", platform=Platform.TAOBAO)
    distributor = ShopFactory(code="dist", platform=Platform.DISTRIBUTOR, api_base_url=channel.url_for("/"))
    sku = SkuFactory(code="BARE")
    SkuMappingFactory(shop=bare, sku=sku, platform_sku_id="T-BARE")
    SkuMappingFactory(shop=distributor, sku=sku, platform_sku_id="D-BARE")
    stock(cn, sku, 5)

    report = run()

    assert (report.no_adapter, report.pushed, report.failed) == (2, 0, 0)
    assert len(channel.log) == 0
    assert not StockPush.objects.exists()


def test_a_platform_that_keeps_failing_is_left_alone_for_the_rest_of_the_run(channel, shop, cn):
    down = [True]

    def answer(request):
        if down[0]:
            return Response("maintenance", 500)
        return Response("{}", 200, content_type="application/json")

    accept_stock_puts(channel, answer)
    for n in range(5):
        sku = SkuFactory(code=f"DOWN-{n}")
        SkuMappingFactory(shop=shop, sku=sku, platform_sku_id=f"M-DOWN-{n}")
        stock(cn, sku, 10 + n)

    first = run()

    assert (first.failed, first.deferred, first.pushed) == (3, 2, 0)
    assert StockPush.objects.count() == 3  # a log row per call made, none for the deferred
    assert StockPushState.objects.filter(shop=shop, pending=True).count() == 5

    down[0] = False
    age_pools()
    channel.clear_log()
    second = run()

    assert sorted(pushes(channel)) == [(f"M-DOWN-{n}", 10 + n) for n in range(5)]
    assert (second.pushed, second.failed) == (5, 0)
    assert not StockPushState.objects.filter(pending=True).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_started_at_once_push_once(channel):
    """PostgreSQL, real threads: the lease lets one run push; the other skips."""
    import time as _time

    from tests.concurrency import run_together

    def slow(request):
        _time.sleep(0.5)  # the first run is still pushing when the second one asks for the lease
        return Response("{}", 200, content_type="application/json")

    accept_stock_puts(channel, slow)
    shop, warehouse = mini(channel, "mini-pg"), WarehouseFactory(code="cn-pg", country="CN")
    sku = SkuFactory(code="RACE")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-RACE")
    stock(warehouse, sku, 21)

    outcomes = run_together([run, run])

    assert [kind for kind, _ in outcomes] == ["ok", "ok"]
    reports = sorted((r for _, r in outcomes), key=lambda r: r.skipped)
    assert (reports[0].pushed, reports[1].skipped) == (1, True)
    assert pushes(channel) == [("M-RACE", 21)]
    assert StockPush.objects.count() == 1


def test_a_sandbox_shop_is_answered_in_process(channel, cn):
    """`make run`: the sandbox shop shows pushes in the log without any network."""
    sandbox = ShopFactory(code="sandbox", platform=Platform.SANDBOX)
    sku = SkuFactory(code="SBX-1")
    SkuMappingFactory(shop=sandbox, sku=sku, platform_sku_id="SBX-1")
    stock(cn, sku, 13)

    report = run()

    assert (report.pushed, report.failed) == (1, 0)
    push = StockPush.objects.get()
    assert (push.shop_id, push.quantity, push.ok, push.http_status) == (sandbox.pk, 13, True, 200)
    assert len(channel.log) == 0


def test_a_listing_that_keeps_failing_backs_off_until_its_mapping_is_fixed(channel, cn,
                                                                          django_capture_on_commit_callbacks):
    """PDD needs the goods id: without it the platform refuses; retried next run, then less often."""
    def answer(request):
        has_goods_id = bool(parse_qs(request.query_string.decode()).get("goods_id"))
        body = ({"goods_quantity_update_response": {"is_success": True}} if has_goods_id
                else {"error_response": {"error_code": 50001, "error_msg": "goods_id 不能为空"}})
        return Response(json.dumps(body), 200, content_type="application/json")

    channel.expect_request("/api/router", method="POST").respond_with_handler(answer)
    pdd = ShopFactory(code="pdd", platform=Platform.PDD, app_key="k", app_secret="s", access_token="t",
                      api_base_url=channel.url_for("/").rstrip("/"))
    sku = SkuFactory(code="GOODS")
    mapping = SkuMappingFactory(shop=pdd, sku=sku, platform_sku_id="889900")
    stock(cn, sku, 4)

    run()
    run()  # retried on the next run: failed twice now
    assert StockPush.objects.filter(ok=False).count() == 2
    state = StockPushState.objects.get(shop=pdd)
    assert (state.pending, state.failures) == (True, 2)
    assert "goods_id" in state.last_error

    assert run().waiting == 1  # backing off: no third call a minute later
    assert StockPush.objects.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        mapping.platform_item_id = "123456"
        mapping.save()
    run()

    state.refresh_from_db()
    assert (state.pending, state.last_quantity) == (False, 4)
    assert StockPush.objects.latest("id").ok is True


def test_an_opened_safety_stock_alert_tells_staff_once(channel, shop, cn, django_capture_on_commit_callbacks):
    from config.models import Notification

    accept_stock_puts(channel)
    sku = SkuFactory(code="PAN2", safety_stock=20)
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="M-PAN2")
    stock(cn, sku, 15)
    with django_capture_on_commit_callbacks(execute=True):
        run()
        run()  # still below: the alert stays open, nobody is told twice
    alert = StockAlert.objects.get(sku=sku)
    row = Notification.objects.get()
    assert (row.topic, row.key) == ("stock_low", f"stock_low:{alert.pk}")
    assert "PAN2" in row.text and "15" in row.text and "20" in row.text
