"""SMS backends: Alibaba Cloud's RPC signing (published vectors) and the request it sends,
against a fake endpoint on 127.0.0.1."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from portal.models import PortalLoginCode, PortalSmsOutbox
from portal.sms import AliyunBackend, SmsError, SmsMessage, percent_encode, rpc_signature


def test_signature_matches_alibaba_clouds_published_sendsms_example():
    # https://help.aliyun.com/document_detail/56189.html (SMS "HTTP协议及签名"): GET, testId/testSecret.
    params = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
    }
    assert rpc_signature(params, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_signature_matches_alibaba_clouds_rpc_signing_example():
    # The RPC signature document's DescribeRegions example (ECS), secret "testsecret".
    params = {"Format": "XML", "AccessKeyId": "testid", "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
              "Version": "2014-05-26", "Timestamp": "2016-02-23T12:46:24Z"}
    assert rpc_signature(params, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_percent_encoding_follows_the_pop_rules():
    assert percent_encode("a b*~") == "a%20b%2A~"
    assert percent_encode("/=&+") == "%2F%3D%26%2B"


def conf(url: str) -> dict:
    return {"ENDPOINT": url, "ACCESS_KEY_ID": "LTAI-test", "ACCESS_KEY_SECRET": "s3cret", "SIGN_NAME": "订单中台",
            "TEMPLATE_CODE": "SMS_123", "REGION_ID": "cn-hangzhou", "TIMEOUT": 2}


def test_aliyun_backend_posts_a_signed_sendsms_request(httpserver):
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"Code": "OK", "Message": "OK", "BizId": "9006197469364984^0", "RequestId": "F655A8D5"})
    AliyunBackend(conf(httpserver.url_for("/"))).send(SmsMessage(phone="+8613800138000", code="123456", text="x"))

    [(request, _response)] = httpserver.log
    form = dict(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
    assert form["Action"] == "SendSms" and form["Version"] == "2017-05-25"
    assert form["PhoneNumbers"] == "13800138000"
    assert json.loads(form["TemplateParam"]) == {"code": "123456"}
    assert form["SignName"] == "订单中台" and form["TemplateCode"] == "SMS_123"
    assert form["AccessKeyId"] == "LTAI-test" and form["SignatureMethod"] == "HMAC-SHA1"
    assert form["Signature"] == rpc_signature(form, "s3cret", "POST")  # what the server recomputes


def test_aliyun_backend_raises_when_the_provider_refuses(httpserver):
    httpserver.expect_request("/").respond_with_json({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控"})

    with pytest.raises(SmsError, match="BUSINESS_LIMIT_CONTROL"):
        AliyunBackend(conf(httpserver.url_for("/"))).send(SmsMessage(phone="+8613800138000", code="1", text="x"))


@pytest.mark.django_db
def test_the_portal_sends_codes_through_aliyun_when_configured(client, settings, httpserver):
    httpserver.expect_request("/", method="POST").respond_with_json({"Code": "OK", "BizId": "1"})
    settings.SMS_BACKEND = "aliyun"
    settings.SMS_ALIYUN = conf(httpserver.url_for("/"))

    response = client.post("/h5/", {"phone": "13800138000"})

    assert response.status_code == 302
    assert len(httpserver.log) == 1
    assert PortalLoginCode.objects.count() == 1
    assert not PortalSmsOutbox.objects.exists()


@pytest.mark.django_db
def test_a_failing_provider_answers_503_and_the_customer_may_retry(client, settings, httpserver):
    httpserver.expect_request("/").respond_with_data("busy", status=500)
    settings.SMS_BACKEND = "aliyun"
    settings.SMS_ALIYUN = conf(httpserver.url_for("/"))

    response = client.post("/h5/", {"phone": "13800138000"})

    assert response.status_code == 503
    assert "短信发送失败" in response.content.decode()
    assert "portal_pending" not in client.session
