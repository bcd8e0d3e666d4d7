"""Versioned render cache for the portal's two personal pages (issue 16): my orders and one
order's timeline.

Rendering a page costs ~8–16 ms of Python (ORM objects, cards, templates) for 3–4 cheap
queries. When nothing the page shows changed, the HTML is the same: so every request reads
a **fingerprint** of everything the page shows in ONE indexed query, and the page's main
content (the session-independent fragment: no CSRF token, no form) is cached under a key
made of

    phone · page number or order · language · local date (Asia/Shanghai) · code version · fingerprint

The shell around it (header with the logout form and its CSRF token, language switcher)
is rendered for every request, so each session gets its own token.

The fingerprint is not a change counter that writers must remember to bump (several write
paths use QuerySet.update()/bulk_create, which skip `updated_at` and signals): it is the
content itself, read from the same rows the page is rendered from:

- the orders the page can show: for the list the first page-end + 1 of each branch
  (receiver, buyer) of the visible set in page order, for an order page that order; each
  with the branch it came from (buyer or receiver: decides what is shown) and every
  column the page reads (`selectors.ORDER_FIELDS`, plus `updated_at`), its shop's platform;
- their lines: every column the page reads (`selectors.LINE_FIELDS`);
- their events: count and max id (events are append-only, a database trigger refuses
  UPDATE and DELETE, so any new event, public or not, changes the count);
- for an order page also the warehouses' codes and lead times (the expected-ship text).

Every row is one unambiguous text (PostgreSQL's row literal, elsewhere length-prefixed
pieces), hashed in Python: the same page content ⇔ the same key, whatever path wrote the
rows. The fingerprint is read before the page's data, so a
fragment is never older than the fingerprint it is stored under.

The cache is settings.CACHES["portal_pages"]: the same Redis as the default cache in
production, else a database cache table of its own (fragments must not cull the default
cache's throttle counters). A cache error never fails a page: it is rendered as without a
cache. PORTAL_PAGE_CACHE_SECONDS = 0 turns the cache off.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import connection
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.safestring import SafeString, mark_safe

from inventory.models import Warehouse
from orders.models import Customer, Order, OrderEvent, OrderLine, Shop
from portal import selectors

log = logging.getLogger(__name__)

# Bump when what a fragment contains changes in a way the sources below do not show.
SCHEMA = "1"
KEY_PREFIX = "portal:page:"  # rendered fragments
TOKEN_KEY_PREFIX = "portal:token:"  # a token's order id
CONTENT_TEMPLATES = ("portal/orders_content.html", "portal/order_content.html")
# Relations the pages read beyond the order's own columns, and where the fingerprint covers
# them: a new one in selectors.ORDER_FIELDS must be added to the fingerprint first.
COVERED_RELATIONS = {"shop__platform": "s.platform", "customer__phone": None}  # None: the branch / role


def enabled() -> bool:
    return settings.PORTAL_PAGE_CACHE_SECONDS > 0


# --- the code version ---------------------------------------------------------------------
@lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of what shapes a fragment besides the data: the content templates, the code
    that builds the cards and texts, the translations, and the settings they show. A deploy
    that changes any of them starts on new keys (the old ones expire)."""
    from django.template.loader import get_template

    from orders import masking, models as order_models

    digest = hashlib.sha256(SCHEMA.encode())
    files = [Path(selectors.__file__), Path(__file__), Path(order_models.__file__), Path(masking.__file__)]
    files += [Path(get_template(name).origin.name) for name in CONTENT_TEMPLATES]
    for locale_dir in settings.LOCALE_PATHS:
        files += sorted(Path(locale_dir).glob("*/LC_MESSAGES/*.mo"))
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    with translation.override(settings.LANGUAGE_CODE):  # service hours may be a lazy translation
        shown = [settings.PORTAL_SERVICE_PHONE, settings.PORTAL_SERVICE_HOURS, settings.PORTAL_TIME_ZONE,
                 settings.TIME_ZONE]
        for value in shown:
            digest.update(str(value).encode() + b"\0")
    return digest.hexdigest()[:16]


