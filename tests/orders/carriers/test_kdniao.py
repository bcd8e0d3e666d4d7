"""KDNiao (快递鸟) adapter against its published examples and the DataSign vectors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from orders.carriers import BadSignature, CarrierError, kdniao
from tests.orders.platforms.shared import load, load_text

UTC = timezone.utc


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("vector", load("kdniao/datasign_vectors.computed.json")["vectors"],
                         ids=lambda v: v["label"][:40])
def test_data_sign_matches_every_vector(vector):
    assert kdniao.data_sign(vector["RequestData"], vector["AppKey"]) == vector["DataSign_base64"]
    assert quote(kdniao.data_sign(vector["RequestData"], vector["AppKey"]), safe="") == vector["DataSign_urlencoded"]


def test_query_1002_example_reads_as_a_delivered_parcel_with_every_trace():
    [update] = kdniao.parse_query(load_text("kdniao/query_1002.response.doc_example.json"))
    assert (update.carrier, update.tracking_number, update.state, update.provider_carrier) == (
        "SF", "118461988807", "delivered", "SF")
    # China time, no offset → UTC (−8 h); the published order is kept, the service sorts.
    assert [(s.occurred_at, s.state) for s in update.scans] == [
        (utc(2014, 6, 25, 0, 5, 37), "out_for_delivery"),  # 正在派件..
        (utc(2014, 6, 24, 20, 1, 28), "in_transit"),
        (utc(2014, 6, 24, 17, 41, 6), "in_transit"),
        (utc(2014, 6, 24, 12, 18, 58), "picked_up"),  # 已收件
        (utc(2014, 6, 24, 12, 55, 28), "in_transit"),
        (utc(2014, 6, 25, 2, 23, 3), "delivered"),  # 派件已签收
        (utc(2014, 6, 25, 2, 23, 3), "delivered"),  # 签收人是：已签收
    ]
    assert update.scans[3].description == "已收件[深圳市]"
    assert len({s.key for s in update.scans}) == 7  # same time, different text: two scans


def test_push_101_example_reads_as_two_parcels_in_transit():
    form = {"RequestData": load_text("kdniao/push_101.request_data.doc_example.json"), "EBusinessID": "1109259",
            "RequestType": "101", "DataSign": "x"}
    first, second = kdniao.parse_push(form)
    assert (first.carrier, first.tracking_number, first.state) == ("EMS", "5042260908504", "in_transit")
    assert (second.carrier, second.tracking_number, second.state) == ("EMS", "5042260943004", "in_transit")
    assert [s.state for s in first.scans] == ["picked_up"] + ["in_transit"] * 6 + ["out_for_delivery"]
    assert first.scans[0].occurred_at == utc(2015, 3, 6, 13, 16, 58)
    assert first.scans[-1].description.startswith("呼和浩特市邮政速递物流分公司金川揽投部安排投递")
    assert [s.state for s in second.scans] == ["picked_up"] + ["in_transit"] * 7


@pytest.mark.parametrize("code,state", [
    (0, None), ("1", "picked_up"), ("2", "in_transit"), ("201", "in_transit"), ("202", "out_for_delivery"),
    ("211", "out_for_delivery"), (3, "delivered"), ("311", "delivered"), ("4", "exception"), ("404", "exception"),
    ("412", "exception"), ("", None), (None, None),
])
def test_state_codes(code, state):
    assert kdniao.state_of(code) == state


def test_trace_action_wins_over_the_text():
    body = {"LogisticCode": "X1", "ShipperCode": "ZTO", "State": "2", "StateEx": "202", "Traces": [
        {"AcceptTime": "2024-01-02 03:04:05", "AcceptStation": "快件已到达", "Action": "211"}]}
    [update] = kdniao.parse_query(json.dumps(body))
    assert update.state == "out_for_delivery" and update.scans[0].state == "out_for_delivery"
    assert update.scans[0].carrier_state == "211"


def test_a_failed_query_without_traces_is_an_error():
    with pytest.raises(CarrierError):
        kdniao.parse_query(json.dumps({"Success": False, "Reason": "单号不存在", "LogisticCode": "X"}))
    with pytest.raises(CarrierError):
        kdniao.parse_query("not json")


ACCOUNT = SimpleNamespace(account_id="1109259", app_key="demo-key", api_url="")


def signed_form(request_data: str, key: str = "demo-key", **extra) -> dict:
    return {"RequestData": request_data, "EBusinessID": "1109259", "RequestType": "101",
            "DataSign": kdniao.data_sign(request_data, key), **extra}


def test_push_signature_valid_invalid_missing():
    data = load_text("kdniao/push_101.request_data.doc_example.json")
    assert kdniao.verify_push(signed_form(data), accounts=[ACCOUNT]) is ACCOUNT
    # URL-encoded once more by the sender: still the same sign.
    form = signed_form(data)
    form["DataSign"] = quote(form["DataSign"], safe="")
    assert kdniao.verify_push(form, accounts=[ACCOUNT]) is ACCOUNT
    for bad in (signed_form(data, key="other"), {**signed_form(data), "RequestData": data + " "}, {**signed_form(data), "DataSign": ""},
                {k: v for k, v in signed_form(data).items() if k != "DataSign"},
                {**signed_form(data), "EBusinessID": "999"}, {**signed_form(data), "RequestType": "1002"}):
        with pytest.raises(BadSignature):
            kdniao.verify_push(bad, accounts=[ACCOUNT])


def test_query_request_is_signed_form_data():
    request = kdniao.query_request(account=ACCOUNT, carrier="yto", tracking_number="YT123")
    assert request.url == kdniao.API_URL
    assert json.loads(request.data["RequestData"]) == {"OrderCode": "", "ShipperCode": "YTO", "LogisticCode": "YT123"}
    assert request.data["DataSign"] == kdniao.data_sign(request.data["RequestData"], "demo-key")
    assert (request.data["EBusinessID"], request.data["RequestType"], request.data["DataType"]) == ("1109259", "1002", "2")


def test_push_ack_is_kdniao_shaped():
    ack = kdniao.push_ack({"EBusinessID": "1109259"}, ok=True, now=utc(2015, 3, 11, 8, 26, 11))
    assert ack == {"EBusinessID": "1109259", "UpdateTime": "2015-03-11 16:26:11", "Success": True, "Reason": ""}
