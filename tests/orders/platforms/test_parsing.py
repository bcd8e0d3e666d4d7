from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orders.platforms.parsing import (ParseError, Region, fen_to_money, parse_time, split_region, to_bool,
                                      to_decimal, to_int, to_money, to_str)

UTC = timezone.utc


@pytest.mark.parametrize("value, expected", [
    ("12.30", Decimal("12.30")), (12.3, Decimal("12.3")), ("1,234.00", Decimal("1234.00")),
    ("¥12", Decimal("12")), ("￥12.5", Decimal("12.5")), ("12元", Decimal("12")), (7, Decimal("7")),
    (" 0.10 ", Decimal("0.10")), (Decimal("3.14"), Decimal("3.14")), ("-5.00", Decimal("-5.00")),
])
def test_to_decimal(value, expected):
    assert to_decimal(value) == expected


def test_to_money_rounds_to_the_cent_and_float_does_not_leak_binary_noise():
    assert to_money(0.1 + 0.2) == Decimal("0.30")
    assert str(to_money(12.3)) == "12.30"
    assert to_money("2.005") == Decimal("2.01")
    assert to_money(None) == Decimal("0.00")
    assert fen_to_money(1230) == Decimal("12.30") and fen_to_money("5") == Decimal("0.05")


@pytest.mark.parametrize("bad", ["abc", "1.2.3", True, float("nan"), [1]])
def test_to_decimal_rejects_garbage(bad):
    with pytest.raises(ParseError):
        to_decimal(bad)


def test_to_int():
    assert [to_int(v) for v in ("3", 3, 3.0, "3.0", "1,000", None, "")] == [3, 3, 3, 3, 1000, 0, 0]
    with pytest.raises(ParseError):
        to_int(3.5)
    with pytest.raises(ParseError):
        to_int("x")


def test_to_bool():
    assert [to_bool(v) for v in ("true", "TRUE", "false", 1, 0, "1", "0", True, False, None)] == [
        True, True, False, True, False, True, False, True, False, False]
    with pytest.raises(ParseError):
        to_bool("maybe")
    with pytest.raises(ParseError):
        to_bool(2)


def test_to_str_ids_same_from_number_or_string():
    assert to_str(452790065331038) == to_str("452790065331038") == "452790065331038"
    assert to_str(1.0) == "1" and to_str(None) == "" and to_str(" 7 ") == "7"


