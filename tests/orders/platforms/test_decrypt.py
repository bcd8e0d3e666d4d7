"""Receiver decryption requests and answers (Taobao taobao.top.oaid.decrypt, PDD
pdd.open.decrypt.batch, Douyin order.batchDecrypt, the sandbox locally), against a local fake
server. No published fixture exists for these APIs: shapes follow each platform's public docs."""

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
    assert json.loads(req.params["query_list"]) == [{"oaid": "OAID-XYZ", "tid": "452790065331038", "scene": "1001"}]
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
