"""The adapters' "mark shipped" calls, pure: request shapes and how each platform's answer is
read (success, retryable, permanent). The HTTP path is covered in tests/orders/test_tracking_push.py."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from orders.platforms.amazon import AmazonAdapter
from orders.platforms.base import PlatformError
from orders.platforms.distributor import DistributorAdapter
from orders.platforms.douyin import DouyinAdapter
from orders.platforms.interface import Credentials
from orders.platforms.jd import JdAdapter
from orders.platforms.pdd import PddAdapter
from orders.platforms.sandbox import SandboxAdapter
from orders.platforms.shopify import ShopifyAdapter
from orders.platforms.taobao import TaobaoAdapter, sign
from orders.platforms.tracking import (CARRIER_CODES, TrackingJob, TrackingLine, TrackingNotApplicable,
                                       UnmappedCarrier, carrier_code)
from orders.platforms.wechat import WechatAdapter

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
CREDS = Credentials(app_key="k", app_secret="s", access_token="t")


def job(**kw) -> TrackingJob:
    values = {"platform_order_id": "1001", "carrier": "SF", "tracking_number": "SF1", "shipped_at": NOW,
              "lines": (TrackingLine(platform_line_id="L1", quantity=2),)}
    return TrackingJob(**{**values, **kw})


def adapter(cls, **extra):
    return cls(Credentials(app_key="k", app_secret="s", access_token="t", shop_id=extra.pop("shop_id", ""),
                           extra=extra), now=lambda: NOW)


def refused(call) -> PlatformError:
    with pytest.raises(PlatformError) as info:
        call()
    return info.value


# --- carrier codes -------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["taobao", "jd", "pdd", "douyin", "shopify", "amazon"])
def test_every_major_chinese_carrier_is_mapped_on_the_chinese_platforms(platform):
    for ours in ("SF", "YTO", "ZTO", "EMS", "JD") + (("STO", "YD") if platform != "amazon" else ()):
        assert carrier_code(platform, ours), (platform, ours)
    assert set(CARRIER_CODES[platform]) <= {"SF", "YTO", "ZTO", "STO", "YD", "EMS", "YZPY", "JD", "JTSD", "HTKY",
                                            "DBL", "UPS", "FEDEX", "USPS", "DHL", "LHWL"}


def test_unmapped_carrier_is_permanent_and_a_shop_may_override():
    err = refused(lambda: carrier_code("pdd", "LHWL"))
    assert isinstance(err, UnmappedCarrier) and not err.retryable and err.code == "unmapped_carrier"
    assert carrier_code("pdd", "lhwl", {"carrier_codes": "LHWL=999, SF=45"}) == "999"
    assert carrier_code("pdd", "SF", {"carrier_codes": {"SF": "45"}}) == "45"
    assert carrier_code("pdd", "SF", {"carrier_codes": ""}) == "44"


# --- Taobao --------------------------------------------------------------------------------------
def test_taobao_split_parcel_sends_its_oids():
    a = adapter(TaobaoAdapter)
    req = a.build_tracking_push(job(package_count=2, lines=(TrackingLine("111"), TrackingLine("112"))))
    assert (req.params["is_split"], req.params["sub_tid"]) == ("1", "111,112")
    assert req.params["sign"] == sign({k: v for k, v in req.params.items() if k != "sign"}, "s")
    with pytest.raises(TrackingNotApplicable):
        a.build_tracking_push(job(package_no=2, package_count=2, lines=(TrackingLine(""),)))


def test_taobao_answers():
    a = adapter(TaobaoAdapter)
    ok = {"logistics_offline_send_response": {"shipping": {"is_success": True}}}
    assert a.parse_tracking_push(job(), status=200, body=ok).done
    ban = refused(lambda: a.parse_tracking_push(job(), status=200, body={"error_response": {
        "code": 7, "msg": "App Call Limited", "sub_msg": "This ban will last for 12 more seconds"}}))
    assert ban.retryable and ban.retry_after == 12.0
    sent = refused(lambda: a.parse_tracking_push(job(), status=200, body={"error_response": {
        "code": 15, "msg": "Remote service error", "sub_code": "isv.logistics-offline-service-error:B04",
        "sub_msg": "订单已发货"}}))
    assert not sent.retryable and "B04" in sent.message
    assert not refused(lambda: a.parse_tracking_push(job(), status=200, body={"x": 1})).retryable


# --- JD, PDD, Douyin -----------------------------------------------------------------------------
def test_jd_takes_no_additional_parcel_and_douyin_none_without_sku_order_ids():
    with pytest.raises(TrackingNotApplicable):
        adapter(JdAdapter).build_tracking_push(job(package_no=2, package_count=2))
    with pytest.raises(TrackingNotApplicable):  # no sku order id: the parcel's goods are unknown
        adapter(DouyinAdapter).build_tracking_push(job(package_no=2, package_count=2, lines=(TrackingLine(""),)))


def test_jd_answers():
    a = adapter(JdAdapter)
    req = a.build_tracking_push(job(platform_order_id="300"))
    assert json.loads(req.params["360buy_param_json"]) == {"logiCoprId": "467", "logiNo": "SF1", "orderId": 300}
    busy = refused(lambda: a.parse_tracking_push(job(), status=200, body={"error_response": {
        "code": "19", "zh_desc": "调用过于频繁", "en_desc": "call limit"}}))
    assert busy.retryable
    no = refused(lambda: a.parse_tracking_push(job(), status=200, body={"jingdong_pop_order_shipment_responce": {
        "sopjosshipment_result": {"success": False, "chineseErrCode": "订单状态不正确", "errorCode": "10400001"}}}))
    assert not no.retryable and no.code == "10400001"


def test_pdd_answers():
    a = adapter(PddAdapter)
    req = a.build_tracking_push(job(carrier="ZTO"))
    assert req.params["type"] == "pdd.logistics.online.send"
    assert (req.params["order_sn"], req.params["logistics_id"], req.params["tracking_number"]) == ("1001", "115", "SF1")
    limited = refused(lambda: a.parse_tracking_push(job(), status=200, body={"error_response": {
        "error_code": 52101, "error_msg": "当前接口被限流"}}))
    assert limited.retryable and limited.retry_after == 60.0
    assert a.parse_tracking_push(job(), status=200, body={"logistics_online_send_response": {"is_success": True}}).done
    assert not refused(lambda: a.parse_tracking_push(job(), status=200, body={
        "logistics_online_send_response": {"is_success": False}})).retryable


def test_pdd_additional_parcel_is_an_extra_tracking_number():
    a = adapter(PddAdapter)
    assert a.extra_parcels_after_first
    extra = job(package_no=2, package_count=2, carrier="YTO", tracking_number="YT2")
    req = a.build_tracking_push(extra)
    assert req.params["type"] == "pdd.order.upload.extra.logistics"
    assert (req.params["order_sn"], req.params["extra_track_type"]) == ("1001", "1")
    assert json.loads(req.params["extra_track_list"]) == [{"shipping_id": 85, "tracking_number": "YT2"}]
    assert "logistics_id" not in req.params
    assert a.parse_tracking_push(extra, status=200, body={"upload_extra_logistics_response": {"success": True}}).done
    # the first parcel's answer key is not the extra one's
    assert refused(lambda: a.parse_tracking_push(extra, status=200, body={
        "logistics_online_send_response": {"is_success": True}})).code == "not_success"


def test_douyin_answers():
    a = adapter(DouyinAdapter)
    req = a.build_tracking_push(job())
    assert req.path == "/order/logisticsAdd" and req.body == {"order_id": "1001", "company_code": "shunfeng",
                                                              "logistics_code": "SF1"}
    assert a.parse_tracking_push(job(), status=200, body={"code": 10000, "msg": "success"}).done
    assert refused(lambda: a.parse_tracking_push(job(), status=200, body={"code": 90000, "msg": "服务繁忙"})).retryable
    assert not refused(lambda: a.parse_tracking_push(job(), status=200, body={
        "code": 50002, "msg": "业务处理失败", "sub_msg": "订单已发货"})).retryable


def test_douyin_split_parcels_go_as_packs_of_their_sku_orders():
    a = adapter(DouyinAdapter)
    for no in (1, 2):
        parcel = job(package_no=no, package_count=2, carrier="YTO", tracking_number=f"YT{no}",
                     reference=f"orderhub-{no}", lines=(TrackingLine("6919000000000000001", quantity=1),
                                                        TrackingLine("6919000000000000002", quantity=3)))
        req = a.build_tracking_push(parcel)
        assert req.path == "/order/logisticsAddMultiPack" and req.params["method"] == "order.logisticsAddMultiPack"
        assert req.body == {"order_id": "1001", "request_id": f"orderhub-{no}", "pack_list": [{
            "shipped_order_info": [{"shipped_order_id": "6919000000000000001", "shipped_num": 1},
                                   {"shipped_order_id": "6919000000000000002", "shipped_num": 3}],
            "logistics_code": f"YT{no}", "company_code": "yuantong"}]}
        answer = a.parse_tracking_push(parcel, status=200, body={"code": 10000, "msg": "success", "data": {
            "pack_list": [{"logistics_code": f"YT{no}", "pack_id": f"73980567759724219{no}",
                           "shipped_order_info": [{"shipped_order_id": "6919000000000000001", "shipped_num": 1}]}]}})
        assert answer.done and answer.reference == f"73980567759724219{no}"


# --- Shopify, Amazon, our mini-program, sandbox, distributor --------------------------------------
def test_shopify_steps_and_errors():
    a = adapter(ShopifyAdapter, shop_id="demo")
    assert a.build_tracking_push(job()).path.endswith("/orders/1001/fulfillment_orders.json")
    none_open = {"fulfillment_orders": [{"id": 1, "status": "closed", "line_items": [
        {"id": 9, "line_item_id": "L1", "fulfillable_quantity": 2}]}]}
    assert refused(lambda: a.parse_tracking_push(job(), status=200, body=none_open)).code == "nothing_to_fulfil"
    step = a.parse_tracking_push(job(), status=200, body={"fulfillment_orders": [{"id": 1, "status": "open",
        "line_items": [{"id": 9, "line_item_id": "L1", "fulfillable_quantity": 5}]}]})
    assert not step.done
    post = a.build_tracking_push(job(state=step.state))
    assert post.method == "POST" and post.headers["X-Shopify-Access-Token"] == "t"
    assert post.body["fulfillment"]["line_items_by_fulfillment_order"] == [
        {"fulfillment_order_id": 1, "fulfillment_order_line_items": [{"id": 9, "quantity": 2}]}]
    assert post.body["fulfillment"]["tracking_info"] == {"number": "SF1", "company": "SF Express"}
    assert post.body["fulfillment"]["notify_customer"] is False
    two_places = a.parse_tracking_push(job(lines=(TrackingLine("L1"), TrackingLine("L2"))), status=200, body={
        "fulfillment_orders": [
            {"id": 1, "status": "open", "assigned_location_id": 10,
             "line_items": [{"id": 9, "line_item_id": "L1", "fulfillable_quantity": 1}]},
            {"id": 2, "status": "open", "assigned_location_id": 20,
             "line_items": [{"id": 8, "line_item_id": "L2", "fulfillable_quantity": 1}]}]})
    assert [g["fulfillment_order_id"] for g in two_places.state["line_items_by_fulfillment_order"]] == [1]
    err = refused(lambda: a.parse_tracking_push(job(), status=422, body={"errors": ["Invalid fulfillment order"]}))
    assert not err.retryable and "Invalid" in err.message
    throttled = refused(lambda: a.parse_tracking_push(job(), status=429, body={"errors": "Exceeded"},
                                                      headers={"Retry-After": "2.0"}))
    assert throttled.retryable and throttled.retry_after == 2.0


def test_amazon_answers():
    a = adapter(AmazonAdapter, marketplace_ids="ATVPDKIKX0DER,A2EUQ1WTGCTBG2")
    req = a.build_tracking_push(job(package_no=2, carrier="UPS"))
    assert req.headers["x-amz-access-token"] == "t" and req.body["marketplaceId"] == "ATVPDKIKX0DER"
    assert req.body["packageDetail"]["packageReferenceId"] == "2"
    assert req.body["packageDetail"]["shipDate"] == "2026-03-01T08:00:00Z"
    assert "carrierName" not in req.body["packageDetail"] and req.body["packageDetail"]["carrierCode"] == "UPS"
    assert req.body["packageDetail"]["orderItems"] == [{"orderItemId": "L1", "quantity": 2}]
    other = a.build_tracking_push(job(carrier="YTO")).body["packageDetail"]  # no Amazon code: "Others" + name
    assert (other["carrierCode"], other["carrierName"]) == ("Others", "YTO Express")
    own = adapter(AmazonAdapter, marketplace_ids="ATVPDKIKX0DER", carrier_codes="LHWL=Others")
    assert own.build_tracking_push(job(carrier="LHWL")).body["packageDetail"]["carrierName"] == "LHWL"
    assert refused(lambda: a.build_tracking_push(job(lines=(TrackingLine(""),)))).code == "no_order_items"
    assert a.parse_tracking_push(job(), status=204, body=None).done
    bad = refused(lambda: a.parse_tracking_push(job(), status=400, body={"errors": [
        {"code": "InvalidInput", "message": "Invalid carrierCode"}]}))
    assert not bad.retryable and bad.code == "InvalidInput"
    quota = refused(lambda: a.parse_tracking_push(job(), status=429, body={"errors": [{"code": "QuotaExceeded"}]},
                                                  headers={"x-amzn-RateLimit-Limit": "2.0"}))
    assert quota.retryable and quota.retry_after == 0.5


def test_wechat_sandbox_distributor():
    w = adapter(WechatAdapter)
    req = w.build_tracking_push(job(reference="orderhub-7"))
    assert req.path == "/api/orderhub/v1/orders/1001/shipments" and req.body["package_ref"] == "orderhub-7"
    err = refused(lambda: w.parse_tracking_push(job(), status=503, body={"error": {
        "code": "busy", "message": "later", "retryable": True, "retry_after": 4}}))
    assert err.retryable and err.retry_after == 4.0
    assert not refused(lambda: w.parse_tracking_push(job(), status=404, body={"error": {
        "code": "no_order", "message": "unknown order"}})).retryable
    s = adapter(SandboxAdapter)
    assert s.build_tracking_push(job(carrier="ANY")).path == "/shipments"
    with pytest.raises(TrackingNotApplicable):
        adapter(DistributorAdapter).build_tracking_push(job())