@pytest.mark.parametrize("value, expected", [
    ("2024-01-02 15:04:05", datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),  # Beijing time
    ("2024/01/02 15:04:05", datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    ("2015-3-11 16:21:06", datetime(2015, 3, 11, 8, 21, 6, tzinfo=UTC)),
    ("2024-01-02", datetime(2024, 1, 1, 16, 0, tzinfo=UTC)),
    (1704179045, datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    ("1704179045", datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    (1704179045000, datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    ("1704179045123", datetime(2024, 1, 2, 7, 4, 5, 123000, tzinfo=UTC)),
    ("1.569521782042E9", datetime(2019, 9, 26, 18, 16, 22, 42000, tzinfo=UTC)),
    (1.569521782042e9, datetime(2019, 9, 26, 18, 16, 22, 42000, tzinfo=UTC)),
    ("2019-05-07T15:42:57.058Z", datetime(2019, 5, 7, 15, 42, 57, 58000, tzinfo=UTC)),
    ("2019-05-07T15:42:57Z", datetime(2019, 5, 7, 15, 42, 57, tzinfo=UTC)),
    ("2024-01-02T15:04:05+08:00", datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    ("2024-01-02T02:04:05-05:00", datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    ("2024-01-02T15:04:05+0800", datetime(2024, 1, 2, 7, 4, 5, tzinfo=UTC)),
    ("2024-01-02T07:04:05.123456789Z", datetime(2024, 1, 2, 7, 4, 5, 123456, tzinfo=UTC)),
])
def test_parse_time(value, expected):
    result = parse_time(value)
    assert result == expected and result.utcoffset().total_seconds() == 0


def test_parse_time_absent_and_bad():
    assert parse_time(None) is None and parse_time("") is None and parse_time("0000-00-00 00:00:00") is None
    with pytest.raises(ParseError):
        parse_time("next tuesday")
    with pytest.raises(ParseError):
        parse_time("2024-02-30 10:00:00")


@pytest.mark.parametrize("kwargs, expected", [
    (dict(province="陕西省", city="西安市", district="雁塔区", address="幸**路示例小区**园"),
     Region("陕西省", "西安市", "雁塔区", "幸**路示例小区**园")),
    (dict(address="北京市朝阳区建国路1号"), Region("北京市", "北京市", "朝阳区", "建国路1号")),
    (dict(address="北京北京市朝阳区建国路1号"), Region("北京市", "北京市", "朝阳区", "建国路1号")),
    (dict(province="北京市", city="市辖区", district="朝阳区"), Region("北京市", "北京市", "朝阳区", "")),
    (dict(province="上海", city="上海市", district="浦东新区", address="上海市浦东新区测试路1号"),
     Region("上海市", "上海市", "浦东新区", "测试路1号")),
    (dict(address="重庆市万州区示例路"), Region("重庆市", "重庆市", "万州区", "示例路")),
    (dict(address="陕西西安雁塔区测试路1号"), Region("陕西省", "西安市", "雁塔区", "测试路1号")),
    (dict(address="中国 广东省 深圳市 南山区 科技园"), Region("广东省", "深圳市", "南山区", "科技园")),
    (dict(address="内蒙古呼和浩特市新城区示例小区"), Region("内蒙古自治区", "呼和浩特市", "新城区", "示例小区")),
    (dict(address="湖北省仙桃市测试路"), Region("湖北省", "仙桃市", "", "测试路")),
    (dict(address="湖北恩施土家族苗族自治州恩施市示例路"),
     Region("湖北省", "恩施土家族苗族自治州", "恩施市", "示例路")),
    (dict(province="浙江", city="杭州", district="西湖区", address="测试路1号"), Region("浙江省", "杭州市", "西湖区", "测试路1号")),
    (dict(address="Somewhere 1"), Region("", "", "", "Somewhere 1")),
])
def test_split_region(kwargs, expected):
    assert split_region(**kwargs) == expected


def test_region_table_is_in_the_repo():
    from orders.platforms.parsing import REGIONS_FILE, regions

    assert "shared" not in str(REGIONS_FILE.resolve().relative_to(REGIONS_FILE.resolve().parents[3]))
    assert len(regions()) == 31
    assert '"_licence": "WTFPL"' in REGIONS_FILE.read_text(encoding="utf-8")


def test_codes_lose_documentation_labels():
    from orders.platforms.parsing import code

    assert code("fixed(一口价)") == "fixed" and code("SUCCESS(退款成功)") == "SUCCESS" and code(105) == "105"


@pytest.mark.parametrize("value, protected", [
    ("1380000****", True), ("张**", True), ("~AgAAAAFx3Vd2wMsRuQBv~1~", True), ("$AgAAAAFx3VcRuQBvBS0=$1$", True),
    ("#AgAAAAFx3Vd2wMsRuQBv#1#", True), ("13800000000", False), ("张三", False), ("", False), (None, False),
])
def test_is_protected(value, protected):
    from orders.platforms.parsing import is_protected

    assert is_protected(value) is protected


def test_required_id():
    from orders.platforms.parsing import required_id

    assert required_id(452790065331038) == "452790065331038"
    with pytest.raises(ParseError):
        required_id("  ")


def test_missing_shared_fixtures_skip_with_the_reason(monkeypatch, tmp_path):
    from tests.orders.platforms import shared

    monkeypatch.setattr(shared, "FIXTURES", tmp_path / "nowhere")
    with pytest.raises(pytest.skip.Exception, match="../shared/fixtures beside the repo"):
        shared.load("taobao/trade_fullinfo_get.jdp_push_row.json")
