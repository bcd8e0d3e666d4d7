"""One customer across platforms.

How an incoming order finds its customer (`match_customer`):

1. **Clear phone** — normalized with phonenumbers (region CN, `orders.services.normalize_phone`;
   a virtual number keeps its extension, so `;ext=` numbers are different people). The phone
   is unique in the database, so the same phone on Taobao and on Pinduoduo is one customer
   (`orders.services.customer_for`, race-safe).
2. **Stable platform identities** when the phone is masked or encrypted — the platform's
   buyer id (Taobao buyer_open_uid / nick, PDD open_address_id, Shopify customer id …) and
   Taobao's OAID, stored as `CustomerIdentity` rows (unique per platform, kind, value).
3. **Masked phone + address** — a masked mobile (`138****0000`, `1380000****`) whose visible
   digits fit exactly one known customer's phone, with an address similarity ≥ 85
   (rapidfuzz over province + city + district + address) to that customer's latest order.

When a clear phone arrives for a buyer known so far only by an identity, the phone-less
customer takes the phone. When both already exist as two rows — the phone's customer and an
identity's phone-less customer — and their addresses are ≥ 85 similar, the two are merged:
orders and identities move to the phone's customer, recorded as a `CustomerMerge` that a
supervisor can undo (`customer_merge_undo`). Customers are tagged `platform:<code>` for every
platform they buy on, and `multi_platform` once there are several.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rapidfuzz import fuzz

from config.actors import Actor
from config.errors import InvalidInput, NotPermitted, TransitionNotAllowed
from orders.models import Customer, CustomerIdentity, CustomerMerge, Order
from orders.platforms.base import NormalizedOrder

SIMILARITY_THRESHOLD = 85.0
UNDO_PERMISSION = "orders.undo_customermerge"
MULTI_PLATFORM = "multi_platform"
PLATFORM_TAG = "platform:"
MERGED_TAG = "merged_into:"

_NOISE = re.compile(r"[\s,，.。;；:：#\-—_/\\()（）\[\]【】]+")
_MASKED_PHONE = re.compile(r"^\+?(?:86)?(?P<head>\d*)\*+(?P<tail>\d*)$")


# --- addresses ----------------------------------------------------------------------------
def address_text(province: str = "", city: str = "", district: str = "", address: str = "") -> str:
    """province + city + district + address, NFKC-folded (full-width digits), without spaces
    and punctuation, for comparison."""
    text = unicodedata.normalize("NFKC", f"{province}{city}{district}{address}")
    return _NOISE.sub("", text).lower()


def address_similarity(a: str, b: str) -> float:
    """0–100 (rapidfuzz ratio of the folded texts); 0 when either is empty."""
    if not a or not b:
        return 0.0
    return float(fuzz.ratio(a, b))


def _order_address(data: NormalizedOrder) -> str:
    return address_text(data.province, data.city, data.district, data.address)


def _latest_address(customer: Customer) -> str:
    row = (Order.objects.filter(customer=customer).order_by("-placed_at", "-id")
           .values("province", "city", "district", "address").first())
    return address_text(**row) if row else ""


# --- identities ---------------------------------------------------------------------------
def identity_keys(platform: str, data: NormalizedOrder) -> list[tuple[str, str, str]]:
    """(platform, kind, value) of the order's stable buyer identities."""
    keys = []
    if data.platform_buyer_id:
        keys.append((platform, CustomerIdentity.Kind.BUYER_ID.value, data.platform_buyer_id[:200]))
    if data.oaid:
        keys.append((platform, CustomerIdentity.Kind.OAID.value, data.oaid[:200]))
    return keys


def _known(keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], CustomerIdentity]:
    """The stored identities among `keys` (one query), in the order of `keys`."""
    if not keys:
        return {}
    query = Q()
    for platform, kind, value in keys:
        query |= Q(platform=platform, kind=kind, value=value)
    rows = {(r.platform, r.kind, r.value): r for r in CustomerIdentity.objects.filter(query).select_related("customer")}
    return {key: rows[key] for key in keys if key in rows}


def _attach(customer: Customer, keys, known) -> None:
    """Record the identities not yet known as the customer's (race-safe: the unique
    constraint decides; a concurrent first insert simply wins)."""
    for key in keys:
        if key in known:
            continue
        platform, kind, value = key
        try:
            with transaction.atomic():
                CustomerIdentity.objects.create(customer=customer, platform=platform, kind=kind, value=value)
        except IntegrityError:
            pass


