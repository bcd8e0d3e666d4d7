"""A small JSON condition language over an order, shared by routing and automation rules.

Conditions are data, validated before they are stored, and evaluated without `eval`:

    {"all": [ {"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},
              {"not": {"field": "sku_category", "op": "eq", "value": "折叠盆"}} ]}

A node is either a combinator (`all`: [...], `any`: [...], `not`: node) or a test
`{"field", "op", "value"}`. An empty object matches everything.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

# Province names as published (../shared/fixtures/regions/provinces.json, GB/T 2260),
# with the short forms people type, mapped to the usual sales regions.
PROVINCE_REGION = {
    "北京": "华北", "天津": "华北", "河北": "华北", "山西": "华北", "内蒙古": "华北",
    "辽宁": "东北", "吉林": "东北", "黑龙江": "东北",
    "上海": "华东", "江苏": "华东", "浙江": "华东", "安徽": "华东", "福建": "华东",
    "江西": "华东", "山东": "华东",
    "河南": "华中", "湖北": "华中", "湖南": "华中",
    "广东": "华南", "广西": "华南", "海南": "华南",
    "重庆": "西南", "四川": "西南", "贵州": "西南", "云南": "西南", "西藏": "西南",
    "陕西": "西北", "甘肃": "西北", "青海": "西北", "宁夏": "西北", "新疆": "西北",
    "香港": "港澳台", "澳门": "港澳台", "台湾": "港澳台",
}
_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")


def short_province(name: str) -> str:
    """'江苏省' → '江苏', '广西壮族自治区' → '广西', '上海市' → '上海'."""
    name = (name or "").strip()
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def region_of(province: str) -> str:
    return PROVINCE_REGION.get(short_province(province), "")


# field name → kind; "list" fields hold several values (a test matches if any value does).
FIELDS = {
    "province": "text",
    "city": "text",
    "district": "text",
    "address": "text",
    "region": "text",
    "country": "text",
    "channel": "text",  # the platform: taobao, jd, pdd, douyin, miniapp, shopify, amazon
    "shop": "text",  # shop code
    "sku": "list",  # SKU codes (of the line being routed, or of the whole order)
    "sku_category": "list",
    "tags": "list",
    "amount": "number",  # paid amount
    "member_level": "text",
    "is_vip": "bool",
    "is_presale": "bool",
}
OPS = {
    "eq": {"text", "list", "number", "bool"},
    "ne": {"text", "list", "number", "bool"},
    "in": {"text", "list", "number"},
    "not_in": {"text", "list", "number"},
    "contains": {"text", "list"},
    "startswith": {"text"},
    "gt": {"number"},
    "gte": {"number"},
    "lt": {"number"},
    "lte": {"number"},
}
MAX_DEPTH = 8


class ConditionError(ValueError):
    """The condition is not valid; the message says where and why."""


def validate(node: Any, path: str = "$", depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ConditionError(f"{path}: 嵌套过深(最多 {MAX_DEPTH} 层)")
    if not isinstance(node, dict):
        raise ConditionError(f"{path}: 条件必须是 JSON 对象")
    if not node:
        return
    combinators = {"all", "any", "not"} & node.keys()
    if combinators:
        if len(node) != 1:
            raise ConditionError(f"{path}: all/any/not 必须单独使用")
        key = next(iter(combinators))
        if key == "not":
            validate(node["not"], f"{path}.not", depth + 1)
            return
        children = node[key]
        if not isinstance(children, list) or not children:
            raise ConditionError(f"{path}.{key}: 必须是非空数组")
        for i, child in enumerate(children):
            validate(child, f"{path}.{key}[{i}]", depth + 1)
        return
    unknown = set(node) - {"field", "op", "value"}
    if unknown or not {"field", "op", "value"} <= node.keys():
        raise ConditionError(f"{path}: 需要 field、op、value 三个键(多余: {sorted(unknown) or '无'})")
    field, op, value = node["field"], node["op"], node["value"]
    if field not in FIELDS:
        raise ConditionError(f"{path}: 未知字段 {field!r},可用: {', '.join(FIELDS)}")
    if op not in OPS:
        raise ConditionError(f"{path}: 未知运算 {op!r},可用: {', '.join(OPS)}")
    kind = FIELDS[field]
    if kind not in OPS[op]:
        raise ConditionError(f"{path}: 字段 {field} 不支持运算 {op}")
    if op in {"in", "not_in"}:
        if not isinstance(value, list) or not value:
            raise ConditionError(f"{path}: {op} 的 value 必须是非空数组")
        values = value
    else:
        values = [value]
    for v in values:
        if kind == "number":
            if isinstance(v, bool):
                raise ConditionError(f"{path}: {field} 的值必须是数字")
            try:
                Decimal(str(v))
            except InvalidOperation as exc:
                raise ConditionError(f"{path}: {field} 的值必须是数字") from exc
        elif kind == "bool":
            if not isinstance(v, bool):
                raise ConditionError(f"{path}: {field} 的值必须是 true 或 false")
        elif not isinstance(v, str) or not v.strip():
            raise ConditionError(f"{path}: {field} 的值必须是非空文本")


def _norm(field: str, value: Any) -> Any:
    if field == "province" and isinstance(value, str):
        return short_province(value)
    if isinstance(value, str):
        return value.strip().lower() if field in {"channel", "shop", "country", "sku"} else value.strip()
    return value


def _test(field: str, op: str, expected: Any, actual: Any) -> bool:
    kind = FIELDS[field]
    if kind == "list":
        actual_values = [_norm(field, a) for a in (actual or [])]
    else:
        actual_values = [_norm(field, actual)]
    if kind == "number":
        actual_values = [Decimal(str(a)) for a in actual_values if a is not None]
        expected_values = [Decimal(str(e)) for e in (expected if isinstance(expected, list) else [expected])]
    else:
        expected_values = [_norm(field, e) for e in (expected if isinstance(expected, list) else [expected])]
    if op in {"ne", "not_in"}:
        positive = "eq" if op == "ne" else "in"
        return not _test(field, positive, expected, actual)
    for a in actual_values:
        if op in {"eq", "in"} and a in expected_values:
            return True
        if op == "contains" and any(str(e) in str(a) for e in expected_values):
            return True
        if op == "startswith" and any(str(a).startswith(str(e)) for e in expected_values):
            return True
        e = expected_values[0] if expected_values else None
        if e is not None and op in {"gt", "gte", "lt", "lte"}:
            if (op == "gt" and a > e) or (op == "gte" and a >= e) or (op == "lt" and a < e) or (op == "lte" and a <= e):
                return True
    return False


def evaluate(node: dict, context: dict[str, Any]) -> bool:
    """True when `context` (field → value) satisfies a validated condition."""
    if not node:
        return True
    if "all" in node:
        return all(evaluate(child, context) for child in node["all"])
    if "any" in node:
        return any(evaluate(child, context) for child in node["any"])
    if "not" in node:
        return not evaluate(node["not"], context)
    return _test(node["field"], node["op"], node["value"], context.get(node["field"]))
