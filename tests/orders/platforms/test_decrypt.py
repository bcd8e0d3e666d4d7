"""Receiver decryption requests and answers (Taobao taobao.top.oaid.decrypt, PDD
pdd.open.decrypt.batch, Douyin order.batchDecrypt, the sandbox locally), against a local fake
server. No published fixture exists for these APIs: the shapes follow the SDK models cited in
each adapter (bububa/opentaobao, lywzx/pdd-node-sdk + PDD's Java SDK, zsmhub/doudian-sdk)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from orders.platforms.base import PlatformError
from orders.platforms.client import PlatformClient
from orders.platforms.douyin import DouyinAdapter
from orders.platforms.interface import Credentials, DecryptedReceiver
from orders.platforms.pdd import PddAdapter
from orders.platforms.sandbox import SandboxAdapter, sandbox_encrypt
from orders.platforms.taobao import TaobaoAdapter, sign as top_sign

NOW = datetime(2024, 1, 2, 7, 4, 5, tzinfo=timezone.utc)
CREDS = Credentials(app_key="key", app_secret="secret", access_token="token")


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


def send(adapter, httpserver, request):
    with PlatformClient(adapter, base_url=httpserver.url_for("/").rstrip("/"), max_attempts=1) as client:
        return client.send(lambda: request).body


def test_taobao_oaid_decrypt(httpserver):
    adapter = TaobaoAdapter(CREDS, now=lambda: NOW)
    req = adapter.build_decrypt_request(order_id="452790065331038", encrypted={"receiver_mobile": "1380000****"},
                                        oaid="OAID-XYZ")
    assert req.params["method"] == "taobao.top.oaid.decrypt"
    assert json.loads(req.params["query_list"]) == [{"oaid": "OAID-XYZ", "tid": "452790065331038", "scene": "1004"}]
    assert req.params["sign"] == top_sign(req.params, "secret")
    httpserver.expect_request("/router/rest").respond_with_json({"top_oaid_decrypt_response": {"receiver_list": {
        "receiver": [{"name": "张三", "mobile": "13800138000", "town": "西湖街道", "address_detail": "文三路 1 号"}]}}})
    assert adapter.parse_decrypt_response(send(adapter, httpserver, req)) == DecryptedReceiver(
        "张三", "13800138000", "西湖街道文三路 1 号")
    with pytest.raises(PlatformError):
        adapter.parse_decrypt_response({"error_response": {"code": "15", "msg": "Remote service error",
                                                           "sub_code": "isv.oaid-invalid"}})
    with pytest.raises(PlatformError):
        adapter.build_decrypt_request(order_id="1", encrypted={}, oaid="")


def test_taobao_decrypt_scene_follows_the_waybill_carrier_and_a_stale_oaid_is_refused():
    adapter = TaobaoAdapter(CREDS, now=lambda: NOW)

    def scene(carrier, a=adapter):
        return json.loads(a.build_decrypt_request(order_id="1", encrypted={}, oaid="O",
                                                  carrier=carrier).params["query_list"])[0]["scene"]

    assert [scene(c) for c in ("SF", "ZTO", "YD", "EMS", "JD", "")] == ["1001", "1002", "1002", "1003", "1004", "1004"]
    own = TaobaoAdapter(Credentials(app_key="key", app_secret="secret", access_token="token",
                                    extra={"oaid_scene": "1006"}), now=lambda: NOW)
    assert scene("SF", own) == "1006"
    with pytest.raises(PlatformError, match="OAID"):
        adapter.parse_decrypt_response({"top_oaid_decrypt_response": {"receiver_list": {"receiver": [
            {"name": "张三", "mobile": "13800138000", "matched": False}]}}})


def test_pdd_decrypt_batch(httpserver):
    adapter = PddAdapter(CREDS, now=lambda: NOW)
    enc = {"receiver_name": "~AgAAAAname~", "receiver_phone": "$AgAAAAphone$", "receiver_address": "~AgAAAAaddr~"}
    req = adapter.build_decrypt_request(order_id="240102-1", encrypted=enc)
    assert req.params["type"] == "pdd.open.decrypt.batch"
    assert json.loads(req.params["data_list"]) == [{"data_tag": "240102-1", "encrypted_data": v} for v in enc.values()]
    httpserver.expect_request("/api/router").respond_with_json({"open_decrypt_batch_response": {"data_decrypt_list": [
        {"data_tag": "240102-1", "encrypted_data": "~AgAAAAname~", "decrypted_data": "李四", "error_code": 0},
        {"data_tag": "240102-1", "encrypted_data": "$AgAAAAphone$", "decrypted_data": "13900139000", "error_code": 0},
        {"data_tag": "240102-1", "encrypted_data": "~AgAAAAaddr~", "decrypted_data": "人民路 2 号", "error_code": 0}]}})
    assert adapter.parse_decrypt_response(send(adapter, httpserver, req)) == DecryptedReceiver(
        "李四", "13900139000", "人民路 2 号")
    with pytest.raises(PlatformError, match="100005"):
        adapter.parse_decrypt_response({"open_decrypt_batch_response": {"data_decrypt_list": [
            {"encrypted_data": "~AgAAAAname~", "error_code": 100005, "error_msg": "解密次数超限"}]}})


def test_pdd_decrypt_prefers_the_address_without_region_and_reads_contact_mobile():
    adapter = PddAdapter(CREDS, now=lambda: NOW)
    enc = {"receiver_name": "~n~", "contact_mobile": "$m$", "address": "~full~", "receiver_address": "~detail~"}
    req = adapter.build_decrypt_request(order_id="240102-2", encrypted=enc)
    assert [d["encrypted_data"] for d in json.loads(req.params["data_list"])] == ["~n~", "$m$", "~detail~", "~full~"]
    rows = [{"data_tag": "240102-2", "encrypted_data": "~full~", "data_type": 7, "decrypted_data": "上海市上海市黄浦区人民路 2 号",
             "error_code": 0},
            {"data_tag": "240102-2", "encrypted_data": "~detail~", "data_type": 8, "decrypted_data": "人民路 2 号",
             "error_code": 0},
            {"data_tag": "240102-2", "encrypted_data": "~n~", "data_type": 5, "decrypted_data": "李四", "error_code": 0},
            {"data_tag": "240102-2", "encrypted_data": "$m$", "data_type": 6, "decrypted_data": "13900139000",
             "error_code": 0}]
    assert adapter.parse_decrypt_response({"open_decrypt_batch_response": {"data_decrypt_list": rows}}) == \
        DecryptedReceiver("李四", "13900139000", "人民路 2 号")
    # the wrapper name of an older SDK generation is read too
    assert adapter.parse_decrypt_response({"open_kms_decrypt_batch_response": {"data_decrypt_list": rows}}).name == "李四"


def test_douyin_batch_decrypt(httpserver):
    adapter = DouyinAdapter(CREDS, now=lambda: NOW)
    enc = {"encrypt_post_receiver": "#name#", "encrypt_post_tel": "$tel$", "post_addr.encrypt_detail": "#addr#"}
    req = adapter.build_decrypt_request(order_id="4810000000001", encrypted=enc)
    assert req.path == "/order/batchDecrypt" and req.params["method"] == "order.batchDecrypt"
    assert req.body == {"cipher_infos": [{"auth_id": "4810000000001", "cipher_text": c} for c in enc.values()]}
    httpserver.expect_request("/order/batchDecrypt", method="POST").respond_with_json({
        "code": 10000, "msg": "success", "data": {"decrypt_infos": [
            {"auth_id": "4810000000001", "cipher_text": "#name#", "decrypt_text": "王五", "err_no": 0},
            {"auth_id": "4810000000001", "cipher_text": "$tel$", "decrypt_text": "13700137000", "err_no": 0},
            {"auth_id": "4810000000001", "cipher_text": "#addr#", "decrypt_text": "长安街 3 号", "err_no": 0}]}})
    assert adapter.parse_decrypt_response(send(adapter, httpserver, req)) == DecryptedReceiver(
        "王五", "13700137000", "长安街 3 号")
    with pytest.raises(PlatformError):
        adapter.parse_decrypt_response({"code": 50002, "msg": "业务处理失败", "sub_msg": "无权限"})
    with pytest.raises(PlatformError, match="300008"):
        adapter.parse_decrypt_response({"code": 10000, "msg": "success", "data": {
            "decrypt_infos": [], "custom_err": {"err_code": 300008, "err_msg": "解密额度不足"}}})
    # a ciphertext answered in another form is placed by its data_type (3 = 手机号)
    assert adapter.parse_decrypt_response({"code": 10000, "data": {"decrypt_infos": [
        {"auth_id": "4810000000001", "cipher_text": "other", "decrypt_text": "13700137000", "err_no": 0,
         "data_type": 3}]}}).phone == "13700137000"


def test_sandbox_decrypts_its_own_locally():
    adapter = SandboxAdapter(Credentials())
    raw = {"receiver": {"name": sandbox_encrypt("赵六"), "phone": "13600136000", "detail": sandbox_encrypt("一路 1 号")}}
    enc = adapter.receiver_ciphertexts(raw)
    assert sorted(enc) == ["detail", "name"]
    req = adapter.build_decrypt_request(order_id="SB-1", encrypted=enc)
    assert adapter.parse_decrypt_response(adapter.decrypt_answer(req)) == DecryptedReceiver(name="赵六", address="一路 1 号")
    with pytest.raises(PlatformError):
        adapter.parse_decrypt_response(adapter.decrypt_answer(
            adapter.build_decrypt_request(order_id="SB-1", encrypted={"name": "~SB~***~"})))
