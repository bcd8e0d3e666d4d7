"""Personal data: who may see it, and which lookups would read it.

A model names its personal-data fields in a `PII_FIELDS` class attribute (orders.Order,
orders.Customer). Any app's admin or API asks here, so inventory (or aftersales, finance)
can guard its own lookups through an order without importing the orders app.
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist

from config.actors import Actor

VIEW_PII = "orders.view_pii"


def can_view_pii(actor: Actor) -> bool:
    return actor.can(VIEW_PII)


def pii_fields(model: type) -> frozenset[str]:
    return frozenset(getattr(model, "PII_FIELDS", ()))


def lookup_touches_pii(model: type, lookup: str) -> bool:
    """Whether a Django lookup path (`customer__phone__startswith`, `raw__buyer__icontains`,
    `order_line__order__receiver_phone`…) reads a personal-data field anywhere along its way."""
    for part in lookup.split("__"):
        if part == "pk":
            return False
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a transform or a lookup: the path ended on a non-PII field
        if field.name in pii_fields(model):
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False