# --- masked phones ------------------------------------------------------------------------
def masked_phones(data: NormalizedOrder) -> list[tuple[str, str]]:
    """(visible head digits, visible tail digits) of masked mobile numbers the platform sent
    (kept in `encrypted`, or `*_phone_mask` / `*_mobile` keys of the payload)."""
    values = [v for v in (data.encrypted or {}).values() if isinstance(v, str)]
    raw = data.raw if isinstance(data.raw, dict) else {}
    for container in [raw, *[v for v in raw.values() if isinstance(v, dict)]]:
        for key, value in container.items():
            if isinstance(value, str) and ("phone" in key or "mobile" in key):
                values.append(value)
    found = []
    for value in values:
        match = _MASKED_PHONE.match(value.replace(" ", "").replace("-", ""))
        if not match or len(value.replace(" ", "").replace("-", "")) != 11:
            continue
        head, tail = match["head"], match["tail"]
        if head.startswith("1") and len(head) + len(tail) >= 6 and (head, tail) not in found:
            found.append((head, tail))
    return found


def _by_masked_phone(data: NormalizedOrder) -> Customer | None:
    """The one customer whose phone fits a masked phone of the order and whose latest address
    is ≥ 85 similar; None when none or several fit."""
    here = _order_address(data)
    if not here:
        return None
    fits: dict[int, Customer] = {}
    for head, tail in masked_phones(data):
        hidden = 11 - len(head) - len(tail)
        candidates = Customer.objects.filter(phone__startswith=f"+86{head}", phone__endswith=tail or "")[:50]
        for customer in candidates:
            national = customer.phone[3:]
            if len(national) == 11 and national.isdigit() and hidden > 0 \
                    and address_similarity(here, _latest_address(customer)) >= SIMILARITY_THRESHOLD:
                fits[customer.pk] = customer
    return next(iter(fits.values())) if len(fits) == 1 else None


# --- tags ---------------------------------------------------------------------------------
def _with_platform(tags: list, platform: str) -> list:
    tags = list(tags or [])
    tag = f"{PLATFORM_TAG}{platform}"
    if tag not in tags:
        tags.append(tag)
    if sum(1 for t in tags if isinstance(t, str) and t.startswith(PLATFORM_TAG)) > 1 and MULTI_PLATFORM not in tags:
        tags.append(MULTI_PLATFORM)
    return tags


def _tag(customer: Customer, platform: str) -> None:
    tags = _with_platform(customer.tags, platform)
    if tags != customer.tags:
        customer.tags = tags
        Customer.objects.filter(pk=customer.pk).update(tags=tags)


def retag(customer: Customer) -> None:
    """Recompute a customer's platform tags from their orders and identities (other tags kept)."""
    platforms = set(Order.objects.filter(customer=customer).values_list("shop__platform", flat=True))
    platforms |= set(CustomerIdentity.objects.filter(customer=customer).values_list("platform", flat=True))
    tags = [t for t in (customer.tags or []) if not (isinstance(t, str) and (t.startswith(PLATFORM_TAG) or t == MULTI_PLATFORM))]
    tags += [f"{PLATFORM_TAG}{p}" for p in sorted(platforms)]
    if len(platforms) > 1:
        tags.append(MULTI_PLATFORM)
    customer.tags = tags
    Customer.objects.filter(pk=customer.pk).update(tags=tags)


# --- matching -----------------------------------------------------------------------------
@dataclass
class Match:
    customer: Customer | None
    how: str  # phone | identity | masked_phone | new | none
    merge: CustomerMerge | None = None


def match_customer(*, platform: str, data: NormalizedOrder, actor: Actor) -> Match:
    """The customer of an incoming order (see the module docstring). Call inside the order's
    transaction; creates the customer and identities it needs."""
    from orders.services import customer_for, normalize_phone

    region = data.country or "CN"
    phone = normalize_phone(data.buyer_phone or data.receiver_phone, region)
    name = (data.buyer_name or data.receiver_name or "")[:100]
    keys = identity_keys(platform, data)
    known = _known(keys)
    by_identity = next((row.customer for row in known.values()), None)
    merge = None
    if phone:
        customer = Customer.objects.filter(phone=phone).first()
        if customer is None and by_identity is not None and not by_identity.phone:
            # The buyer known by an identity only now shows a clear phone: the same row takes it.
            try:
                with transaction.atomic():
                    Customer.objects.filter(pk=by_identity.pk, phone="").update(phone=phone)
                by_identity.refresh_from_db(fields=["phone"])
                if by_identity.phone == phone:
                    customer = by_identity
            except IntegrityError:  # a concurrent order created the phone's customer first
                pass
        if customer is None:
            customer = customer_for(phone=phone, name=name, region=region)
        how = "phone"
        if by_identity is not None and by_identity.pk != customer.pk and not by_identity.phone:
            score = address_similarity(_order_address(data), _latest_address(by_identity))
            if score >= SIMILARITY_THRESHOLD:
                # The matcher's decision: recorded under the actor when they may merge, else the system's.
                merger = actor if actor.can(UNDO_PERMISSION) else Actor.system("customer_match", actor.source)
                merge = customer_merge(kept=customer, merged=by_identity, actor=merger,
                                       reason=f"平台标识与手机号指向同一买家,地址相似度 {score:.0f}")
                known = _known(keys)
    elif by_identity is not None:
        customer, how = by_identity, "identity"
    else:
        customer, how = _by_masked_phone(data), "masked_phone"
        if customer is None:
            if not keys:
                return Match(None, "none")
            customer, how = _new_with_identity(name, keys), "new"
            known = _known(keys)
    _attach(customer, keys, known)
    _tag(customer, platform)
    return Match(customer, how, merge)