# --- the fingerprint query -------------------------------------------------------------------
def _enc(expr: str) -> str:
    """`expr` as length-prefixed text ('' for NULL): unambiguous when concatenated."""
    text = f"COALESCE(CAST({expr} AS TEXT), '')"
    return f"LENGTH({text}) || ':' || {text}"


def _row(columns: list[str]) -> str:
    """Columns as one unambiguous text: PostgreSQL's row literal (it quotes what needs it,
    and is much cheaper to plan than a long concatenation), else length-prefixed pieces."""
    if connection.vendor == "postgresql":
        return f"CAST(ROW({', '.join(columns)}) AS TEXT)"
    return " || ".join(_enc(c) for c in columns)


def _order_columns() -> str:
    columns = []
    for name in (*selectors.ORDER_FIELDS, "updated_at"):
        if "__" in name:
            expr = COVERED_RELATIONS[name]  # KeyError: a relation the fingerprint does not cover
            if expr:
                columns.append(expr)
        else:
            columns.append(f"o.{Order._meta.get_field(name).column}")
    return _row(columns)


def _line_columns() -> str:
    return _row([f"l.{OrderLine._meta.get_field(name).column}" for name in selectors.LINE_FIELDS])


def _tables() -> dict[str, str]:
    return {"order": Order._meta.db_table, "customer": Customer._meta.db_table, "shop": Shop._meta.db_table,
            "line": OrderLine._meta.db_table, "event": OrderEvent._meta.db_table,
            "warehouse": Warehouse._meta.db_table}


@lru_cache(maxsize=1)
def _list_sql() -> str:
    t = _tables()
    return (
        # The orders the page can show: the first `wanted` of each branch, as selectors does.
        f"WITH page (id, via) AS ("
        f"SELECT id, 'r' FROM (SELECT o.id FROM {t['order']} o WHERE o.receiver_phone_normalized = %s"
        f" ORDER BY o.placed_at DESC, o.id DESC LIMIT %s) receiver"
        f" UNION ALL SELECT id, 'b' FROM (SELECT o.id FROM {t['order']} o JOIN {t['customer']} c"
        f" ON c.id = o.customer_id WHERE c.phone = %s ORDER BY o.placed_at DESC, o.id DESC LIMIT %s) buyer)"
        f" SELECT 'o', o.id, p.via || '|' || {_order_columns()}"
        f" FROM page p JOIN {t['order']} o ON o.id = p.id JOIN {t['shop']} s ON s.id = o.shop_id"
        f" UNION ALL SELECT 'l', l.order_id, {_line_columns()} FROM {t['line']} l"
        f" WHERE l.order_id IN (SELECT id FROM page)"
        f" UNION ALL SELECT 'e', e.order_id, CAST(COUNT(*) AS TEXT) || ':' || CAST(MAX(e.id) AS TEXT)"
        f" FROM {t['event']} e WHERE e.order_id IN (SELECT id FROM page) GROUP BY e.order_id"
        f" ORDER BY 1, 2, 3"
    )


@lru_cache(maxsize=1)
def _detail_sql() -> str:
    t = _tables()
    return (
        f"SELECT 'o', o.id, CASE WHEN c.phone = %s THEN 'b' WHEN o.receiver_phone_normalized = %s THEN 'r'"
        f" ELSE '' END || '|' || {_order_columns()}"
        f" FROM {t['order']} o JOIN {t['shop']} s ON s.id = o.shop_id"
        f" LEFT JOIN {t['customer']} c ON c.id = o.customer_id WHERE o.id = %s"
        f" UNION ALL SELECT 'l', l.order_id, {_line_columns()} FROM {t['line']} l WHERE l.order_id = %s"
        f" UNION ALL SELECT 'e', e.order_id, CAST(COUNT(*) AS TEXT) || ':' || CAST(MAX(e.id) AS TEXT)"
        f" FROM {t['event']} e WHERE e.order_id = %s GROUP BY e.order_id"
        f" UNION ALL SELECT 'w', w.id, {_row(['w.code', 'w.lead_time_days'])} FROM {t['warehouse']} w"
        f" ORDER BY 1, 2, 3"
    )


