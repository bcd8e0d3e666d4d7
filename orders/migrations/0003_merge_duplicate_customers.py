"""Merge customers that share a phone, so that `uniq_customer_phone` can be added.

Before 0003 nothing stopped two rows for one phone (two first orders at once, or a phone
typed by hand in another format). This runs before the migration that adds the constraint
(0003_event_kinds_order_numbers_unique_phone depends on it) and in its own transaction, so
the repointed orders are committed before the table is altered.

Per group of customers with the same normalized phone: the oldest (created first, then
lowest id) is kept, every foreign key to the others is pointed at it, their tags are
added to its tags, its empty name is filled from them, and they are deleted. The key keeps
a virtual number's extension ('+8613800138000;ext=1234'), so a buyer behind a platform
virtual number is never merged with the owner of the base number, nor with another
extension. Phones that do not normalize are compared as stored (after trimming).

The normalization is frozen here on purpose: a migration must not change its meaning when
`orders.services.normalize_phone` changes later. Reversing does nothing (the merged rows
are gone; the orders stay with the kept customer).
"""

import re

import phonenumbers
from django.db import migrations

_EXTENSION = re.compile(r"^(?P<base>.+?)\s*(?:;ext=|-|#|转|ext\.?|x)\s*(?P<ext>\d{1,6})$", re.IGNORECASE)


def normalized(raw: str) -> str:
    """E.164, with ';ext=N' for a virtual number's extension; the trimmed input if it is no valid number."""
    raw = (raw or "").strip()
    if not raw or "*" in raw:
        return raw
    candidates = [(raw, "")]
    match = _EXTENSION.match(raw)
    if match:
        candidates.insert(0, (match["base"], match["ext"]))
    for text, ext in candidates:
        try:
            number = phonenumbers.parse(text, "CN")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            ext = ext or (number.extension or "")
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return f"{e164};ext={ext}" if ext else e164
    return raw


def _groups(Customer) -> list[list]:
    """Customers sharing a normalized phone, oldest first; only groups of two or more."""
    by_phone: dict[str, list] = {}
    for customer in Customer.objects.exclude(phone="").order_by("created_at", "id"):
        key = normalized(customer.phone)
        if key:
            by_phone.setdefault(key, []).append(customer)
    return [group for group in by_phone.values() if len(group) > 1]


def _repoint(Customer, keep, duplicate_ids: list[int]) -> None:
    """Every foreign key to a duplicate now points at `keep`."""
    for relation in Customer._meta.related_objects:  # reverse side: a ForeignKey is one_to_many here
        if relation.many_to_many or relation.one_to_one:  # pragma: no cover - no such relation today
            raise RuntimeError(f"merge_duplicate_customers: {relation} cannot simply be repointed")
        name = relation.field.name
        relation.related_model._base_manager.filter(**{f"{name}__in": duplicate_ids}).update(**{name: keep})


def _absorb(keep, duplicates: list, key: str, max_length: int) -> None:
    for duplicate in duplicates:
        keep.name = keep.name or duplicate.name
        keep.tags = list(keep.tags or []) + [t for t in (duplicate.tags or []) if t not in (keep.tags or [])]
    if key != keep.phone and len(key) <= max_length:
        keep.phone = key  # stored as E.164, so the service's lookup by normalized phone finds it
    keep.save(update_fields=["name", "tags", "phone"])


def merge_duplicate_customers(apps, schema_editor):
    Customer = apps.get_model("orders", "Customer")
    max_length = Customer._meta.get_field("phone").max_length
    for keep, *duplicates in _groups(Customer):
        ids = [d.pk for d in duplicates]
        _repoint(Customer, keep, ids)
        Customer.objects.filter(pk__in=ids).delete()
        _absorb(keep, duplicates, normalized(keep.phone), max_length)


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0002_event_status_choices"),
    ]

    operations = [
        migrations.RunPython(merge_duplicate_customers, migrations.RunPython.noop, elidable=False),
    ]
