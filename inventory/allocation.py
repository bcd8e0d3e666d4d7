"""Allocation: reserve stock for demands, by the routing rules, all or nothing per request.

The caller (the order service) owns the orders: it locks them, turns each into an
`AllocationRequest` (its lines as `Demand`s plus the `RoutingContext` the rules test) and
records the outcome. This module never imports `orders`.

One allocation is four named steps, the same for one request or a batch of them:

1. `candidates` — per demand, the warehouses of the matching routing rules (from the
   per-process `routing()` snapshot, checked against the database's version token);
2. `lock_pools` — every candidate pool of every request, in one id-ordered
   `SELECT … FOR UPDATE` (the one lock order every stock path uses);
3. `plan` — each request against the shared in-memory stock; a request that falls short
   gives its takes back, so it changes nothing;
4. `reserve` — the writes, in bulk: one `UPDATE … reserved = reserved + d` per distinct
   delta, then the reservations and their ledger moves.

`allocate` runs them for one request, `allocate_many` for many in the same transaction;
both produce the same rows for the same requests taken in the same order.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from config import notify
from config.actors import Actor
from config.errors import InsufficientStock, NotPermitted
from inventory import conditions
from inventory.models import Reservation, RoutingRule, RoutingVersion, StockLevel, StockMove, Warehouse

ALLOCATE_PERMISSION = "orders.allocate_order"


# --- what the caller passes in, what it gets back ----------------------------------------------
@dataclass(frozen=True)
class Demand:
    """One line to cover: `quantity` units of `sku_id` for line `line_id`."""

    line_id: int
    sku_id: int
    quantity: int


@dataclass(frozen=True)
class RoutingContext:
    """What the routing conditions may test, for one order.

    `fields` are the order-wide condition fields (`inventory.conditions.FIELDS`: province,
    city, region, channel, shop, tags, amount…); per line, `sku` and `sku_category` are set
    from `sku_codes` / `sku_categories` (SKU id → code / category).
    """

    country: str
    fields: Mapping[str, object]
    sku_codes: Mapping[int, str]
    sku_categories: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AllocationRequest:
    order_id: int
    reference: str  # the order number, as the ledger's reason names it
    demands: Sequence[Demand]
    context: RoutingContext


@dataclass
class Shortage:
    line_id: int
    sku_code: str
    wanted: int
    available: int


@dataclass
class AllocationResult:
    reservations: list[Reservation] = field(default_factory=list)  # saved; `stock_level` not loaded
    placements: list[tuple[int, Warehouse, int]] = field(default_factory=list)  # (line id, warehouse, quantity)
    shortages: list[Shortage] = field(default_factory=list)
    warehouses: list[Warehouse] = field(default_factory=list)
    rules: dict[int, str] = field(default_factory=dict)  # line id → rule name that chose its warehouse

    @property
    def ok(self) -> bool:
        return not self.shortages

    def shortage_text(self) -> str:
        return "; ".join(f"{s.sku_code} 需要 {s.wanted},可用 {s.available}" for s in self.shortages)


# --- routing rules and warehouses: cached per process, checked per allocation -----------------
@dataclass(frozen=True)
class Rule:
    name: str
    mode: str
    conditions: dict
    warehouse_id: int


@dataclass(frozen=True)
class Routing:
    """The rules and warehouses that may serve orders to one country."""

    rules: tuple[Rule, ...]
    by_priority: tuple[Warehouse, ...]  # allocatable warehouses, priority then id

    @property
    def warehouses(self) -> dict[int, Warehouse]:
        return {w.id: w for w in self.by_priority}


_cache: dict = {"token": None, "routing": {}}
_cache_lock = threading.Lock()
_EMPTY = Routing(rules=(), by_priority=())


def _current_token() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {RoutingVersion._meta.db_table} WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else None


def _load() -> dict[str, Routing]:
    """Only warehouses that may serve at all: active, allocatable (not a return centre); a
    rule naming any other warehouse is skipped. Grouped by the country they ship to."""
    warehouses = list(Warehouse.objects.filter(is_active=True, allocatable=True).order_by("priority", "id"))
    by_id = {w.id: w for w in warehouses}
    rules: dict[str, list[Rule]] = defaultdict(list)
    for rule in RoutingRule.objects.filter(is_active=True, warehouse_id__in=by_id).order_by("position", "id"):
        rules[by_id[rule.warehouse_id].country].append(Rule(rule.name, rule.mode, rule.conditions, rule.warehouse_id))
    countries = {w.country for w in warehouses}
    return {
        country: Routing(rules=tuple(rules[country]), by_priority=tuple(w for w in warehouses if w.country == country))
        for country in countries
    }


def routing(country: str) -> Routing:
    """The routing snapshot for `country`: one cheap query (the version token) per call; the
    rules and warehouses are read again only when the token changed (a rule or warehouse
    was saved or deleted, in any process). Without a token row nothing is cached."""
    token = _current_token()
    with _cache_lock:
        if token is None or token != _cache["token"]:
            snapshot = _load()
            if token is not None:
                _cache["token"], _cache["routing"] = token, snapshot
        else:
            snapshot = _cache["routing"]
    return snapshot.get(country, _EMPTY)


def clear_routing_cache() -> None:
    with _cache_lock:
        _cache["token"], _cache["routing"] = None, {}


# --- step 1: candidates ------------------------------------------------------------------------
Choice = tuple[int, str, str]  # (warehouse id, rule name, mode)


def rule_choices(demand: Demand, context: RoutingContext, rules: Iterable[Rule]) -> list[Choice]:
    """The matching active rules for this line, in rule order, up to and including the first
    strict one (a strict rule ends the search)."""
    ctx = dict(context.fields)
    ctx["sku"] = [context.sku_codes.get(demand.sku_id, "")]
    category = context.sku_categories.get(demand.sku_id, "")
    ctx["sku_category"] = [category] if category else []
    chosen = []
    for rule in rules:
        if conditions.evaluate(rule.conditions, ctx):
            chosen.append((rule.warehouse_id, rule.name, rule.mode))
            if rule.mode == RoutingRule.Mode.STRICT:
                break
    return chosen


@dataclass
class Candidates:
    request: AllocationRequest
    routing: Routing
    demands: list[Demand]  # the request's demands with a positive quantity
    choices: dict[int, list[Choice]]  # line id → rule choices

    @property
    def warehouse_ids(self) -> set[int]:
        return {w.id for w in self.routing.by_priority}

    @property
    def sku_ids(self) -> set[int]:
        return {d.sku_id for d in self.demands}


def candidates(request: AllocationRequest, snapshot: Routing) -> Candidates:
    demands = [d for d in request.demands if d.quantity > 0]
    return Candidates(request, snapshot, demands,
                      {d.line_id: rule_choices(d, request.context, snapshot.rules) for d in demands})


# --- step 2: lock ------------------------------------------------------------------------------
class Pool:
    """A locked pool's counts (what allocation reads of a `StockLevel`)."""

    __slots__ = ("pk", "warehouse", "sku_id", "on_hand", "reserved", "safety_stock")

    def __init__(self, pk: int, warehouse: Warehouse, sku_id: int, on_hand: int, reserved: int, safety_stock: int):
        self.pk, self.warehouse, self.sku_id = pk, warehouse, sku_id
        self.on_hand, self.reserved, self.safety_stock = on_hand, reserved, safety_stock

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