def _digest(rows) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for tag, key, text in rows:
        digest.update(f"{tag}\x1f{key}\x1f{text}\x1e".encode())
    return digest.hexdigest()


def list_fingerprint(*, phone: str, wanted: int) -> str:
    """The fingerprint of the list page that shows the first `wanted` visible orders."""
    with connection.cursor() as cursor:
        cursor.execute(_list_sql(), [phone, wanted, phone, wanted])
        return _digest(cursor.fetchall())


def detail_fingerprint(*, phone: str, order_id: int) -> str | None:
    """The fingerprint of one order's page, or None when this phone may not see the order
    (not theirs, or not any more): the same rule as `selectors.visible_orders`."""
    with connection.cursor() as cursor:
        cursor.execute(_detail_sql(), [phone, phone, order_id, order_id, order_id])
        rows = cursor.fetchall()
    via = next((text.split("|", 1)[0] for tag, _, text in rows if tag == "o"), "")
    return _digest(rows) if via else None


# --- the cache -------------------------------------------------------------------------------
def _key(*parts, prefix: str = KEY_PREFIX) -> str:
    """Phone and the rest hashed with the secret key: no phone number in the cache's keys."""
    material = "\x1f".join(str(p) for p in parts)
    return prefix + salted_hmac("portal.page-cache", material, algorithm="sha256").hexdigest()[:40]


CACHE_ALIAS = "portal_pages"


def page_cache():
    """settings.CACHES["portal_pages"] (Redis, or its own database cache table, so the
    fragments never cull the default cache's throttle counters); "default" without it."""
    return caches[CACHE_ALIAS if CACHE_ALIAS in settings.CACHES else "default"]


def _get(key: str):
    try:
        return page_cache().get(key)
    except Exception:  # noqa: BLE001 — the cache is an optimisation: a page never fails on it
        log.warning("portal page cache: get failed, rendering without it", exc_info=True)
        return None


def _set(key: str, value) -> None:
    try:
        page_cache().set(key, value, settings.PORTAL_PAGE_CACHE_SECONDS)
    except Exception:  # noqa: BLE001
        log.warning("portal page cache: set failed", exc_info=True)


def local_date() -> str:
    return selectors.local(timezone.now()).date().isoformat()


def fragment(*, page: str, phone: str, ident, fingerprint: str, render: Callable[[], str]) -> SafeString:
    """The cached content of `page` (list / order) for this phone, or `render()` stored."""
    key = _key(code_version(), page, phone, ident, translation.get_language(), local_date(), fingerprint)
    html = _get(key)
    if isinstance(html, str):
        return mark_safe(html)  # noqa: S308 — our own rendered template output
    html = render()
    _set(key, str(html))
    return mark_safe(html)  # noqa: S308


def order_id_for_token(*, phone: str, token: str) -> int:
    """`selectors.order_id_for_token`, remembered: a token is an HMAC of (phone, order id),
    so the pair always names the same order. Whether this phone may still see it is not
    remembered: `detail_fingerprint` checks it on every request."""
    key = _key("token", phone, token, prefix=TOKEN_KEY_PREFIX)
    order_id = _get(key)
    if isinstance(order_id, int):
        return order_id
    order_id = selectors.order_id_for_token(phone=phone, token=token)
    _set(key, order_id)
    return order_id


def _settings_changed(*, setting, **kwargs) -> None:
    if setting.startswith(("PORTAL_", "TIME_ZONE", "LOCALE_PATHS")):
        code_version.cache_clear()


setting_changed.connect(_settings_changed, dispatch_uid="portal-pagecache-settings")