def _new_with_identity(name: str, keys) -> Customer:
    """A phone-less customer known by the first identity. Race-safe: when a concurrent first
    order of the same buyer inserted that identity first, its customer is the one."""
    customer = Customer.objects.create(phone="", name=name)
    platform, kind, value = keys[0]
    try:
        with transaction.atomic():
            CustomerIdentity.objects.create(customer=customer, platform=platform, kind=kind, value=value)
    except IntegrityError:
        winner = CustomerIdentity.objects.select_related("customer").get(platform=platform, kind=kind, value=value).customer
        customer.delete()
        return winner
    return customer


# --- merge and undo -----------------------------------------------------------------------
def _lock_customers(*customers: Customer) -> dict[int, Customer]:
    ids = sorted({c.pk for c in customers})
    return {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


@transaction.atomic
def customer_merge(*, kept: Customer, merged: Customer, actor: Actor, reason: str) -> CustomerMerge:
    """Move `merged`'s orders and identities to `kept` and record it (undoable). The system
    merges while matching; a person needs the undo permission (supervisors) to merge by hand."""
    if not actor.can(UNDO_PERMISSION):
        raise NotPermitted(f"{actor.label} 没有权限合并客户")
    if kept.pk == merged.pk:
        raise InvalidInput("不能把客户合并到自己")
    locked = _lock_customers(kept, merged)
    kept, merged = locked[kept.pk], locked[merged.pk]
    order_ids = sorted(Order.objects.filter(customer=merged).values_list("pk", flat=True))
    identity_ids = sorted(CustomerIdentity.objects.filter(customer=merged).values_list("pk", flat=True))
    Order.objects.filter(pk__in=order_ids).update(customer=kept)
    CustomerIdentity.objects.filter(pk__in=identity_ids).update(customer=kept)
    before = list(kept.tags or [])
    extra = [t for t in (merged.tags or []) if t not in before and not (isinstance(t, str) and t.startswith(MERGED_TAG))]
    kept.tags = before + extra
    Customer.objects.filter(pk=kept.pk).update(tags=kept.tags)
    retag(kept)
    merged.tags = [*(merged.tags or []), f"{MERGED_TAG}{kept.pk}"]
    Customer.objects.filter(pk=merged.pk).update(tags=merged.tags)
    return CustomerMerge.objects.create(
        kept=kept, merged=merged, reason=reason[:255], actor=actor.user, actor_label=actor.label, source=actor.source,
        moved={"orders": order_ids, "identities": identity_ids, "tags_before": before, "merged_tags": extra},
    )


@transaction.atomic
def customer_merge_undo(*, merge: CustomerMerge, actor: Actor) -> CustomerMerge:
    """Split a merge again: the orders and identities it moved (still on the kept customer)
    go back to the merged one, tags as before. Supervisors only (`orders.undo_customermerge`)."""
    if not actor.can(UNDO_PERMISSION):
        raise NotPermitted(f"{actor.label} 没有权限撤销客户合并")
    merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise TransitionNotAllowed("该客户合并已撤销")
    locked = _lock_customers(merge.kept, merge.merged)
    kept, merged = locked[merge.kept_id], locked[merge.merged_id]
    moved = merge.moved or {}
    Order.objects.filter(pk__in=moved.get("orders", []), customer=kept).update(customer=merged)
    CustomerIdentity.objects.filter(pk__in=moved.get("identities", []), customer=kept).update(customer=merged)
    added = set(moved.get("merged_tags", []))
    kept.tags = [t for t in (kept.tags or []) if t not in added or t in moved.get("tags_before", [])]
    Customer.objects.filter(pk=kept.pk).update(tags=kept.tags)
    merged.tags = [t for t in (merged.tags or []) if t != f"{MERGED_TAG}{kept.pk}"]
    Customer.objects.filter(pk=merged.pk).update(tags=merged.tags)
    retag(kept)
    retag(merged)
    merge.undone_at = timezone.now()
    merge.undone_by = actor.user
    merge.undone_by_label = actor.label
    merge.save(update_fields=["undone_at", "undone_by", "undone_by_label"])
    return merge


# --- many orders at once (orders.ingest's bulk path) -------------------------------------
@lru_cache(maxsize=16384)
def _normalized_phone(raw: str, region: str) -> str:
    from orders.services import normalize_phone

    return normalize_phone(raw, region)


def _phone_of(data: NormalizedOrder) -> str:
    """`match_customer`'s phone of the order (cached: a batch asks several times, buyers repeat)."""
    return _normalized_phone(data.buyer_phone or data.receiver_phone or "", data.country or "CN")


def _known_many(platform: str, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """The stored identities among `keys` (all of `platform`), each with its customer's
    phone ('' for a phone-less customer), in one query."""
    if not keys:
        return {}
    rows = CustomerIdentity.objects.filter(platform=platform, value__in={v for _p, _k, v in keys}) \
        .values_list("platform", "kind", "value", "customer__phone")
    return {(p, k, v): phone for p, k, v, phone in rows if (p, k, v) in keys}


def bulk_matchable(*, platform: str, orders: list[NormalizedOrder]) -> list[bool]:
    """For each order, whether `match_customers_bulk` decides its customer exactly as
    `match_customer` would, whatever the order of the batch: a clear phone, and none of its
    identities known as a phone-less customer's (that one would take the phone or be merged);
    or no phone, no identity and no masked phone at all (no customer). Orders sharing a phone
    or an identity with one that is not matchable are not either: the per-order path
    handles them all, in order."""
    phones = [_phone_of(d) for d in orders]
    keys = [identity_keys(platform, d) for d in orders]
    known = _known_many(platform, {k for ks in keys for k in ks})
    ok = []
    for data, phone, ks in zip(orders, phones, keys):
        if phone:
            ok.append(all(known.get(k, "x") != "" for k in ks))
        else:
            ok.append(not ks and not masked_phones(data))
    changed = True
    while changed:
        changed = False
        bad_phones = {p for p, fine in zip(phones, ok) if p and not fine}
        bad_keys = {k for ks, fine in zip(keys, ok) if not fine for k in ks}
        for i, (phone, ks) in enumerate(zip(phones, keys)):
            if ok[i] and ((phone and phone in bad_phones) or any(k in bad_keys for k in ks)):
                ok[i], changed = False, True
    return ok


def match_customers_bulk(*, platform: str, orders: list[NormalizedOrder]) -> list[Customer | None]:
    """The customers of orders `bulk_matchable` accepted, in a few queries: the customer of
    each phone (created on first sight, named after its first order; race-safe: the phone
    is unique, so `bulk_create(ignore_conflicts=True)` and a re-read give every concurrent
    batch the same row), their new identities (the first order naming one wins, a concurrent
    insert too) and their platform tags. Call inside the batch's transaction."""
    phones = [_phone_of(d) for d in orders]
    names: dict[str, str] = {}
    for data, phone in zip(orders, phones):
        if phone and phone not in names:
            names[phone] = (data.buyer_name or data.receiver_name or "")[:100]
    by_phone = {c.phone: c for c in Customer.objects.filter(phone__in=list(names))}
    missing = sorted(p for p in names if p not in by_phone)  # sorted: concurrent batches insert in one order
    if missing:
        Customer.objects.bulk_create([Customer(phone=p, name=names[p]) for p in missing], ignore_conflicts=True)
        by_phone.update({c.phone: c for c in Customer.objects.filter(phone__in=missing)})
    result = [by_phone[p] if p else None for p in phones]

    identities: dict[tuple[str, str, str], Customer] = {}
    for data, customer in zip(orders, result):
        if customer is not None:
            for key in identity_keys(platform, data):
                identities.setdefault(key, customer)
    # Known ones stay with their customer (`_attach` skips them); ignore_conflicts does too.
    if identities:
        CustomerIdentity.objects.bulk_create(
            [CustomerIdentity(customer=c, platform=p, kind=k, value=v) for (p, k, v), c in sorted(identities.items())],
            ignore_conflicts=True)

    # One UPDATE per distinct new tag list (usually one: bulk_update's CASE per row is slow).
    retagged: dict[str, tuple[list, list[int]]] = {}
    for customer in {c.pk: c for c in result if c is not None}.values():
        tags = _with_platform(customer.tags, platform)
        if tags != customer.tags:
            customer.tags = tags
            retagged.setdefault(json.dumps(tags, ensure_ascii=False), (tags, []))[1].append(customer.pk)
    for tags, ids in retagged.values():
        Customer.objects.filter(pk__in=sorted(ids)).update(tags=tags)
    return result