Pools = dict[tuple[int, int], Pool]  # (warehouse id, SKU id) → locked pool


def lock_pools(wanted: Iterable[Candidates]) -> Pools:
    """Lock every pool any of the requests could draw from, in id order, in one statement.

    of=("self",): lock only the pool rows, never joined rows (a lock over a join would take
    SKU rows out of pool order). Only the counts (and the SKU's safety stock) are read."""
    warehouse_ids: set[int] = set()
    sku_ids: set[int] = set()
    warehouses: dict[int, Warehouse] = {}
    for c in wanted:
        warehouse_ids |= c.warehouse_ids
        sku_ids |= c.sku_ids
        warehouses.update(c.routing.warehouses)
    if not warehouse_ids or not sku_ids:
        return {}
    rows = (StockLevel.objects.select_for_update(of=("self",))
            .filter(warehouse_id__in=warehouse_ids, sku_id__in=sku_ids).order_by("id")
            .values_list("id", "warehouse_id", "sku_id", "on_hand", "reserved", "sku__safety_stock"))
    return {(wid, sku_id): Pool(pk, warehouses[wid], sku_id, on_hand, reserved, safety)
            for pk, wid, sku_id, on_hand, reserved, safety in rows}


# --- step 3: plan ------------------------------------------------------------------------------
Take = tuple[Demand, int, int]  # (demand, warehouse id, quantity)


