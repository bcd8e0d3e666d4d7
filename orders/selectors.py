"""Order read side: querysets for the admin, the API and the portal.

Every queryset a person reads goes through the actor's scope (`Actor.scope`, set by a
`StaffProfile`): an object outside it is simply not there, so it answers 404.

The scope rule for orders:
- a shop-scoped person sees the orders of their shops;
- a warehouse-scoped person sees the orders that have (or had) a reservation in one of
  their warehouses, plus the orders still waiting for a warehouse (paid or on hold with no
  active reservation anywhere), which they may need to allocate;
- both limits together: both must hold.
Customers are visible through an order in scope; timeline events with their order.
"""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet, Subquery

from config.actors import Actor
from config.pii import can_view_pii, lookup_touches_pii  # noqa: F401 - re-exported for the orders app
from inventory.selectors import warehouse_list  # noqa: F401 - re-exported
from config.errors import NotFound
from inventory.models import Reservation, Warehouse
from orders.masking import mask_address, mask_name, mask_phone
from orders.models import Customer, Order, OrderEvent, OrderLine, OrderStatus, Shop

# --- scope ----------------------------------------------------------------------------------
AWAITING_WAREHOUSE = (OrderStatus.PAID, OrderStatus.ON_HOLD)


def scope_orders(queryset: QuerySet[Order], *, actor: Actor) -> QuerySet[Order]:
    """`queryset` limited to the orders the actor may see (the rule in the module docstring)."""
    scope = actor.scope
    if scope.shop_ids is not None:
        queryset = queryset.filter(shop_id__in=scope.shop_ids)
    if scope.warehouse_ids is not None:
        reserved_there = Reservation.objects.filter(stock_level__warehouse_id__in=scope.warehouse_ids)
        reserved_anywhere = Reservation.objects.filter(status=Reservation.Status.ACTIVE)
        queryset = queryset.filter(
            Q(pk__in=reserved_there.values("order_line__order_id"))
            | (Q(status__in=AWAITING_WAREHOUSE) & ~Q(pk__in=reserved_anywhere.values("order_line__order_id")))
        )
    return queryset


def order_in_scope(*, order: Order, actor: Actor) -> bool:
    if actor.scope.unrestricted:
        return True
    return scope_orders(Order.objects.filter(pk=order.pk), actor=actor).exists()


def ensure_order_in_scope(*, order: Order, actor: Actor) -> None:
    """For services that act on an order a person named: outside their scope it does not exist."""
    if not order_in_scope(order=order, actor=actor):
        raise NotFound("订单不存在")


def shop_list(*, actor: Actor) -> QuerySet[Shop]:
    qs = Shop.objects.all()
    if actor.scope.shop_ids is not None:
        qs = qs.filter(pk__in=actor.scope.shop_ids)
    return qs


def customer_list(*, actor: Actor) -> QuerySet[Customer]:
    """Customers of the orders in scope (everyone for an unrestricted actor)."""
    qs = Customer.objects.all()
    if not actor.scope.unrestricted:
        qs = qs.filter(pk__in=scope_orders(Order.objects.all(), actor=actor).values("customer_id"))
    return qs


def order_event_list(*, actor: Actor) -> QuerySet[OrderEvent]:
    qs = OrderEvent.objects.all()
    if not actor.scope.unrestricted:
        qs = qs.filter(order_id__in=scope_orders(Order.objects.all(), actor=actor).values("pk"))
    return qs


# --- orders ---------------------------------------------------------------------------------
def order_list(*, actor: Actor, status: str | None = None, shop: str | None = None, phone: str | None = None,
               platform_order_id: str | None = None, created_after=None, created_before=None) -> QuerySet[Order]:
    """Orders in the actor's scope, newest first. Filtering by `phone` is for callers that
    checked `can_view_pii` (the API refuses it otherwise)."""
    qs = scope_orders(Order.objects.select_related("shop", "customer"), actor=actor)
    if status:
        qs = qs.filter(status=status)
    if shop:
        qs = qs.filter(shop__code=shop)
    if platform_order_id:
        qs = qs.filter(platform_order_id=platform_order_id)
    if phone:
        qs = qs.filter(order_phone_q(phone))
    if created_after:
        qs = qs.filter(placed_at__gte=created_after)
    if created_before:
        qs = qs.filter(placed_at__lt=created_before)
    return qs.order_by("-placed_at", "-id")


def order_phone_q(phone: str) -> Q:
    """Orders whose receiver or customer has this phone, in any spelling ("13800138000",
    "138 0013 8000", "+86 138-0013-8000"): two indexed equalities on the normalized number,
    the receiver's (`Order.receiver_phone_normalized`) or the customer's (`Customer.phone`,
    unique, resolved in a scalar subquery). A term that is not a valid phone matches nothing.
    For callers that checked `can_view_pii`."""
    from orders.services import normalize_phone

    normalized = normalize_phone(phone)
    if not normalized:
        return Q(pk__in=[])
    customer = Customer.objects.filter(phone=normalized).values("pk")[:1]
    return Q(receiver_phone_normalized=normalized) | Q(customer_id=Subquery(customer))


def _with_detail(qs: QuerySet[Order]) -> QuerySet[Order]:
    return qs.select_related("shop", "customer").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("sku")),
        Prefetch("events", queryset=OrderEvent.objects.order_by("occurred_at", "id")),
    )


def order_detail_queryset(*, actor: Actor) -> QuerySet[Order]:
    return _with_detail(scope_orders(Order.objects.all(), actor=actor))


def order_after_action(*, pk: int) -> Order:
    """Re-read an order the caller has just acted on (its scope was checked before the
    action; the action itself may move it out of scope, e.g. allocated elsewhere)."""
    return _with_detail(Order.objects.all()).get(pk=pk)


# --- personal data --------------------------------------------------------------------------
# Fields that hold personal data, per model. `raw` is the platform payload: it holds all of
# it. A role that sees these masked may not search, filter, sort or export by them.
# Order fields as an export or a list would name them (order → customer too).
ORDER_PII_PATHS = frozenset({"receiver_name", "receiver_phone", "receiver_phone_normalized", "address", "raw",
                             "customer__name", "customer__phone"})
# API query parameters that would filter orders by personal data.
PII_QUERY_PARAMS = frozenset({"phone", "name", "address", "receiver_name", "receiver_phone", "receiver_address",
                              "customer_name", "customer_phone"})


def pii_fields_for(actor: Actor) -> frozenset[str]:
    """The order field paths this actor must get masked and may not search, filter, sort or
    export by (empty when the actor may see personal data). Exports: leave these columns
    out or write them through `masked`."""
    return frozenset() if can_view_pii(actor) else ORDER_PII_PATHS


def masked(value: str, kind: str, *, actor: Actor) -> str:
    """Personal data as the actor may see it."""
    if can_view_pii(actor):
        return value
    return {"phone": mask_phone, "name": mask_name, "address": mask_address}[kind](value)
