"""Planning the demo orders: pure, no database writes.

`Planner` turns the seed's `random.Random` into one `Plan` per order: the shop, the order
as the platform would hand it over, and the steps that take it to its scenario's end.
The runner executes the plans through the services. The order in which random values are
drawn is part of the behaviour (the same seed gives the same orders): keep it when editing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from orders.demo.catalogue import FOLDING, GIFT, OUT_OF_STOCK, SHOPS, SKU_BY_CODE, SKUS, STOCK, US_PLATFORMS, SkuSpec
from orders.demo.fakes import (Person, cn_person, digits, hours, minutes, platform_order_id, platform_sku_id,
                               tax_number, us_person)
from orders.demo.people import (BUYER_NOTES, CANCEL_REASONS, CARRIERS_CN, CARRIERS_US, CHECK_HOLDS, COMPANIES,
                                DEMO_PHONE, FEATURED_NAME, FEATURED_PROVINCE, FEATURED_SHOPS, JZH, MANUAL_HOLDS,
                                MEMBER_LEVELS, RETURN_REASONS, SELLER_NOTES, SOURCE_DETAILS)
from orders.demo.scenarios import (CN_ONLY, NOT_ON, PLATFORM_STATUS, PLATFORM_WEIGHTS, SCENARIOS, UNPAID,
                                   US_ONLY)
from orders.models import HoldReason, Platform
from orders.platforms.base import NormalizedLine, NormalizedOrder

D = Decimal
DAY = timedelta(days=1)
CHINA = ZoneInfo("Asia/Shanghai")  # the buyers' night, not a shop setting


@dataclass
class Step:
    action: str  # a key of Runner.ACTIONS
    after: timedelta  # time since the previous step
    params: dict = field(default_factory=dict)


@dataclass
class Plan:
    scenario: str
    shop_code: str
    data: NormalizedOrder
    paid_after: timedelta | None  # None: never paid
    steps: list[Step]
    max_age: timedelta  # how far back the order may have been placed


Story = tuple[list[Step], timedelta | None, timedelta]  # steps, paid after, max age


@dataclass
class Shared:
    """The steps most stories share, drawn up front (in this order) whatever the scenario."""

    paid: timedelta
    alloc: Step
    pack: Step
    ship: Step
    deliver: Step
    complete: Step

    @classmethod
    def draw(cls, rng: random.Random, us: bool) -> Shared:
        paid = minutes(rng, 0.5, 25)
        alloc = Step("allocate", minutes(rng, 3, 90))
        pack = Step("pack", hours(rng, 1.5, 10) if not us else hours(rng, 4, 18))
        # A split order's parcels leave their warehouses within `gap` of each other.
        ship = Step("ship", hours(rng, 1, 8), {"carrier": rng.choice(CARRIERS_US if us else CARRIERS_CN),
                                               "gap": minutes(rng, 20, 240)})
        deliver = Step("deliver", hours(rng, 20, 80) if not us else hours(rng, 60, 140))
        complete = Step("complete", hours(rng, 6, 96))
        return cls(paid=paid, alloc=alloc, pack=pack, ship=ship, deliver=deliver, complete=complete)


class Planner:
    """Turns a random seed into a list of order plans; executing them is separate."""

    def __init__(self, *, rng: random.Random, mappings: dict[str, dict[str, str]], count: int):
        self.rng = rng
        self.mappings = mappings  # shop code → SKU code → platform SKU id
        self.count = count
        self.shops = {code: platform for code, platform, *_ in SHOPS}
        self.cn_customers = [cn_person(rng) for _ in range(max(20, count * 2 // 3))]
        self.us_customers = [us_person(rng) for _ in range(max(6, count // 10))]
        self.featured = cn_person(rng, province=FEATURED_PROVINCE, phone=DEMO_PHONE, name=FEATURED_NAME)
        self.order_ids: set[str] = set()
        self.featured_orders = 0

    def plans(self) -> list[Plan]:
        names = list(SCENARIOS)
        chosen = names[: self.count]  # every scenario at least once, then by weight
        chosen += self.rng.choices(names, weights=[SCENARIOS[n][0] for n in names], k=max(0, self.count - len(names)))
        self.rng.shuffle(chosen)
        return [self.plan(i, scenario) for i, scenario in enumerate(chosen)]

    # --- who buys where ----------------------------------------------------------------------
    def _shop_for(self, scenario: str) -> str:
        candidates = [
            (code, PLATFORM_WEIGHTS[platform]) for code, platform in self.shops.items()
            if scenario not in NOT_ON.get(platform, set())
            and not (scenario in CN_ONLY and platform in US_PLATFORMS)
            and not (scenario in US_ONLY and platform not in US_PLATFORMS)
        ]
        return self.rng.choices([c for c, _ in candidates], weights=[w for _, w in candidates])[0]

    def _featured_shop(self, scenario: str) -> str:
        """The H5 demo customer shops on every Chinese channel in turn."""
        for _ in FEATURED_SHOPS:
            code = FEATURED_SHOPS[self.featured_orders % len(FEATURED_SHOPS)]
            self.featured_orders += 1
            if scenario not in NOT_ON.get(self.shops[code], set()):
                return code
        return self._shop_for(scenario)  # pragma: no cover - every scenario is allowed somewhere

    def _buyer(self, scenario: str, us: bool, featured: bool) -> Person:
        if us:
            return self.rng.choice(self.us_customers)
        if featured:
            return self.featured
        if scenario == "partially_shipped":
            return cn_person(self.rng, province=self.rng.choice(JZH))
        return self.rng.choice(self.cn_customers)

    def plan(self, index: int, scenario: str) -> Plan:
        rng = self.rng
        featured = (index in (3, 13, 23) or index % 40 == 3) and scenario not in US_ONLY
        shop_code = self._featured_shop(scenario) if featured else self._shop_for(scenario)
        platform = self.shops[shop_code]
        us = platform in US_PLATFORMS
        person = self._buyer(scenario, us, featured)
        lines = self._lines(shop_code, scenario, us)
        steps, paid_after, max_age = self._steps(scenario, us)
        is_presale = scenario == "paid_presale" or (
            not us and scenario in {"completed", "delivered"} and rng.random() < 0.05)
        data = self._order_data(platform, scenario, person, lines, is_presale, us)
        return Plan(scenario=scenario, shop_code=shop_code, data=data, paid_after=paid_after, steps=steps, max_age=max_age)

    def _lines(self, shop_code: str, scenario: str, us: bool) -> list[tuple[SkuSpec, int, bool]]:
        rng = self.rng
        sellable = [s for s in SKUS if s.code in self.mappings[shop_code] and s.code != OUT_OF_STOCK]
        if scenario == "partially_shipped":
            # One folding basin (→ 深圳仓) and one other item (→ 苏州仓) to a 江浙沪 address: a split order.
            folding = rng.choice([s for s in sellable if s.category == FOLDING])
            other = rng.choice([s for s in sellable if ("suzhou", s.code) in STOCK])
            return [(folding, 1, False), (other, rng.choice([1, 1, 2]), False)]
        n = rng.choices([1, 2, 3], weights=[60, 28, 12])[0]
        picked = rng.sample(sellable, k=min(n, len(sellable)))
        lines = [(s, rng.choices([1, 2, 3, 4], weights=[70, 20, 7, 3])[0], False) for s in picked]
        if scenario == "hold_stock_short":
            lines.append((SKU_BY_CODE[OUT_OF_STOCK], rng.choice([1, 1, 2]), False))
        if not us and rng.random() < 0.12:
            lines.append((SKU_BY_CODE[GIFT], 1, True))
        return lines

    # --- how each story unfolds --------------------------------------------------------------
    def _steps(self, scenario: str, us: bool) -> Story:
        s = Shared.draw(self.rng, us)
        story = self._stories(s, us).get(scenario)
        return story() if story else self._delivery(scenario, s)

    def _stories(self, s: Shared, us: bool) -> dict:
        """Scenario → the story of an order that never leaves the warehouse (drawn when called)."""
        rng = self.rng

        def cancel(after: timedelta, reason: str) -> Step:
            return Step("cancel", after, {"reason": reason})

        return {
            "pending_payment": lambda: ([], None, hours(rng, 0.3, 20)),
            "cancelled_unpaid": lambda: ([cancel(hours(rng, 1, 24), "超时未付款,订单自动关闭")], None, 14 * DAY),
            "paid": lambda: ([], s.paid, hours(rng, 0.5, 8)),
            "hold_sku_unmapped": lambda: ([], s.paid, hours(rng, 0.5, 8)),
            "paid_presale": lambda: ([], s.paid, 10 * DAY),
            "hold_stock_short": lambda: ([s.alloc], s.paid, 3 * DAY),
            "hold_manual": lambda: self._held(s, us, HoldReason.MANUAL, rng.choice(MANUAL_HOLDS)),
            "hold_check": lambda: self._held(s, us, *rng.choice(CHECK_HOLDS)),
            # Lead-time stock (the overseas warehouse) reserved more than 24 h ago and never confirmed.
            "hold_reservation_expired": lambda: ([s.alloc, Step("expire", hours(rng, 25, 40))], s.paid, 3 * DAY),
            "allocated": lambda: ([s.alloc], s.paid, hours(rng, 1, 18)),
            "packed": lambda: ([s.alloc, s.pack], s.paid, hours(rng, 12, 30)),
            "cancelled_paid": lambda: ([cancel(minutes(rng, 5, 120), rng.choice(CANCEL_REASONS))], s.paid, 14 * DAY),
            "cancelled_allocated": lambda: ([s.alloc, cancel(hours(rng, 0.2, 6), rng.choice(CANCEL_REASONS))],
                                            s.paid, 14 * DAY),
            "partially_shipped": lambda: ([s.alloc, s.pack, Step("ship_part", s.ship.after, s.ship.params)],
                                          s.paid, 2 * DAY),
        }

    def _held(self, s: Shared, us: bool, reason: str, note: str) -> Story:
        hold = Step("hold", minutes(self.rng, 10, 240), {"reason": reason, "note": note})
        # Held after allocation keeps the reservations; not for lead-time (US) stock, whose
        # reservations would be past their 24 h by now and the expiry job would take them.
        return ([s.alloc, hold] if not us and self.rng.random() < 0.6 else [hold]), s.paid, 3 * DAY

    def _delivery(self, scenario: str, s: Shared) -> Story:
        """Shipped, delivered, completed or returned: the whole way through the warehouse."""
        rng = self.rng
        steps = [s.alloc]
        if rng.random() < 0.08:  # an address check on the way, then released
            steps += [Step("hold", minutes(rng, 10, 90), {"reason": HoldReason.ADDRESS, "note": "收件地址不完整,已联系买家补充"}),
                      Step("release", hours(rng, 0.5, 5), {"note": "买家已补充地址"})]
        steps += [s.pack, s.ship]
        if scenario == "shipped":
            return steps, s.paid, 4 * DAY
        steps.append(s.deliver)
        if scenario == "delivered":
            return steps, s.paid, 8 * DAY
        if scenario == "completed":
            return steps + [s.complete], s.paid, 14 * DAY
        if scenario == "returned":
            if rng.random() < 0.5:
                steps.append(s.complete)
            return steps + [Step("return", hours(rng, 24, 96), {"reason": rng.choice(RETURN_REASONS),
                                                              "restock": rng.random() < 0.7})], s.paid, 14 * DAY
        raise ValueError(f"unknown scenario {scenario}")

    # --- the order as the platform hands it over ---------------------------------------------
    def _priced_lines(self, platform: str, scenario: str, lines: list[tuple[SkuSpec, int, bool]],
                      us: bool) -> tuple[list[NormalizedLine], Decimal, Decimal]:
        """The normalized lines, the goods amount and the line discounts."""
        rng = self.rng
        shop_code = next(c for c, p in self.shops.items() if p == platform)
        normalized = []
        goods = line_discounts = D("0")
        for spec, qty, gift in lines:
            price = (spec.usd if us else spec.price) or spec.price
            line_discount = D("0")
            if gift:
                price = D("0")
            elif not us and rng.random() < 0.15:
                line_discount = (price * qty * D("0.10")).quantize(D("0.01"))  # 限时直降 10%
            goods += price * qty
            line_discounts += line_discount
            normalized.append(NormalizedLine(
                title=("【赠品】" if gift else "") + spec.name, quantity=qty, unit_price=price,
                platform_sku_id=self.mappings[shop_code][spec.code], discount_amount=line_discount, is_gift=gift,
            ))
        if scenario == "hold_sku_unmapped":
            normalized.append(self._unmapped_line(platform, us))
            goods += normalized[-1].unit_price
        return normalized, goods, line_discounts

    def _unmapped_line(self, platform: str, us: bool) -> NormalizedLine:
        """A listing created on the platform but not mapped to a SKU here yet."""
        new_listing = platform_sku_id(self.rng, platform, "NEW-001")
        if platform == Platform.MINIAPP:
            new_listing = "NEW-" + digits(self.rng, 4)
        price = D("36.90") if not us else D("16.99")
        return NormalizedLine(title="新款硅胶折叠沥水篮(未建档)", quantity=1, unit_price=price,
                              platform_sku_id=new_listing)

    def _coupons(self, platform: str, goods: Decimal, us: bool) -> tuple[list[str], Decimal]:
        rng = self.rng
        coupons: list[str] = []
        coupon_off = D("0")
        if not us and goods >= 199 and rng.random() < 0.5:
            coupons.append("店铺券:满199减20")
            coupon_off += 20
        elif not us and goods >= 99 and rng.random() < 0.4:
            coupons.append("店铺券:满99减10")
            coupon_off += 10
        if us and rng.random() < 0.2:
            coupons.append("WELCOME10")
            coupon_off += (goods * D("0.10")).quantize(D("0.01"))
        if platform == Platform.PDD and goods >= 30 and rng.random() < 0.5:
            coupons.append("平台券:百亿补贴立减5")
            coupon_off += 5
        return coupons, coupon_off

    @staticmethod
    def _shipping(platform: str, goods: Decimal, discount: Decimal, us: bool) -> Decimal:
        if us:
            return D("0") if goods >= 35 else D("5.99")
        if platform in {Platform.TAOBAO, Platform.JD, Platform.MINIAPP} and goods - discount < 39:
            return D("6.00")
        return D("0")

    def _buyer_details(self, platform: str, person: Person, is_presale: bool, us: bool) -> dict:
        """Member level, invoice, receiver, source and tags (drawn in this order)."""
        rng = self.rng
        level, vip = rng.choice(MEMBER_LEVELS[platform]) if platform in MEMBER_LEVELS and rng.random() < 0.3 else ("", False)
        invoice_title = tax = ""
        if not us and rng.random() < 0.12:
            if rng.random() < 0.6:
                invoice_title, tax = rng.choice(COMPANIES), tax_number(rng)
            else:
                invoice_title = "个人"
        receiver = person
        if not us and rng.random() < 0.08:  # sent to someone else
            receiver = cn_person(rng, province=person.province)
        source_detail = rng.choice(SOURCE_DETAILS[platform]) if rng.random() < 0.35 else ""
        tags = [tag for tag, on in [("直播", "直播" in source_detail), ("VIP", vip), ("预售", is_presale)] if on]
        return dict(
            member_level=level, is_vip=vip, invoice_title=invoice_title, invoice_tax_number=tax,
            receiver_name=receiver.name, receiver_phone=receiver.phone,
            country=receiver.country, province=receiver.province, city=receiver.city, district=receiver.district,
            address=receiver.address, postcode=receiver.postcode, source_detail=source_detail, tags=tags,
        )

    @staticmethod
    def _platform_status(platform: str, scenario: str) -> str:
        status_key = SCENARIOS[scenario][1]
        codes = PLATFORM_STATUS[platform]
        fallback = {"allocated": "paid", "delivered": "shipped"}.get(status_key, "")
        return codes.get(status_key) or codes.get(fallback, "")

    def _order_data(self, platform: str, scenario: str, person: Person, lines: list[tuple[SkuSpec, int, bool]],
                    is_presale: bool, us: bool) -> NormalizedOrder:
        rng = self.rng
        normalized, goods, line_discounts = self._priced_lines(platform, scenario, lines, us)
        coupons, coupon_off = self._coupons(platform, goods, us)
        discount = min(coupon_off + line_discounts, goods)
        shipping = self._shipping(platform, goods, discount, us)
        details = self._buyer_details(platform, person, is_presale, us)
        return NormalizedOrder(
            platform_order_id="",  # set when the placing time is known
            lines=normalized,
            platform_status=self._platform_status(platform, scenario),
            paid=scenario not in UNPAID,
            currency="USD" if us else "CNY",
            goods_amount=goods, discount_amount=discount, shipping_fee=shipping,
            paid_amount=goods - discount + shipping,
            buyer_name=person.name, buyer_phone=person.phone,
            is_presale=is_presale, coupon_codes=coupons,
            buyer_note=rng.choice(BUYER_NOTES) if not us and rng.random() < 0.2 else "",
            seller_note=rng.choice(SELLER_NOTES) if not us and rng.random() < 0.08 else "",
            raw={"source": "seed_demo", "scenario": scenario},
            **details,
        )

    # --- on the clock ------------------------------------------------------------------------
    def schedule(self, plan: Plan, now: datetime) -> tuple[datetime, list[tuple[Step, datetime]]]:
        """Place the plan on the clock: every event in the past, placed at most `max_age` ago."""
        rng = self.rng
        total = (plan.paid_after or timedelta()) + sum((s.after + s.params.get("gap", timedelta()) for s in plan.steps),
                                                       timedelta())
        room = max(timedelta(), plan.max_age - total)
        placed = now - total - room * rng.random()
        # Few people shop between 01:00 and 07:00 in China: move those orders to the evening before.
        if plan.data.country == "CN" and 1 <= placed.astimezone(CHINA).hour < 7 \
                and placed - timedelta(hours=7) > now - timedelta(days=14):
            placed -= timedelta(hours=7)
        t = placed + (plan.paid_after or timedelta())
        timed = []
        for step in plan.steps:
            t += step.after
            timed.append((step, t))
        return placed, timed

    def finish(self, plan: Plan, placed: datetime, last: datetime) -> NormalizedOrder:
        data = plan.data
        platform = self.shops[plan.shop_code]
        while True:
            pid = platform_order_id(self.rng, platform, placed)
            if pid not in self.order_ids:
                self.order_ids.add(pid)
                break
        data.platform_order_id = pid
        data.placed_at = placed
        if plan.paid_after is not None:
            data.paid_at = placed + plan.paid_after
        if data.is_presale:
            data.promised_ship_at = placed + timedelta(days=self.rng.randint(7, 15))
        data.platform_updated_at = last
        return data
