"""Lenient readers for what platforms send: money, integers, flags, times, Chinese regions.

Real payloads give the same value in many shapes — ``"12.30"``, ``12.3``, ``"1,234.00"``,
``"¥12"``; ``3`` or ``"3"``; ``true``, ``"true"``, ``1``; ``"2024-01-02 15:04:05"`` (Beijing
time), epoch seconds or milliseconds (also as strings, even ``"1.569521782042E9"``), ISO 8601
with an offset, ``Z`` or milliseconds. Each reader gives one canonical value (Decimal, int,
bool, aware UTC datetime), so a normalized order does not depend on the shape.

A value that cannot be read raises `ParseError` (a ValueError); absent values (``None``,
``""``) give the default.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")


class ParseError(ValueError):
    pass


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- numbers ---------------------------------------------------------------------------------

_MONEY_NOISE = re.compile(r"[\s,¥￥$元]|CNY|RMB|USD", re.IGNORECASE)


def to_decimal(value: Any, default: Decimal | None = Decimal("0")) -> Decimal | None:
    """Decimal from str/int/float/Decimal: ``"12.30"``, ``12.3`` (via its shortest repr, so
    12.3 → Decimal("12.3"), not the binary float), ``"1,234.00"``, ``"¥12"``, ``"12元"``."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        raise ParseError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ParseError(f"not a number: {value!r}")
        return Decimal(repr(value))
    if isinstance(value, str):
        text = _MONEY_NOISE.sub("", value)
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ParseError(f"not a number: {value!r}") from None
        if not result.is_finite():
            raise ParseError(f"not a number: {value!r}")
        return result
    raise ParseError(f"not a number: {value!r}")


def to_money(value: Any, default: Decimal = Decimal("0")) -> Decimal:
    """An amount in yuan (or the order's currency) to the cent: ``12.3`` → ``Decimal("12.30")``."""
    return to_decimal(value, default).quantize(CENT, rounding=ROUND_HALF_UP)


