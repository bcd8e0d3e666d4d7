"""Fixed-window counters in the shared cache (Redis with REDIS_URL, else the database cache).

A rate is "N/seconds" (settings.PORTAL_RATE_LIMITS). Keys hold a hash of what is counted,
never the phone number itself.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, seconds = rate.partition("/")
    return int(count), int(seconds)


def _key(bucket: str, ident: str) -> str:
    digest = hashlib.sha256(f"{settings.SECRET_KEY}|{bucket}|{ident}".encode()).hexdigest()[:32]
    return f"portal:rl:{bucket}:{digest}"


def hit(bucket: str, ident: str) -> bool:
    """Count one event; False when this one is over the limit of `bucket`."""
    limit, window = parse_rate(settings.PORTAL_RATE_LIMITS[bucket])
    key = _key(bucket, ident or "-")
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)
        count = 1
    return count <= limit


def exceeded(bucket: str, ident: str) -> bool:
    """Whether `bucket` is already full for `ident` (without counting)."""
    limit, _window = parse_rate(settings.PORTAL_RATE_LIMITS[bucket])
    return (cache.get(_key(bucket, ident or "-")) or 0) >= limit
