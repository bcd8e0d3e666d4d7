"""Believable random values for the demo: durations, barcodes, tax numbers, platform ids,
tracking numbers and buyers. Each takes the seed's `random.Random`, so a seed repeats.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from orders.demo.people import (COMPOUNDS, GIVEN, MOBILE_PREFIXES, PLACES, STREETS, SURNAMES, US_FIRST, US_LAST,
                                US_PLACES, US_STREETS)
from orders.models import Platform


def minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=rng.uniform(low, high))


def hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def ean13(rng: random.Random) -> str:
    """A valid EAN-13 with the GS1 China prefix 69x."""
    body = "69" + digits(rng, 10)
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def tax_number(rng: random.Random) -> str:
    """A unified social credit code (统一社会信用代码, GB 32100-2015) with a valid check character."""
    body = "91" + rng.choice(["320500", "330100", "310115", "440106", "110105", "510107", "440300"])
    body += "".join(rng.choice(_USCC_CHARS) for _ in range(9))
    check = (31 - sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_WEIGHTS)) % 31) % 31
    return body + _USCC_CHARS[check]


def platform_sku_id(rng: random.Random, platform: str, sku_code: str) -> str:
    return {
        Platform.TAOBAO: lambda: "5" + digits(rng, 12),
        Platform.JD: lambda: "100" + digits(rng, 9),
        Platform.PDD: lambda: "1" + digits(rng, 10),
        Platform.DOUYIN: lambda: "17" + digits(rng, 17),
        Platform.MINIAPP: lambda: sku_code,
        Platform.SHOPIFY: lambda: "4" + digits(rng, 13),
        Platform.AMAZON: lambda: f"HW-{sku_code}-US",
    }[platform]()


def platform_order_id(rng: random.Random, platform: str, placed: datetime) -> str:
    return {
        Platform.TAOBAO: lambda: "3" + digits(rng, 18),
        Platform.JD: lambda: "29" + digits(rng, 10),
        Platform.PDD: lambda: f"{placed:%y%m%d}-{digits(rng, 15)}",
        Platform.DOUYIN: lambda: "69" + digits(rng, 17),
        Platform.MINIAPP: lambda: f"MP{placed:%Y%m%d}{digits(rng, 6)}",
        Platform.SHOPIFY: lambda: "5" + digits(rng, 12),
        Platform.AMAZON: lambda: f"11{rng.randint(1, 4)}-{digits(rng, 7)}-{digits(rng, 7)}",
    }[platform]()


_UPS_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXY"


def tracking(rng: random.Random, carrier: str) -> str:
    return {
        "SF": lambda: "SF" + digits(rng, 13),
        "ZTO": lambda: "78" + digits(rng, 12),
        "YTO": lambda: "YT" + digits(rng, 13),
        "YD": lambda: "43" + digits(rng, 11),
        "JTSD": lambda: "JT" + digits(rng, 13),
        "JD": lambda: "JDVA" + digits(rng, 11),
        "USPS": lambda: "9400" + digits(rng, 18),
        "UPS": lambda: "1Z" + "".join(rng.choice(_UPS_CHARS) for _ in range(6)) + "03" + digits(rng, 8),
    }[carrier]()


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    province: str
    city: str
    district: str
    address: str
    postcode: str
    country: str = "CN"


def cn_person(rng: random.Random, province: str | None = None, phone: str | None = None, name: str | None = None) -> Person:
    if province is None:
        names = list(PLACES)
        province = rng.choices(names, weights=[PLACES[p][0] for p in names])[0]
    city, postcode, districts = rng.choice(PLACES[province][1])
    address = (f"{rng.choice(STREETS)}{rng.randint(1, 999)}号{rng.choice(COMPOUNDS)}"
               f"{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元{rng.randint(1, 33)}{rng.randint(1, 4):02d}室")
    return Person(
        name=name or rng.choice(SURNAMES) + rng.choice(GIVEN),
        phone=phone or rng.choice(MOBILE_PREFIXES) + digits(rng, 8),
        province=province, city=city, district=rng.choice(districts), address=address, postcode=postcode,
    )


def us_person(rng: random.Random) -> Person:
    state, city, zipcode, area = rng.choice(US_PLACES)
    apt = f", Apt {rng.randint(1, 20)}{rng.choice('ABCD')}" if rng.random() < 0.4 else ""
    return Person(
        name=f"{rng.choice(US_FIRST)} {rng.choice(US_LAST)}",
        phone=f"+1 {area}-{rng.randint(201, 989)}-{digits(rng, 4)}",
        province=state, city=city, district="", address=f"{rng.randint(10, 9899)} {rng.choice(US_STREETS)}{apt}",
        postcode=zipcode, country="US",
    )

