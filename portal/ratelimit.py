"""Fixed-window counters in the shared cache (Redis with REDIS_URL, else the database cache).

A rate is "N/seconds" (settings.PORTAL_RATE_LIMITS). Keys hold a hash of what is counted,
never the phone number itself.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, seconds = rate.partition("/")
    return int(count), int(seconds)


def _key(bucket: str, ident: str, window: int) -> str:
    digest = hashlib.sha256(f"{settings.SECRET_KEY}|{bucket}|{ident}".encode()).hexdigest()[:32]
    return f"portal:rl:{bucket}:{digest}:{int(time.time()) // window}"


def _atomic_incr() -> bool:
    # Redis INCR is atomic and keeps the key's expiry. Django's generic incr (database cache)
    # is get + set with the default timeout, so there we set the value with our own timeout.
    return settings.CACHES["default"]["BACKEND"].endswith("RedisCache")


def hit(bucket: str, ident: str) -> bool:
    """Count one event; False when this one is over the limit of `bucket`.

    Fixed windows aligned to the clock (the window number is part of the key), so an expiry
    reset by the cache backend can never stretch or shorten a window.
    """
    limit, window = parse_rate(settings.PORTAL_RATE_LIMITS[bucket])
    key = _key(bucket, ident or "-", window)
    if cache.add(key, 1, timeout=window):
        return 1 <= limit
    if _atomic_incr():
        count = cache.incr(key)
    else:
        count = int(cache.get(key) or 0) + 1
        cache.set(key, count, timeout=window)
    return count <= limit
