"""One customer across platforms: phone, platform identities, masked phone + address, merges."""

from __future__ import annotations

import copy

import pytest

from config.actors import Actor, Source
from config.errors import NotPermitted, TransitionNotAllowed
from orders.customers import address_similarity, address_text, customer_merge_undo, masked_phones
from orders.ingest import ingest_payloads, platform_actor, upsert_order
from orders.models import Customer, CustomerIdentity, CustomerMerge, Order, Platform
from orders.platforms.base import NormalizedOrder
from tests.factories import ShopFactory, staff
from tests.orders.platforms.shared import load
from tests.orders.platforms.test_pdd import realistic as pdd_realistic

pytestmark = pytest.mark.django_db


def tb_trade(tid, **over) -> dict:
    """The real JDP row (Taobao fullinfo), paid, with the given changes."""
    trade = copy.deepcopy(load("taobao/trade_fullinfo_get.jdp_push_row.json"))["trade_fullinfo_get_response"]["trade"]
    trade.update({"tid": tid, "status": "WAIT_SELLER_SEND_GOODS", "pay_time": "2024-01-02 10:00:00",
                  "modified": "2024-01-02 10:00:00", "receiver_state": "浙江省", "receiver_city": "杭州市",
                  "receiver_district": "西湖区", "receiver_address": "文三路示例小区3幢2单元501室"})
    trade.update(over)
    return trade


def pdd_order(order_sn, **over) -> dict:
    o = pdd_realistic()
    o.update({"order_sn": order_sn, "province": "浙江省", "city": "杭州市", "town": "西湖区",
              "receiver_address_mask": "文三路示例小区3幢2单元501", "open_address_id": "pdd-open-1"})
    o.update(over)
    return o


@pytest.fixture
def shops():
    return ShopFactory(code="tb", platform=Platform.TAOBAO), ShopFactory(code="pdd", platform=Platform.PDD)


def ingest(shop, *payloads):
    report = ingest_payloads(shop=shop, payloads=list(payloads), actor=platform_actor(shop))
    assert report.failed == 0, report.failures
    return report


def customer_of(shop, platform_order_id) -> Customer:
    return Order.objects.get(shop=shop, platform_order_id=platform_order_id).customer


# --- the real seller's case ----------------------------------------------------------------------
def test_one_buyer_on_taobao_and_pinduoduo_is_one_customer(shops):
    tb, pdd = shops
    ingest(tb, tb_trade(1001, receiver_mobile="13800000000"))
    # PDD sends the phone encrypted; once decrypted (the adapter keeps clear mobiles only) it is the same.
    ingest(pdd, pdd_order("240102-000000000000001", receiver_phone="13800000000"))
    a, b = customer_of(tb, "1001"), customer_of(pdd, "240102-000000000000001")
    assert a == b and Customer.objects.count() == 1
    assert a.phone == "+8613800000000"
    assert set(a.tags) == {"platform:taobao", "platform:pdd", "multi_platform"}
    assert set(a.identities.values_list("platform", "kind", "value")) == {
        ("taobao", "buyer_id", "zhangsan001"), ("pdd", "buyer_id", "pdd-open-1")}


def test_masked_taobao_phone_matches_by_buyer_id_and_oaid(shops):
    tb, _pdd = shops
    ingest(tb, tb_trade(2001, receiver_mobile="13800000001", buyer_open_uid="AAF-open-uid", oaid="OAID-1"))
    # Later orders of the same buyer: receiver masked (as the real JDP row sends it).
    ingest(tb, tb_trade(2002, buyer_open_uid="AAF-open-uid"))
    ingest(tb, tb_trade(2003, buyer_open_uid="someone-else-uid", buyer_nick="other", oaid="OAID-1"))
    first = customer_of(tb, "2001")
    assert customer_of(tb, "2002") == first and customer_of(tb, "2003") == first
    assert Order.objects.get(platform_order_id="2002").receiver_phone == ""  # masked stays masked
    assert first.identities.filter(kind=CustomerIdentity.Kind.OAID, value="OAID-1").exists()


