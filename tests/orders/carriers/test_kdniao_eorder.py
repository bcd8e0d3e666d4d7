"""KDNiao e-waybill (电子面单, RequestType 1007): request, signature and answers. No published
fixture exists: shapes follow KDNiao's public EOrderService documentation."""

from __future__ import annotations

import base64
import hashlib
import json
from types import SimpleNamespace

import httpx
import pytest

from orders.carriers import kdniao
from orders.carriers import sandbox as sandbox_carrier
from orders.carriers.base import Party, WaybillItem, WaybillOrder, WaybillRefused

ACCOUNT = SimpleNamespace(account_id="1237100", app_key="56da2cf8-c8a2-44b2-b6fa-476cd7d1ba17", api_url="")
ORDER = WaybillOrder(
    order_code="PB-1-00001", carrier="YTO",
    sender=Party("苏州仓", "051268880000", "江苏省", "苏州市", "吴中区", "木渎镇 88 号"),
    receiver=Party("张三", "13800138000", "浙江省", "杭州市", "西湖区", "文三路 1 号"),
    items=(WaybillItem("杯子", 2), WaybillItem("赠品 小勺", 1)))


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


def test_request_is_signed_like_the_query():
    req = kdniao.eorder_request(account=ACCOUNT, order=ORDER)
    assert req.url == kdniao.API_URL and req.data["RequestType"] == "1007" and req.data["DataType"] == "2"
    expected = base64.b64encode(hashlib.md5((req.data["RequestData"] + ACCOUNT.app_key).encode()).hexdigest()
                                .encode()).decode()
    assert req.data["DataSign"] == expected
    body = json.loads(req.data["RequestData"])
    assert body["OrderCode"] == "PB-1-00001" and body["ShipperCode"] == "YTO"
    assert body["Sender"] == {"Name": "苏州仓", "Mobile": "051268880000", "ProvinceName": "江苏省", "CityName": "苏州市",
                              "ExpAreaName": "吴中区", "Address": "木渎镇 88 号"}
    assert body["Receiver"]["Mobile"] == "13800138000"
    assert body["Commodity"] == [{"GoodsName": "杯子", "Goodsquantity": 2}, {"GoodsName": "赠品 小勺", "Goodsquantity": 1}]


def test_good_answer_against_a_fake_server(httpserver):
    httpserver.expect_request("/eorder", method="POST").respond_with_json({
        "EBusinessID": "1237100", "Success": True, "ResultCode": "100", "Reason": "",
        "Order": {"OrderCode": "PB-1-00001", "ShipperCode": "YTO", "LogisticCode": "YT1234567890123",
                  "MarkDestination": "浙-杭州 300", "PackageName": "杭州转运中心", "SortingCode": "A12"}})
    account = SimpleNamespace(**{**vars(ACCOUNT), "api_url": httpserver.url_for("/eorder")})
    req = kdniao.eorder_request(account=account, order=ORDER)
    result = kdniao.parse_eorder(httpx.post(req.url, data=req.data).content)
    assert (result.tracking_number, result.carrier, result.sort_code, result.package_center, result.sorting_code) == (
        "YT1234567890123", "YTO", "浙-杭州 300", "杭州转运中心", "A12")
    assert httpserver.log[0][0].form["DataSign"] == req.data["DataSign"]


@pytest.mark.parametrize("body, reason", [
    ({"Success": False, "ResultCode": "105", "Reason": "余额不足"}, "(105): 余额不足"),
    ({"Success": True, "ResultCode": "101", "Reason": "参数错误"}, "(101): 参数错误"),
    ({"Success": True, "ResultCode": "100", "Order": {}}, "没有返回运单号"),
])
def test_error_answers_are_refusals(body, reason):
    with pytest.raises(WaybillRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        kdniao.parse_eorder(json.dumps(body, ensure_ascii=False))


def test_106_same_order_code_returns_the_same_number():
    result = kdniao.parse_eorder({"Success": True, "ResultCode": "106", "Order": {"ShipperCode": "SF",
                                                                                 "LogisticCode": "SF100"}})
    assert result.tracking_number == "SF100" and result.carrier == "SF"


def test_sandbox_numbers_are_deterministic_and_distinct():
    numbers = {sandbox_carrier.issue_waybill(order=ORDER, sequence=i).tracking_number for i in range(1, 501)}
    assert len(numbers) == 500 and sandbox_carrier.issue_waybill(order=ORDER, sequence=7).tracking_number == "SB000000000007"
