"""Carrier tracking adapters, one module per provider behind one interface (`base.Adapter`).

`ADAPTERS[name]` for the push and query providers (KDNiao, Kuaidi100); the sandbox carrier
is local and answers `next_update` instead of HTTP.
"""

from __future__ import annotations

from orders.carriers import kdniao, kuaidi100, sandbox
from orders.carriers.base import BadSignature, CarrierError, Scan, TrackingUpdate

ADAPTERS = {kdniao.name: kdniao, kuaidi100.name: kuaidi100}

__all__ = ["ADAPTERS", "BadSignature", "CarrierError", "Scan", "TrackingUpdate", "kdniao", "kuaidi100", "sandbox"]