@dataclass
class Plan:
    takes: list[Take] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)  # warehouse ids, in the order first used
    rules: dict[int, str] = field(default_factory=dict)
    shortages: list[Shortage] = field(default_factory=list)


class _Planner:
    """Plans one request against `available` (shared by a batch), taking as it goes."""

    def __init__(self, c: Candidates, available: dict[tuple[int, int], int]):
        self.c, self.available, self.plan = c, available, Plan()

    def have(self, wid: int, demand: Demand) -> int:
        return self.available.get((wid, demand.sku_id), 0)

    def take(self, demand: Demand, wid: int, qty: int) -> None:
        self.available[(wid, demand.sku_id)] -= qty
        self.plan.takes.append((demand, wid, qty))
        if wid not in self.plan.chosen:
            self.plan.chosen.append(wid)

    def short(self, demand: Demand, available: int) -> None:
        code = self.c.request.context.sku_codes.get(demand.sku_id, str(demand.sku_id))
        self.plan.shortages.append(Shortage(demand.line_id, code, demand.quantity, available))

    def give_back(self) -> None:
        for demand, wid, qty in self.plan.takes:
            self.available[(wid, demand.sku_id)] += qty
        self.plan.takes, self.plan.chosen, self.plan.rules = [], [], {}

    def by_rules(self) -> list[Demand]:
        """Lines with matching rules go to the first rule warehouse that can serve them whole;
        a strict rule that cannot is a shortage. Returns the lines still to place."""
        pending = []
        for demand in self.c.demands:
            choices = self.c.choices[demand.line_id]
            if not choices:
                continue
            for wid, rule_name, mode in choices:
                if self.have(wid, demand) >= demand.quantity:
                    self.take(demand, wid, demand.quantity)
                    self.plan.rules[demand.line_id] = rule_name
                    break
                if mode == RoutingRule.Mode.STRICT:  # binding: short there means short, no fallback
                    self.short(demand, max(0, self.have(wid, demand)))
                    break
            else:
                pending.append(demand)
        return pending

    def single_warehouse(self, free: list[Demand]) -> int | None:
        """One warehouse for all remaining lines: those already serving the order, then by priority."""
        need: dict[int, int] = defaultdict(int)
        for demand in free:
            need[demand.sku_id] += demand.quantity
        order = self.plan.chosen + [w.id for w in self.c.routing.by_priority if w.id not in self.plan.chosen]
        return next((wid for wid in order
                     if all(self.available.get((wid, sku), 0) >= qty for sku, qty in need.items())), None)

    def line_by_line(self, demand: Demand) -> None:
        """Whole from the best warehouse that can, else split across several, else short."""
        rule_wids = [wid for wid, _, _ in self.c.choices[demand.line_id]]
        prefs = rule_wids + [wid for wid in self.plan.chosen if wid not in rule_wids]
        prefs += [w.id for w in self.c.routing.by_priority if w.id not in prefs]
        whole = next((wid for wid in prefs if self.have(wid, demand) >= demand.quantity), None)
        if whole is not None:
            self.take(demand, whole, demand.quantity)
            return
        remaining, parts = demand.quantity, []
        for wid in prefs:
            have = self.have(wid, demand)
            if have > 0 and remaining > 0:
                parts.append((wid, min(have, remaining)))
                remaining -= parts[-1][1]
        if remaining:
            self.short(demand, demand.quantity - remaining)
        else:
            for wid, qty in parts:
                self.take(demand, wid, qty)

    def run(self) -> Plan:
        pending = self.by_rules()
        if not self.plan.shortages:
            free = pending + [d for d in self.c.demands if not self.c.choices[d.line_id]]
            single = self.single_warehouse(free) if free else None
            for demand in free:
                if single is not None:
                    self.take(demand, single, demand.quantity)
                else:
                    self.line_by_line(demand)
        if self.plan.shortages:
            self.give_back()
        return self.plan


def plan(c: Candidates, available: dict[tuple[int, int], int]) -> Plan:
    """Per line: the warehouses of matching rules first (rule order), then a warehouse
    already serving this order, then any warehouse with stock by priority; a line no single
    warehouse can serve is split across several. All or nothing: when any line cannot be
    covered the plan takes nothing (its takes go back to `available`) and lists shortages."""
    return _Planner(c, available).run()


