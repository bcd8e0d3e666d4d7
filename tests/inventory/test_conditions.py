import pytest

from inventory.conditions import ConditionError, evaluate, region_of, short_province, validate

CTX = {"province": "江苏省", "region": "华东", "sku_category": ["厨具"], "amount": "120.50", "tags": ["vip"],
       "is_presale": False, "shop": "demo-taobao", "channel": "taobao", "country": "CN"}


@pytest.mark.parametrize(
    "node,expected",
    [
        ({}, True),
        ({"field": "province", "op": "in", "value": ["江苏", "浙江"]}, True),
        ({"field": "province", "op": "eq", "value": "浙江省"}, False),
        ({"not": {"field": "sku_category", "op": "eq", "value": "折叠盆"}}, True),
        ({"field": "amount", "op": "gt", "value": 100}, True),
        ({"field": "amount", "op": "lte", "value": "100"}, False),
        ({"any": [{"field": "tags", "op": "contains", "value": "vip"}, {"field": "is_presale", "op": "eq", "value": True}]}, True),
        ({"all": [{"field": "channel", "op": "eq", "value": "TAOBAO"}, {"field": "shop", "op": "startswith", "value": "demo"}]}, True),
        ({"field": "country", "op": "not_in", "value": ["US", "JP"]}, True),
    ],
)
def test_evaluate(node, expected):
    validate(node)
    assert evaluate(node, CTX) is expected


@pytest.mark.parametrize(
    "node",
    [
        [],
        "province == 江苏",
        {"field": "province"},
        {"field": "nope", "op": "eq", "value": "x"},
        {"field": "province", "op": "like", "value": "x"},
        {"field": "amount", "op": "gt", "value": "lots"},
        {"field": "province", "op": "in", "value": "江苏"},
        {"field": "province", "op": "gt", "value": "江苏"},
        {"all": []},
        {"all": [{}], "any": [{}]},
        {"field": "is_vip", "op": "eq", "value": "yes"},
    ],
)
def test_invalid_conditions_are_refused_with_a_reason(node):
    with pytest.raises(ConditionError) as excinfo:
        validate(node)
    assert str(excinfo.value).startswith("$")


def test_province_names_normalise_to_regions():
    assert short_province("广西壮族自治区") == "广西"
    assert region_of("北京市") == "华北"
    assert region_of("江苏") == "华东"