def test_masked_phone_with_similar_address_finds_the_phone_customer(shops):
    tb, pdd = shops
    ingest(tb, tb_trade(3001, receiver_mobile="13800000002", buyer_open_uid="tb-uid-3"))
    # PDD, phone encrypted, masked "138****0002"; another buyer id; the same address → same customer.
    ingest(pdd, pdd_order("240102-000000000000003", receiver_phone_mask="138****0002", open_address_id="pdd-open-3"))
    assert customer_of(pdd, "240102-000000000000003") == customer_of(tb, "3001")
    # The same mask at an unrelated address is not enough.
    ingest(pdd, pdd_order("240102-000000000000004", receiver_phone_mask="138****0002", open_address_id="pdd-open-4",
                          province="广东省", city="深圳市", town="南山区", receiver_address_mask="科技园**路*号"))
    assert customer_of(pdd, "240102-000000000000004") != customer_of(tb, "3001")


def test_identity_only_customer_takes_the_phone_when_it_arrives(shops):
    tb, _pdd = shops
    ingest(tb, tb_trade(4001, buyer_open_uid="uid-4"))
    masked = customer_of(tb, "4001")
    assert masked.phone == ""
    ingest(tb, tb_trade(4002, buyer_open_uid="uid-4", receiver_mobile="13800000003"))
    assert customer_of(tb, "4002") == masked and Customer.objects.get(pk=masked.pk).phone == "+8613800000003"
    assert not CustomerMerge.objects.exists()


def test_virtual_numbers_stay_different_people(shops):
    tb, _pdd = shops
    ingest(tb, tb_trade(5001, receiver_mobile="13800138000-1234", buyer_nick="a", buyer_open_uid="a"),
           tb_trade(5002, receiver_mobile="13800138000", buyer_nick="b", buyer_open_uid="b"))
    assert customer_of(tb, "5001") != customer_of(tb, "5002")
    assert customer_of(tb, "5001").phone == "+8613800138000;ext=1234"


# --- merges and their undo ------------------------------------------------------------------------
def merged_world(shops):
    """A masked Taobao buyer (identity only), the same person's PDD order with a phone, then a
    Taobao order showing both the identity and the phone: the two rows are merged."""
    tb, pdd = shops
    ingest(tb, tb_trade(6001, buyer_open_uid="uid-6"))  # masked: a phone-less customer
    masked = customer_of(tb, "6001")
    ingest(pdd, pdd_order("240102-000000000000006", receiver_phone="13800000004", open_address_id="pdd-open-6"))
    phone_customer = customer_of(pdd, "240102-000000000000006")
    assert masked != phone_customer
    ingest(tb, tb_trade(6002, buyer_open_uid="uid-6", receiver_mobile="13800000004"))
    return tb, pdd, masked, phone_customer


def test_identity_and_phone_with_similar_address_are_merged(shops):
    tb, _pdd, masked, phone_customer = merged_world(shops)
    merge = CustomerMerge.objects.get()
    assert (merge.kept, merge.merged, merge.source) == (phone_customer, masked, Source.PLATFORM)
    assert "地址相似度" in merge.reason
    assert set(Order.objects.filter(customer=phone_customer).values_list("platform_order_id", flat=True)) == {
        "6001", "6002", "240102-000000000000006"}
    assert CustomerIdentity.objects.get(platform="taobao", value="uid-6").customer == phone_customer
    assert "multi_platform" in Customer.objects.get(pk=phone_customer.pk).tags
    assert merge.moved["orders"] == [Order.objects.get(platform_order_id="6001").pk]


def test_dissimilar_address_is_not_merged(shops):
    tb, pdd = shops
    ingest(tb, tb_trade(7001, buyer_open_uid="uid-7", receiver_state="黑龙江省", receiver_city="哈尔滨市",
                        receiver_district="南岗区", receiver_address="测试路99号"))
    ingest(pdd, pdd_order("240102-000000000000007", receiver_phone="13800000005"))
    ingest(tb, tb_trade(7002, buyer_open_uid="uid-7", receiver_mobile="13800000005"))
    assert not CustomerMerge.objects.exists()
    assert customer_of(tb, "7001") != customer_of(tb, "7002")


