"""Demo data: shops, warehouses, SKUs, stock, routing rules, staff and a few hundred orders.

Used by `python manage.py seed_demo`. The tables are plain data modules — `catalogue`
(shops, warehouses, SKUs, opening stock, inbound, rules, staff), `people` (buyers' names,
places, notes), `scenarios` (where orders end up, platform status codes) — apart from the
code: `fakes` draws believable random values, `planner` turns a seed into order plans
without touching the database, and `runner` creates everything through the services.

The whole first run is one transaction: either everything is seeded or nothing is. A
second run finds the demo shops, resets the staff passwords and webhook secrets, and
leaves everything else alone. Orders are generated from `random.Random(seed)`, so the
same seed gives the same orders (relative to the moment of seeding).
"""

from orders.demo.catalogue import (DEFAULT_ORDERS, DEFAULT_PASSWORD, DEFAULT_SEED, DEFAULT_WEBHOOK_SECRET, RULES,
                                   SHOP_CODES, SHOPS, SKUS, STOCK, URLS, USERS, WAREHOUSE_SENDERS, WAREHOUSES)
from orders.demo.people import DEMO_PHONE, PLACES
from orders.demo.planner import Plan, Planner, Step
from orders.demo.runner import ACTOR, Runner, SeedResult, is_seeded, reset_logins, seed, summary
from orders.demo.scenarios import SCENARIOS

__all__ = [
    "ACTOR", "DEFAULT_ORDERS", "DEFAULT_PASSWORD", "DEFAULT_SEED", "DEFAULT_WEBHOOK_SECRET", "DEMO_PHONE", "PLACES",
    "RULES", "SCENARIOS", "SHOP_CODES", "SHOPS", "SKUS", "STOCK", "URLS", "USERS", "WAREHOUSE_SENDERS", "WAREHOUSES",
    "Plan", "Planner", "Runner", "SeedResult", "Step", "is_seeded", "reset_logins", "seed", "summary",
]
