"""The upsert behind sync, webhooks and `manage.py ingest`: real samples in, exact rows out."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from config.actors import Source
from inventory.models import Reservation, StockLevel
from orders import services
from orders.ingest import ingest_payloads, payloads_from_document, platform_actor, upsert_order
from orders.models import EventKind, HoldReason, Order, OrderStatus, Platform
from orders.platforms.base import NormalizedLine, NormalizedOrder
from orders.platforms.registry import adapter_for
from tests.factories import SYSTEM, RoutingRuleFactory, ShopFactory, SkuFactory, SkuMappingFactory, WarehouseFactory, stock
from tests.orders.platforms.shared import load

pytestmark = pytest.mark.django_db
UTC = timezone.utc


def kinds(order) -> list[str]:
    return list(order.events.order_by("occurred_at", "id").values_list("kind", flat=True))


def pool(warehouse, sku) -> tuple[int, int]:
    level = StockLevel.objects.get(warehouse=warehouse, sku=sku)
    return level.on_hand, level.reserved


def active_reservations(order) -> list[tuple[str, str, int]]:
    return sorted(Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE)
                  .values_list("stock_level__warehouse__code", "stock_level__sku__code", "quantity"))


# --- real samples -------------------------------------------------------------------------------
def test_taobao_jdp_row_is_stored_exactly():
    shop = ShopFactory(code="tb", platform=Platform.TAOBAO)
    sku = SkuFactory(code="TX324A0212")
    report = ingest_payloads(shop=shop, payloads=payloads_from_document(
        shop, load("taobao/trade_fullinfo_get.jdp_push_row.json")), actor=platform_actor(shop))
    assert (report.created, report.updated, report.unchanged, report.failed) == (1, 0, 0, 0)
    order = Order.objects.get(shop=shop, platform_order_id="452790065331038")
    # TRADE_CLOSED_BY_TAOBAO, never paid: stored, then cancelled through the service.
    assert order.status == OrderStatus.CANCELLED and order.platform_status == "TRADE_CLOSED_BY_TAOBAO"
    assert (order.goods_amount, order.discount_amount, order.shipping_fee, order.paid_amount) == (
        Decimal("88.00"), Decimal("74.20"), Decimal("0.00"), Decimal("13.80"))
    assert order.platform_memo == "已催 李四 11.11" and order.seller_note == ""
    assert (order.province, order.city, order.district, order.postcode) == ("陕西省", "西安市", "雁塔区", "710065")
    assert order.receiver_phone == ""  # masked: never stored as a phone
    assert order.placed_at == datetime(2013, 11, 10, 6, 22, 38, tzinfo=UTC)
    assert order.platform_updated_at == datetime(2014, 1, 30, 16, 18, 1, tzinfo=UTC)
    [line] = order.lines.all()
    assert (line.platform_line_id, line.platform_sku_id, line.sku, line.quantity, line.unit_price,
            line.discount_amount) == ("452790065331038", "33395009470", sku, 1, Decimal("88.00"), Decimal("74.20"))
    # The masked buyer is known by their platform id.
    assert order.customer is not None and order.customer.phone == ""
    assert list(order.customer.identities.values_list("platform", "kind", "value")) == [
        ("taobao", "buyer_id", "zhangsan001")]
    assert order.customer.tags == ["platform:taobao"]
    assert kinds(order) == [EventKind.CREATED, EventKind.CANCELLED]
    event = order.events.get(kind=EventKind.CANCELLED)
    assert (event.source, event.actor_label) == (Source.PLATFORM, "tb")


def test_taobao_sold_get_list_response():
    shop = ShopFactory(code="tb", platform=Platform.TAOBAO)
    doc = load("taobao/trades_sold_get.doc_example.json")
    assert len(payloads_from_document(shop, doc)) == 1
    report = ingest_payloads(shop=shop, payloads=payloads_from_document(shop, doc), actor=platform_actor(shop))
    assert (report.created, report.failed) == (1, 0)
    order = Order.objects.get(shop=shop, platform_order_id="2231958349")
    assert order.status == OrderStatus.PENDING_PAYMENT and order.lines.count() == 0  # incomplete, unpaid: stored
    assert (order.province, order.city, order.district, order.address) == ("浙江省", "杭州市", "西湖区", "三墎镇测试路1号")
    assert order.receiver_phone == "13800000000" and order.customer.phone == "+8613800000000"


def test_pdd_document_example_is_stored_paid_and_allocated():
    shop = ShopFactory(code="pdd", platform=Platform.PDD)
    wh = WarehouseFactory(code="sz")
    sku = SkuFactory(code="PDD-1")
    SkuMappingFactory(shop=shop, sku=sku, platform_sku_id="1")
    stock(wh, sku, 5)
    report = ingest_payloads(shop=shop, payloads=payloads_from_document(
        shop, load("pdd/order_list_get.response.doc_example.json")), actor=platform_actor(shop))
    assert (report.created, report.failed) == (1, 0)
    order = Order.objects.get(shop=shop, platform_order_id="1")
    assert order.status == OrderStatus.ALLOCATED
    assert (order.goods_amount, order.paid_amount, order.shipping_fee) == (Decimal("1.00"), Decimal("1.00"), Decimal("1.00"))
    assert order.is_presale is True and "deposit" in order.tags
    [line] = order.lines.all()
    assert (line.platform_line_id, line.sku, line.quantity) == ("1", sku, 1)
    assert active_reservations(order) == [("sz", "PDD-1", 1)]
    assert pool(wh, sku) == (5, 1)
    assert order.customer.identities.get().value == "str"  # open_address_id: the buyer's stable key
    assert kinds(order) == [EventKind.CREATED, EventKind.PAID, EventKind.ALLOCATED]


def test_pdd_error_envelope_is_a_failure_with_the_platform_words():
    shop = ShopFactory(code="pdd", platform=Platform.PDD)
    report = ingest_payloads(shop=shop, payloads=payloads_from_document(shop, load("pdd/error_response.doc_example.json")),
                             actor=platform_actor(shop))
    assert report.failed == 1 and report.failures[0][0] == 1 and "10001" in report.failures[0][1]
    assert not Order.objects.exists()


def test_shopify_single_and_list_samples():
    shop = ShopFactory(code="us", platform=Platform.SHOPIFY, currency="USD")
    single = load("shopify/order.single.json")
    assert len(payloads_from_document(shop, single)) == 1
    report = ingest_payloads(shop=shop, payloads=payloads_from_document(shop, single), actor=platform_actor(shop))
    assert (report.created, report.failed) == (1, 0)
    order = Order.objects.get(shop=shop, platform_order_id="450789469")
    assert order.currency == "USD" and order.paid_amount == Decimal("409.94") and order.goods_amount == Decimal("398.00")
    assert list(order.lines.values_list("platform_line_id", "platform_sku_id", "unit_price")) == [
        ("466157049", "39072856", Decimal("199.00")), ("518995019", "49148385", Decimal("199.00")),
        ("703073504", "457924702", Decimal("199.00"))]
    # Paid, SKUs unknown here: stored and held with the reason, never dropped.
    assert order.status == OrderStatus.ON_HOLD and order.hold_reason == HoldReason.SKU_UNMAPPED
    assert order.country == "US" and order.postcode == "40202"
    assert order.customer.identities.get().value == "207119551"
    # The list response carries the same order, a later version (partially refunded).
    listed = load("shopify/orders.list.json")
    assert len(payloads_from_document(shop, listed)) == 1
    report = ingest_payloads(shop=shop, payloads=payloads_from_document(shop, listed), actor=platform_actor(shop))
    assert (report.created, report.updated, report.unchanged, report.failed) == (0, 1, 0, 0)
    order.refresh_from_db()
    assert order.platform_status == "partially_refunded/unfulfilled" and order.refund_requested is True
    assert order.paid_amount == Decimal("598.94")
    assert order.lines.count() == 3  # the list answer leaves line_items out: stored lines are kept
    assert EventKind.REFUND_REQUESTED in kinds(order)


# --- idempotency and versions -------------------------------------------------------------------
def tb_trade(**over) -> dict:
    trade = copy.deepcopy(load("taobao/trade_fullinfo_get.jdp_push_row.json"))["trade_fullinfo_get_response"]["trade"]
    trade.update({"status": "WAIT_SELLER_SEND_GOODS", "pay_time": "2013-11-10 14:30:00",
                  "receiver_mobile": "13800000000", "receiver_state": "江苏省", "receiver_city": "苏州市",
                  "receiver_district": "姑苏区", "receiver_address": "测试路1号", "modified": "2013-11-10 15:00:00"})
    trade.update(over)
    return trade


@pytest.fixture
def tb_world():
    shop = ShopFactory(code="tb", platform=Platform.TAOBAO)
    suzhou = WarehouseFactory(code="suzhou", priority=10)
    tianjin = WarehouseFactory(code="tianjin", priority=20)
    sku = SkuFactory(code="TX324A0212")
    for wh in (suzhou, tianjin):
        stock(wh, sku, 10)
    RoutingRuleFactory(name="江浙沪走苏州", position=1, warehouse=suzhou,
                       conditions={"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]})
    RoutingRuleFactory(name="华北走天津", position=2, warehouse=tianjin,
                       conditions={"field": "region", "op": "eq", "value": "华北"})
    return shop, suzhou, tianjin, sku


def ingest(shop, *payloads):
    return ingest_payloads(shop=shop, payloads=list(payloads), actor=platform_actor(shop))


def test_reingest_is_unchanged_and_variants_too(tb_world):
    shop, suzhou, _tj, sku = tb_world
    assert ingest(shop, tb_trade()).created == 1
    order = Order.objects.get(shop=shop)
    assert order.status == OrderStatus.ALLOCATED and active_reservations(order) == [("suzhou", sku.code, 1)]
    events_before = order.events.count()
    again = ingest(shop, tb_trade(), {"trade_fullinfo_get_response": {"trade": tb_trade()}},
                   {**tb_trade(), "tid": "452790065331038", "payment": 13.8, "unknown_field": "x"})
    assert (again.created, again.updated, again.unchanged, again.failed) == (0, 0, 3, 0)
    assert order.events.count() == events_before and pool(suzhou, sku) == (10, 1)


def test_older_version_never_overwrites(tb_world):
    shop, *_ = tb_world
    ingest(shop, tb_trade(modified="2013-11-10 16:00:00", buyer_message="新的留言"))
    report = ingest(shop, tb_trade(modified="2013-11-10 15:00:00", buyer_message="旧的留言", payment="1.00"))
    assert (report.unchanged, report.updated, report.failed) == (1, 0, 0)
    order = Order.objects.get(shop=shop)
    assert order.buyer_note == "新的留言" and order.paid_amount == Decimal("13.80")
    assert order.platform_updated_at == datetime(2013, 11, 10, 8, 0, tzinfo=UTC)


def test_newer_version_updates_lines_by_line_id_and_keeps_staff_notes(tb_world):
    shop, suzhou, _tj, sku = tb_world
    ingest(shop, tb_trade())
    order = Order.objects.get(shop=shop)
    services.order_add_note(order=order, actor=SYSTEM, note="客服:买家要求顺丰")
    line_id = order.lines.get().pk
    newer = tb_trade(modified="2013-11-10 17:00:00", seller_memo="平台备注已改", payment="20.00")
    newer["orders"]["order"][0].update({"title": "新标题", "price": "99.00"})
    gift = dict(newer["orders"]["order"][0], oid=999000111, title="赠品", price="0.00", payment="0.00",
                discount_fee="0.00", sku_id="55500011", outer_sku_id="GIFT-X")
    newer["orders"]["order"].append(gift)
    report = ingest(shop, newer)
    assert (report.updated, report.failed) == (1, 0)
    order.refresh_from_db()
    assert order.seller_note == "客服:买家要求顺丰"  # staff wrote it: the platform never overwrites it
    assert order.platform_memo == "平台备注已改" and order.paid_amount == Decimal("20.00")
    lines = list(order.lines.order_by("id"))
    assert [l.platform_line_id for l in lines] == ["452790065331038", "999000111"]
    assert lines[0].pk == line_id and lines[0].title == "新标题" and lines[0].unit_price == Decimal("99.00")
    assert lines[1].is_gift and lines[1].sku is None
    assert EventKind.PLATFORM_UPDATED in kinds(order)


def test_cancel_before_shipment_releases_stock(tb_world):
    shop, suzhou, _tj, sku = tb_world
    ingest(shop, tb_trade())
    order = Order.objects.get(shop=shop)
    assert pool(suzhou, sku) == (10, 1)
    report = ingest(shop, tb_trade(status="TRADE_CLOSED", modified="2013-11-11 09:00:00"))
    assert report.updated == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED and pool(suzhou, sku) == (10, 0)
    assert active_reservations(order) == []
    assert kinds(order)[-1] == EventKind.CANCELLED


def test_cancel_after_shipment_flags_instead(tb_world):
    shop, suzhou, _tj, sku = tb_world
    ingest(shop, tb_trade())
    order = Order.objects.get(shop=shop)
    order = services.order_pack(order=order, actor=SYSTEM)
    order = services.order_ship(order=order, actor=SYSTEM)
    ingest(shop, tb_trade(status="TRADE_CLOSED", modified="2013-11-12 09:00:00"))
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED and "cancelled_after_shipment" in order.platform_flags
    assert pool(suzhou, sku) == (9, 0)
    assert order.events.filter(kind=EventKind.PLATFORM_CANCELLED).count() == 1


def test_address_change_before_packing_reroutes(tb_world):
    shop, suzhou, tianjin, sku = tb_world
    ingest(shop, tb_trade())
    order = Order.objects.get(shop=shop)
    assert active_reservations(order) == [("suzhou", sku.code, 1)]
    moved = tb_trade(modified="2013-11-10 18:00:00", receiver_state="北京", receiver_city="北京市",
                     receiver_district="朝阳区", receiver_address="示例小区1号")
    assert ingest(shop, moved).updated == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.ALLOCATED and (order.province, order.district) == ("北京市", "朝阳区")
    assert active_reservations(order) == [("tianjin", sku.code, 1)]
    assert pool(suzhou, sku) == (10, 0) and pool(tianjin, sku) == (10, 1)
    event = order.events.get(kind=EventKind.ADDRESS_CHANGED)
    assert event.is_public and event.public_text == "收货地址已更新" and "示例小区" not in event.message
    assert event.data["rerouted"] is True


def test_address_change_after_packing_is_refused(tb_world):
    shop, suzhou, _tj, sku = tb_world
    ingest(shop, tb_trade())
    order = services.order_pack(order=Order.objects.get(shop=shop), actor=SYSTEM)
    ingest(shop, tb_trade(modified="2013-11-10 18:00:00", receiver_state="北京", receiver_city="北京市",
                          receiver_district="朝阳区"))
    order.refresh_from_db()
    assert order.status == OrderStatus.PACKED and order.province == "江苏省"
    assert "address_change_after_packing" in order.platform_flags
    assert order.events.filter(kind=EventKind.ADDRESS_CHANGE_REFUSED).count() == 1
    assert active_reservations(order) == [("suzhou", sku.code, 1)]


def test_refund_request_sets_the_flag(tb_world):
    shop, *_ = tb_world
    ingest(shop, tb_trade())
    refund = tb_trade(modified="2013-11-10 19:00:00")
    refund["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
    assert ingest(shop, refund).updated == 1
    order = Order.objects.get(shop=shop)
    assert order.refund_requested is True and order.status == OrderStatus.ALLOCATED
    event = order.events.get(kind=EventKind.REFUND_REQUESTED)
    assert event.is_public and event.source == Source.PLATFORM


def test_incomplete_orders_are_stored_and_held(tb_world):
    shop, *_ = tb_world
    no_lines = tb_trade(tid=111, orders={"order": []})
    unmapped = tb_trade(tid=222)
    unmapped["orders"]["order"][0].update({"outer_sku_id": "", "sku_id": "NOT-MAPPED", "oid": 2221})
    report = ingest(shop, no_lines, unmapped)
    assert (report.created, report.failed) == (2, 0)
    a, b = Order.objects.get(platform_order_id="111"), Order.objects.get(platform_order_id="222")
    assert (a.status, a.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.NO_LINES)
    assert (b.status, b.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.SKU_UNMAPPED)
    assert "NOT-MAPPED" in b.hold_note


def test_bad_payload_between_two_good_ones(tb_world):
    shop, *_ = tb_world
    bad = tb_trade(tid=None)
    report = ingest(shop, tb_trade(tid=1001), bad, tb_trade(tid=1003))
    assert (report.created, report.failed) == (2, 1)
    assert report.failures[0][0] == 2 and "tid" in report.failures[0][1]
    assert sorted(Order.objects.values_list("platform_order_id", flat=True)) == ["1001", "1003"]


def test_bad_quantity_rolls_back_only_that_payload(tb_world):
    shop, *_ = tb_world
    data = NormalizedOrder(platform_order_id="X1", lines=[NormalizedLine(title="t", quantity=0)])
    with pytest.raises(Exception):
        upsert_order(shop=shop, data=data, actor=platform_actor(shop))
    assert not Order.objects.filter(platform_order_id="X1").exists()


def test_adapter_for_uses_shop_credentials():
    shop = ShopFactory(code="tb2", platform=Platform.TAOBAO, app_key="k", app_secret="s", access_token="t")
    adapter = adapter_for(shop)
    assert (adapter.credentials.app_key, adapter.credentials.app_secret, adapter.credentials.access_token) == ("k", "s", "t")


def test_upsert_allocates_a_paid_order_by_default(tb_world):
    shop, suzhou, _tj, sku = tb_world
    data = adapter_for(shop).normalize(tb_trade())
    result = upsert_order(shop=shop, data=data, actor=platform_actor(shop))
    assert result.outcome == "created" and result.order.status == OrderStatus.ALLOCATED
    assert active_reservations(result.order) == [("suzhou", sku.code, 1)]
    again = upsert_order(shop=shop, data=adapter_for(shop).normalize(tb_trade()), actor=platform_actor(shop))
    assert again.outcome == "unchanged" and pool(suzhou, sku) == (10, 1)


@pytest.mark.parametrize("role", ["customer_service", "warehouse", "finance", "operations", "supervisor"])
def test_people_do_not_upsert_platform_orders(tb_world, role):
    from config.errors import NotPermitted
    from config.actors import Actor
    from tests.factories import staff

    shop, *_ = tb_world
    with pytest.raises(NotPermitted):
        upsert_order(shop=shop, data=adapter_for(shop).normalize(tb_trade()), actor=Actor.of(staff(role), Source.ADMIN))
    assert not Order.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_new_order_at_once_store_it_once():
    from tests.concurrency import run_together

    shop = ShopFactory(code="tb-race", platform=Platform.TAOBAO)
    wh = WarehouseFactory(code="race-wh")
    sku = SkuFactory(code="TX324A0212")
    stock(wh, sku, 10)
    payload = tb_trade(receiver_mobile="", buyer_open_uid="race-uid")  # masked buyer: the identity races too

    def deliver():
        return ingest_payloads(shop=shop, payloads=[payload], actor=platform_actor(shop)).summary()

    outcomes = run_together([deliver, deliver])
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    assert sorted(value for _k, value in outcomes) == [
        "created=0 updated=0 unchanged=1 failed=0", "created=1 updated=0 unchanged=0 failed=0"]
    order = Order.objects.get(shop=shop)
    assert order.status == OrderStatus.ALLOCATED and pool(wh, sku) == (10, 1)
    from orders.models import Customer, CustomerIdentity

    assert CustomerIdentity.objects.filter(value="race-uid").count() == 1
    assert Customer.objects.count() == 1 and order.customer.identities.get().value == "race-uid"


def test_quantity_change_while_allocated_reserves_again(tb_world):
    shop, suzhou, _tj, sku = tb_world
    ingest(shop, tb_trade())
    more = tb_trade(modified="2013-11-10 18:00:00")
    more["orders"]["order"][0]["num"] = 3
    assert ingest(shop, more).updated == 1
    order = Order.objects.get(shop=shop)
    assert order.status == OrderStatus.ALLOCATED and order.lines.get().quantity == 3
    assert active_reservations(order) == [("suzhou", sku.code, 3)] and pool(suzhou, sku) == (10, 3)


def test_a_line_dropped_after_allocation_is_kept_and_the_order_waits(tb_world):
    shop, suzhou, _tj, sku = tb_world
    two = tb_trade()
    two["orders"]["order"].append(dict(two["orders"]["order"][0], oid=777))
    ingest(shop, two)
    order = Order.objects.get(shop=shop)
    assert order.status == OrderStatus.ALLOCATED and pool(suzhou, sku) == (10, 2)
    ingest(shop, tb_trade(modified="2013-11-10 18:00:00"))  # only the first line now
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD and order.hold_reason == HoldReason.MANUAL and "777" in order.hold_note
    assert "line_removed_kept" in order.platform_flags and order.lines.count() == 2
    assert pool(suzhou, sku) == (10, 0)


def test_a_newer_version_with_mapped_skus_lifts_the_data_hold(tb_world):
    shop, suzhou, _tj, sku = tb_world
    unmapped = tb_trade()
    unmapped["orders"]["order"][0].update({"outer_sku_id": "", "sku_id": "P-NEW"})
    ingest(shop, unmapped)
    order = Order.objects.get(shop=shop)
    assert order.hold_reason == HoldReason.SKU_UNMAPPED
    mapped = tb_trade(modified="2013-11-10 18:00:00")  # the seller fixed the SKU code on the platform
    assert ingest(shop, mapped).updated == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.ALLOCATED and active_reservations(order) == [("suzhou", sku.code, 1)]
    assert [k for k in kinds(order) if k in (EventKind.RELEASED, EventKind.ALLOCATED)] == [
        EventKind.RELEASED, EventKind.ALLOCATED]


def test_refund_request_withdrawn_clears_the_flag(tb_world):
    shop, *_ = tb_world
    refund = tb_trade(modified="2013-11-10 19:00:00")
    refund["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
    ingest(shop, refund)
    assert Order.objects.get(shop=shop).refund_requested is True
    closed = tb_trade(modified="2013-11-10 20:00:00")
    closed["orders"]["order"][0]["refund_status"] = "CLOSED"
    ingest(shop, closed)
    order = Order.objects.get(shop=shop)
    assert order.refund_requested is False and kinds(order)[-1] == EventKind.REFUND_CLOSED


def test_payment_arrives_in_a_later_version(tb_world):
    shop, suzhou, _tj, sku = tb_world
    ingest(shop, tb_trade(status="WAIT_BUYER_PAY", pay_time=None, modified="2013-11-10 14:23:00"))
    order = Order.objects.get(shop=shop)
    assert order.status == OrderStatus.PENDING_PAYMENT and pool(suzhou, sku) == (10, 0)
    ingest(shop, tb_trade())
    order.refresh_from_db()
    assert order.status == OrderStatus.ALLOCATED and order.paid_at == datetime(2013, 11, 10, 6, 30, tzinfo=UTC)


def test_a_changed_receiver_phone_is_found_by_the_admins_phone_search(tb_world):
    """The platform moves the parcel to another receiver: the indexed normalized phone follows."""
    shop, *_ = tb_world
    ingest(shop, tb_trade())
    order = Order.objects.get(shop=shop)
    assert ingest(shop, tb_trade(modified="2013-11-10 18:00:00", receiver_mobile="13900000009")).updated == 1
    order.refresh_from_db()
    assert (order.receiver_phone, order.receiver_phone_normalized) == ("13900000009", "+8613900000009")