def snapshot():
    return (sorted(Order.objects.values_list("pk", "customer_id")),
            sorted(CustomerIdentity.objects.values_list("pk", "customer_id")),
            sorted((c.pk, tuple(c.tags)) for c in Customer.objects.all()),
            list(CustomerMerge.objects.values_list("pk", "undone_at")))


@pytest.mark.parametrize("role", ["customer_service", "warehouse", "finance", "operations"])
def test_only_a_supervisor_may_undo_a_merge(shops, role):
    merged_world(shops)
    merge = CustomerMerge.objects.get()
    before = snapshot()
    with pytest.raises(NotPermitted):
        customer_merge_undo(merge=merge, actor=Actor.of(staff(role), Source.ADMIN))
    assert snapshot() == before


def test_supervisor_undoes_a_merge(shops):
    tb, pdd, masked, phone_customer = merged_world(shops)
    merge = CustomerMerge.objects.get()
    boss = staff("supervisor")
    customer_merge_undo(merge=merge, actor=Actor.of(boss, Source.ADMIN))
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == boss and merge.undone_by_label == "supervisor"
    assert customer_of(tb, "6001") == masked
    assert customer_of(tb, "6002") == phone_customer  # came in after the merge: stays
    assert CustomerIdentity.objects.get(platform="taobao", value="uid-6").customer == masked
    assert Customer.objects.get(pk=masked.pk).tags == ["platform:taobao"]
    with pytest.raises(TransitionNotAllowed):
        customer_merge_undo(merge=merge, actor=Actor.of(boss, Source.ADMIN))


# --- pieces -------------------------------------------------------------------------------------------
def test_address_similarity_threshold_examples():
    a = address_text("浙江省", "杭州市", "西湖区", "文三路示例小区3幢2单元501室")
    assert address_similarity(a, address_text("浙江省", "杭州市", "西湖区", "文三路示例小区3幢2单元501")) >= 85
    assert address_similarity(a, address_text("浙江省", "杭州市", "西湖区", "文三路 示例小区 3 幢 2 单元 501 室")) == 100
    assert address_similarity(a, address_text("广东省", "深圳市", "南山区", "科技园**路*号")) < 85


def test_masked_phones_are_read_from_the_payload():
    data = NormalizedOrder(platform_order_id="x", encrypted={"receiver_mobile": "1380000****", "receiver_phone": "029-8000****"},
                           raw={"receiver_phone_mask": "138****0000"})
    assert masked_phones(data) == [("1380000", ""), ("138", "0000")]


def test_upsert_without_any_buyer_data_has_no_customer(shops):
    tb, _pdd = shops
    result = upsert_order(shop=tb, data=NormalizedOrder(platform_order_id="Z1"), actor=platform_actor(tb))
    assert result.outcome == "created" and result.order.customer is None


# --- the admin: supervisors only ---------------------------------------------------------------------
@pytest.mark.parametrize("role", ["customer_service", "warehouse", "finance", "operations"])
def test_merge_admin_is_403_for_everyone_but_supervisors(shops, client, role):
    merged_world(shops)
    merge = CustomerMerge.objects.get()
    before = snapshot()
    client.force_login(staff(role))
    assert client.get("/admin/orders/customermerge/").status_code == 403
    response = client.post("/admin/orders/customermerge/", {"action": "undo_merge", "_selected_action": [merge.pk]})
    assert response.status_code == 403
    assert snapshot() == before


def test_supervisor_undoes_a_merge_in_the_admin(shops, client):
    tb, _pdd, masked, _phone_customer = merged_world(shops)
    merge = CustomerMerge.objects.get()
    client.force_login(staff("supervisor"))
    assert client.get("/admin/orders/customermerge/").status_code == 200
    response = client.post("/admin/orders/customermerge/", {"action": "undo_merge", "_selected_action": [merge.pk]})
    assert response.status_code == 302
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by_label == "supervisor"
    assert customer_of(tb, "6001") == masked
