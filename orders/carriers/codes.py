"""Carrier companies: our code (what staff type: SF, YTO…), its name, and each provider's code."""

from __future__ import annotations

# code: (name, KDNiao ShipperCode, Kuaidi100 com)
CARRIERS: dict[str, tuple[str, str, str]] = {
    "SF": ("顺丰速运", "SF", "shunfeng"),
    "YTO": ("圆通速递", "YTO", "yuantong"),
    "ZTO": ("中通快递", "ZTO", "zhongtong"),
    "STO": ("申通快递", "STO", "shentong"),
    "YD": ("韵达速递", "YD", "yunda"),
    "EMS": ("EMS", "EMS", "ems"),
    "YZPY": ("邮政快递包裹", "YZPY", "youzhengguonei"),
    "JD": ("京东物流", "JD", "jd"),
    "JTSD": ("极兔速递", "JTSD", "jtexpress"),
    "HTKY": ("百世快递", "HTKY", "huitongkuaidi"),
    "DBL": ("德邦快递", "DBL", "debangkuaidi"),
    "UPS": ("UPS", "UPS", "ups"),
    "FEDEX": ("FedEx", "FEDEX", "fedex"),
    "USPS": ("USPS", "USPS", "usps"),
    "DHL": ("DHL", "DHL", "dhl"),
    "LHWL": ("联昊通物流", "LHT", "lianhaowuliu"),
}

_BY_KDNIAO = {kd: code for code, (_n, kd, _k) in CARRIERS.items()}
_BY_KUAIDI100 = {k: code for code, (_n, _kd, k) in CARRIERS.items()}


def carrier_name(code: str) -> str:
    """The name a customer reads ('顺丰速运'); an unknown code reads as itself."""
    entry = CARRIERS.get((code or "").upper())
    return entry[0] if entry else (code or "")


def kdniao_code(code: str) -> str:
    entry = CARRIERS.get((code or "").upper())
    return entry[1] if entry else (code or "").upper()


def kuaidi100_code(code: str) -> str:
    entry = CARRIERS.get((code or "").upper())
    return entry[2] if entry else (code or "").lower()


def from_kdniao(shipper_code: str) -> str:
    return _BY_KDNIAO.get((shipper_code or "").upper(), (shipper_code or "").upper())


def from_kuaidi100(com: str) -> str:
    return _BY_KUAIDI100.get((com or "").lower(), (com or "").upper())