def fen_to_money(value: Any, default: Decimal = Decimal("0")) -> Decimal:
    """An integer amount in 分 (Douyin, WeChat Pay) → yuan to the cent: ``1230`` → ``12.30``."""
    if _blank(value):
        return default.quantize(CENT)
    return (to_decimal(value) / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def to_int(value: Any, default: int = 0) -> int:
    """int from ``3``, ``"3"``, ``3.0``, ``"3.0"``, ``"1,000"``; 3.5 is an error, not 3."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        raise ParseError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ParseError(f"not an integer: {value!r}")
    return int(number)


_TRUE = {"true", "t", "yes", "y", "1", "on", "是"}
_FALSE = {"false", "f", "no", "n", "0", "off", "否", "null", "none"}


def to_bool(value: Any, default: bool = False) -> bool:
    """bool from ``True``, ``"true"``/``"false"`` (any case), ``1``/``0``, ``"1"``/``"0"``."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        if value in (0, 1):
            return bool(value)
        raise ParseError(f"not a flag: {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ParseError(f"not a flag: {value!r}")


def to_str(value: Any) -> str:
    """Text of an id or code, the same whether it came as a number or a string:
    ``452790065331038`` and ``"452790065331038"`` → ``"452790065331038"``; ``1.0`` → ``"1"``;
    ``None`` → ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    return str(value).strip()


# --- time ------------------------------------------------------------------------------------

_EPOCH_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")
_LOCAL = re.compile(
    r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?)?$")
_ZERO_TIMES = {"0000-00-00 00:00:00", "0000-00-00", "0"}


def parse_time(value: Any, *, tz: ZoneInfo | timezone = SHANGHAI) -> datetime | None:
    """Aware UTC datetime from what platforms send, or None when absent.

    - naive ``"2024-01-02 15:04:05"`` (also ``/`` separators, unpadded ``2015-3-11``, date only):
      read in ``tz`` (Asia/Shanghai by default — Chinese platforms send Beijing time);
    - epoch seconds or milliseconds as int, float or string, incl. ``"1.569521782042E9"``
      (values above 10^11 are milliseconds);
    - ISO 8601 with ``Z``/``+08:00``/``+0800`` and optional fractions;
    - a datetime (naive ones are read in ``tz``) or a date.
    """
    if _blank(value):
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=tz)
        return dt.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz).astimezone(timezone.utc)
    if isinstance(value, bool):
        raise ParseError(f"not a time: {value!r}")
    if isinstance(value, (int, float, Decimal)):
        return _from_epoch(Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    if not isinstance(value, str):
        raise ParseError(f"not a time: {value!r}")
    text = value.strip()
    if text in _ZERO_TIMES:
        return None
    if _EPOCH_NUMBER.match(text):
        return _from_epoch(Decimal(text))
    m = _LOCAL.match(text)
    if m:
        y, mo, d, h, mi, s, frac = m.groups()
        try:
            dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                          int((frac or "0").ljust(6, "0")), tzinfo=tz)
        except ValueError:
            raise ParseError(f"not a time: {value!r}") from None
        return dt.astimezone(timezone.utc)
    iso = text.replace(" ", "T", 1) if re.match(r"^\d{4}-\d{2}-\d{2} \d", text) else text
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    iso = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", iso)  # +0800 → +08:00
    iso = re.sub(r"\.(\d{6})\d+", r".\1", iso)  # nanoseconds → microseconds
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ParseError(f"not a time: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(timezone.utc)


def _from_epoch(number: Decimal) -> datetime:
    if number <= 0:
        raise ParseError(f"not a time: {number!r}")
    seconds = number / 1000 if number > Decimal(10) ** 11 else number
    whole = int(seconds)
    micros = int(((seconds - whole) * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=whole, microseconds=micros)


def format_local(value: datetime, tz: ZoneInfo = SHANGHAI) -> str:
    """``"2024-01-02 15:04:05"`` in ``tz`` — the request format of TOP, JD and friends."""
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def epoch_seconds(value: datetime) -> int:
    return int(value.timestamp())


# --- Chinese regions -------------------------------------------------------------------------

REGIONS_FILE = Path(__file__).with_name("data") / "regions_cn.json"
_PROVINCE_SHORT = {
    "内蒙古自治区": "内蒙古", "广西壮族自治区": "广西", "西藏自治区": "西藏",
    "宁夏回族自治区": "宁夏", "新疆维吾尔自治区": "新疆",
}
_CITY_PLACEHOLDERS = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}
_DISTRICT = re.compile(r"^(.{1,7}?(?:自治县|自治旗|林区|特区|新区|区|县|市|旗))")


@dataclass(frozen=True)
class Region:
    province: str = ""
    city: str = ""
    district: str = ""
    address: str = ""  # what is left of the address after the region names


@dataclass(frozen=True)
class _Province:
    code: str
    name: str
    names: tuple[str, ...]  # full first, then short forms
    municipality: bool
    cities: tuple[tuple[str, tuple[str, ...]], ...]  # (name, (full, short…))


def _short_city(name: str) -> tuple[str, ...]:
    forms = [name]
    for suffix in ("自治州", "地区", "林区", "盟", "市"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            stem = name[: -len(suffix)]
            if suffix == "自治州":  # 恩施土家族苗族自治州 → 恩施
                stem = stem[:2]
            forms.append(stem)
            break
    return tuple(forms)


@lru_cache(maxsize=1)
def regions() -> tuple[_Province, ...]:
    """The region table copied into the repo (data/regions_cn.json, NBS 2023 via
    modood/Administrative-divisions-of-China, WTFPL)."""
    data = json.loads(REGIONS_FILE.read_text(encoding="utf-8"))
    result = []
    for p in data["provinces"]:
        name = p["name"]
        short = _PROVINCE_SHORT.get(name) or re.sub(r"(省|市)$", "", name)
        municipality = p.get("municipality", False)
        cities = tuple((c, _short_city(c)) for c in p["cities"] if c not in _CITY_PLACEHOLDERS)
        result.append(_Province(p["code"], name, (name, short), municipality, cities))
    return tuple(result)


def _match_province(text: str) -> tuple[_Province, str] | None:
    """The province ``text`` names or starts with, and the rest of ``text``."""
    for form_index in (0, 1):
        for p in regions():
            form = p.names[form_index]
            if text.startswith(form):
                return p, text[len(form):]
    return None


def _match_city(province: _Province, text: str) -> tuple[str, str] | None:
    if province.municipality:
        for form in (province.name, province.names[1] + "城区", "市辖区", "县", province.names[1]):
            if text.startswith(form):
                return province.name, text[len(form):]
        return None
    best = None
    for name, forms in province.cities:
        for form in forms:
            if text.startswith(form) and (best is None or len(form) > len(best[2])):
                best = (name, text[len(form):], form)
    return (best[0], best[1]) if best else None


def split_region(*, province: str = "", city: str = "", district: str = "",
                 address: str = "") -> Region:
    """Province/city/district from separate fields, or from one address string, or both.

    Names come out in full (``陕西`` → ``陕西省``, ``西安`` → ``西安市``); a 直辖市 is its own
    city (``北京市`` → province 北京市, city 北京市, also when the platform says 市辖区). Separate
    fields win over what the address says; the region prefix is stripped from the address.
    Unknown names are kept as given rather than dropped.
    """
    province, city, district = (s.strip() for s in (province or "", city or "", district or ""))
    rest = re.sub(r"^\s*中国\s*", "", (address or "").strip())
    prov = None
    if province:
        hit = _match_province(province)
        if hit:
            prov = hit[0]
            province = prov.name
            again = _match_province(rest)
            if again and again[0] is prov:  # the address repeats the province in another form
                rest = again[1].lstrip()
    elif rest:
        hit = _match_province(rest)
        if hit:
            prov, rest = hit
            province = prov.name
            rest = rest.lstrip()

    if prov is not None:
        if city:
            hit = _match_city(prov, city)
            if hit and not hit[1]:
                city = hit[0]
            elif prov.municipality and city in _CITY_PLACEHOLDERS:
                city = prov.name
            again = _match_city(prov, rest)  # the address repeats the city in another form
            if again and again[0] == city:
                rest = again[1].lstrip()
        else:
            hit = _match_city(prov, rest)
            if hit:
                city, rest = hit[0], hit[1].lstrip()
            elif prov.municipality:
                city = prov.name

    if prov is None:
        for given in (province, city, district):  # address repeating unknown names: drop them
            if given and rest.startswith(given):
                rest = rest[len(given):].lstrip()
    if not district and rest and (city or province):
        m = _DISTRICT.match(rest)
        if m:
            found = m.group(1)
            if not city:  # county-level city directly under the province (湖北省仙桃市)
                city = found
            else:
                district = found
            rest = rest[len(found):].lstrip()
    elif district and rest.startswith(district):
        rest = rest[len(district):].lstrip()
    return Region(province, city, district, rest)


# --- platform conventions ---------------------------------------------------------------------

_LABEL = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")
_CIPHER = re.compile(r"^([~$#@]).{6,}\1.*$", re.S)


def code(value: Any) -> str:
    """A status/enumeration code as text without a documentation label:
    ``"fixed(一口价)"`` → ``"fixed"``, ``105`` → ``"105"``."""
    return _LABEL.sub("", to_str(value))


def is_protected(value: Any) -> bool:
    """True for data a platform masked (``"1380000****"``, ``"张**"``) or encrypted (ciphertext
    wrapped in ``~…~``, ``$…$``, ``#…#`` as Taobao/PDD/Douyin send it)."""
    if not isinstance(value, str) or not value:
        return False
    return "*" in value or bool(_CIPHER.match(value))


def first(*values: Any) -> Any:
    """The first value that is not absent (None / blank string)."""
    for value in values:
        if not _blank(value):
            return value
    return None


def required_id(value: Any, what: str = "order id") -> str:
    """An id the payload must carry (``to_str``), else `ParseError` — a payload without its
    order id cannot be stored or matched, so it fails visibly instead of becoming order ""."""
    text = to_str(value)
    if not text:
        raise ParseError(f"payload has no {what}")
    return text
