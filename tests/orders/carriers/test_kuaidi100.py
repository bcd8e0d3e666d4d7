"""Kuaidi100 (快递100) adapter against captured responses and the sign vectors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from orders.carriers import BadSignature, CarrierError, kuaidi100
from tests.orders.platforms.shared import load, load_text

UTC = timezone.utc


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("vector", load("kuaidi100/sign_vectors.computed.json")["vectors"],
                         ids=lambda v: v["label"][:40])
def test_query_sign_matches_every_vector(vector):
    assert kuaidi100.query_sign(vector["param"], vector["key"], vector["customer"]) == vector["sign"]


def test_captured_query_reads_delivered_newest_first():
    [update] = kuaidi100.parse_query(load_text("kuaidi100/query_response.captured.json"))
    assert (update.carrier, update.tracking_number, update.state, update.provider_carrier) == (
        "LHWL", "532071843804", "delivered", "lianhaowuliu")
    assert [(s.occurred_at, s.state) for s in update.scans] == [
        (utc(2018, 7, 17, 3, 26, 35), "delivered"),
        (utc(2018, 7, 17, 0, 30, 20), "out_for_delivery"),
        (utc(2018, 7, 16, 22, 37, 45), "in_transit"),
        (utc(2018, 7, 16, 17, 10, 14), "in_transit"),
        (utc(2018, 7, 16, 17, 0, 7), "in_transit"),
    ]


def test_resultv2_trace_status_words_give_each_scans_state():
    [update] = kuaidi100.parse_query(load_text("kuaidi100/query_response_resultv2_map.captured.json"))
    assert (update.carrier, update.tracking_number, update.state) == ("YTO", "YT5555508965056", "delivered")
    assert [s.state for s in update.scans] == [
        "delivered", "in_transit", "in_transit", "out_for_delivery", "in_transit", "in_transit", "in_transit",
        "in_transit", "picked_up"]
    assert update.scans[2].location == "山东,济南市,历城区,孙村"
    assert update.scans[-1].occurred_at == utc(2021, 6, 13, 5, 3, 42)


@pytest.mark.parametrize("code,state", [
    ("0", "in_transit"), ("1", "picked_up"), ("2", "exception"), ("3", "delivered"), ("4", "returned"),
    ("5", "out_for_delivery"), ("6", "returned"), ("7", "in_transit"), ("13", "exception"), ("14", "exception"),
    ("8", None), ("", None),
])
def test_state_codes(code, state):
    assert kuaidi100.state_of(code) == state


def push_form(last_result: dict, salt: str = "demo-salt") -> dict:
    param = json.dumps({"status": "polling", "message": "", "lastResult": last_result}, ensure_ascii=False)
    return {"param": param, "sign": kuaidi100.push_sign(param, salt)}


ACCOUNT = SimpleNamespace(account_id="C1", app_key="k", salt="demo-salt", api_url="")


def test_push_reads_last_result_and_verifies_sign():
    form = push_form(load("kuaidi100/query_response.captured.json"))
    assert kuaidi100.verify_push(form, accounts=[ACCOUNT]) is ACCOUNT
    [update] = kuaidi100.parse_push(form)
    assert update.tracking_number == "532071843804" and len(update.scans) == 5
    for bad in (push_form({"nu": "1"}, salt="wrong"), {**form, "sign": ""}, {"param": form["param"]},
                {**form, "param": form["param"] + " "}):
        with pytest.raises(BadSignature):
            kuaidi100.verify_push(bad, accounts=[ACCOUNT])
    assert kuaidi100.push_sign("abc", "s") == kuaidi100.md5_upper("abcs") and kuaidi100.md5_upper("x").isupper()


def test_push_without_last_result_is_an_error():
    with pytest.raises(CarrierError):
        kuaidi100.parse_push({"param": json.dumps({"status": "abort"})})


def test_query_request():
    request = kuaidi100.query_request(account=ACCOUNT, carrier="YTO", tracking_number="YT1")
    param = json.loads(request.data["param"])
    assert (param["com"], param["num"], param["resultv2"]) == ("yuantong", "YT1", "1")
    assert request.data["sign"] == kuaidi100.query_sign(request.data["param"], "k", "C1")
    assert request.data["customer"] == "C1"


def test_push_ack():
    assert kuaidi100.push_ack({}, ok=True) == {"result": True, "returnCode": "200", "message": "成功"}


def test_an_aborted_subscription_reads_as_an_exception_unless_the_parcel_arrived():
    last = {"nu": "N1", "com": "yuantong", "state": "0", "data": []}
    param = json.dumps({"status": "abort", "message": "3天查询无记录", "lastResult": last}, ensure_ascii=False)
    [update] = kuaidi100.parse_push({"param": param})
    assert (update.state, update.note) == ("exception", "快递100 停止跟踪: 3天查询无记录")
    param = json.dumps({"status": "abort", "message": "60天无变化", "lastResult": {**last, "state": "3"}})
    assert kuaidi100.parse_push({"param": param})[0].state == "delivered"
