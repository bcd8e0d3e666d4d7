"""Order read side: querysets for the admin, the API and the portal."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from config.actors import Actor
from orders.masking import mask_address, mask_name, mask_phone
from orders.models import Order, OrderEvent, OrderLine


def order_list(*, status: str | None = None, shop: str | None = None, phone: str | None = None,
               platform_order_id: str | None = None, created_after=None, created_before=None) -> QuerySet[Order]:
    qs = Order.objects.select_related("shop", "customer")
    if status:
        qs = qs.filter(status=status)
    if shop:
        qs = qs.filter(shop__code=shop)
    if platform_order_id:
        qs = qs.filter(platform_order_id=platform_order_id)
    if phone:
        from orders.services import normalize_phone

        normalized = normalize_phone(phone)
        # Receiver phones are stored as the platform sent them: match the usual spellings.
        spellings = {phone.strip()}
        if normalized:
            spellings |= {normalized, normalized.removeprefix("+86")}
        qs = qs.filter(Q(customer__phone=normalized or phone.strip()) | Q(receiver_phone__in=spellings))
    if created_after:
        qs = qs.filter(placed_at__gte=created_after)
    if created_before:
        qs = qs.filter(placed_at__lt=created_before)
    return qs.order_by("-placed_at", "-id")


def order_detail_queryset() -> QuerySet[Order]:
    return Order.objects.select_related("shop", "customer").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("sku")),
        Prefetch("events", queryset=OrderEvent.objects.order_by("occurred_at", "id")),
    )


def can_view_pii(actor: Actor) -> bool:
    return actor.can("orders.view_pii")


def masked(value: str, kind: str, *, actor: Actor) -> str:
    """Personal data as the actor may see it."""
    if can_view_pii(actor):
        return value
    return {"phone": mask_phone, "name": mask_name, "address": mask_address}[kind](value)