# --- step 4: reserve ---------------------------------------------------------------------------
def reserve(planned: list[tuple[AllocationRequest, Plan]], pools: Pools, *, actor: Actor,
            at: datetime) -> dict[int, list[Reservation]]:
    """Write the plans: pools, reservations, ledger moves. Returns order id → reservations.

    The pools are locked and were read under the lock; the check constraint
    0 <= reserved <= on_hand refuses any oversell in the same statement. Each ledger row
    carries the pool's running counts, in plan order."""
    lead_hours = settings.ORDERHUB["LEAD_TIME_RESERVATION_HOURS"]
    expires = at + timedelta(hours=lead_hours)
    now = timezone.now()
    delta: dict[int, int] = defaultdict(int)
    reservations: dict[int, list[Reservation]] = {}
    moves: list[StockMove] = []
    for request, p in planned:
        reason = f"订单 {request.reference} 预占"[:255]
        mine = reservations.setdefault(request.order_id, [])
        for demand, wid, qty in p.takes:
            pool = pools[(wid, demand.sku_id)]
            pool.reserved += qty
            delta[pool.pk] += qty
            reservation = Reservation(order_line_id=demand.line_id, stock_level_id=pool.pk, quantity=qty,
                                      expires_at=expires if pool.warehouse.lead_time_days else None)
            mine.append(reservation)
            moves.append(StockMove(
                stock_level_id=pool.pk, kind=StockMove.Kind.RESERVE, reserved_delta=qty,
                on_hand_after=pool.on_hand, reserved_after=pool.reserved, reservation=reservation,
                order_id=request.order_id, reason=reason, actor=actor.user, actor_label=actor.label,
                source=actor.source,
            ))
    if not moves:
        return reservations
    touched = {p.pk: p for p in pools.values() if p.pk in delta}
    if any(p.reserved > p.on_hand for p in touched.values()):  # cannot happen under the lock
        raise InsufficientStock("库存不足")
    by_delta: dict[int, list[int]] = defaultdict(list)
    for pk in sorted(delta):
        by_delta[delta[pk]].append(pk)
    for d, pks in sorted(by_delta.items()):
        StockLevel.objects.filter(pk__in=pks).update(reserved=F("reserved") + d, updated_at=now)
    Reservation.objects.bulk_create([r for rs in reservations.values() for r in rs])
    StockMove.objects.bulk_create(moves)
    _check_safety_stock(touched.values())
    return reservations


def _check_safety_stock(pools: Iterable[Pool]) -> None:
    for pool in pools:
        threshold = pool.safety_stock
        if threshold and pool.available < threshold:
            pool_id, available = pool.pk, pool.available
            transaction.on_commit(lambda p=pool_id, a=available, t=threshold: notify.stock_alert(p, available=a, threshold=t))


# --- the entry points ---------------------------------------------------------------------------
def _require_transaction(actor: Actor) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("allocation must run inside the order service's transaction")
    if not actor.can(ALLOCATE_PERMISSION):
        raise NotPermitted(f"{actor.label} 没有权限分仓预占")


def allocate_many(requests: Sequence[AllocationRequest], *, actor: Actor,
                  at: datetime | None = None) -> list[AllocationResult]:
    """Allocate each request, in the order given, against stock shared by the batch; one
    result per request. The caller holds the orders' row locks (taken in id order, before
    this locks the pools) and owns their state."""
    _require_transaction(actor)
    at = at or timezone.now()
    snapshots: dict[str, Routing] = {}
    wanted = []
    for request in requests:
        country = request.context.country
        if country not in snapshots:
            snapshots[country] = routing(country)
        wanted.append(candidates(request, snapshots[country]))
    pools = lock_pools(wanted)
    available = {key: p.on_hand - p.reserved for key, p in pools.items()}
    plans = [plan(c, available) for c in wanted]
    written = reserve([(r, p) for r, p in zip(requests, plans) if not p.shortages], pools, actor=actor, at=at)
    results = []
    for c, p in zip(wanted, plans):
        if p.shortages:
            results.append(AllocationResult(shortages=p.shortages))
            continue
        warehouses = c.routing.warehouses
        results.append(AllocationResult(
            reservations=written.get(c.request.order_id, []), rules=p.rules,
            placements=[(demand.line_id, warehouses[wid], qty) for demand, wid, qty in p.takes],
            warehouses=[warehouses[wid] for wid in p.chosen]))
    return results


def allocate(request: AllocationRequest, *, actor: Actor, at: datetime | None = None) -> AllocationResult:
    """Reserve stock for every demand of one request, all or nothing (see `allocate_many`)."""
    return allocate_many([request], actor=actor, at=at)[0]
