"""Order API serializers: output only. Nothing here writes an order; changes go through
`orders.services` (the status is an FSM field that only transitions may change).

Personal data (receiver name/phone/address, customer name/phone) is masked through
`orders.selectors.masked` unless the requesting user holds `orders.view_pii`; the actor
comes from the serializer context (`{"actor": Actor}`).
"""

from __future__ import annotations

import re

from django.utils.text import format_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.actors import Actor, Source
from orders import selectors
from orders.carriers.base import mask_phones
from orders.models import (HoldReason, Order, OrderEvent, OrderLine, OrderStatus, Shipment, ShipmentStatus,
                           TrackingEvent, TrackingState)
from orders.services import TRANSITION_SERVICES, available_transitions
from orders.transitions import ACTIONS, Param


def _actor(serializer: serializers.Serializer) -> Actor:
    """Who is looking: the context's `actor`, else the request's user acting through the API."""
    actor = serializer.context.get("actor")
    if actor is None:
        actor = Actor.of(serializer.context["request"].user, Source.API)
    return actor


class OrderLineOutputSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = OrderLine
        fields = ["sku", "platform_sku_id", "title", "quantity", "unit_price", "discount_amount", "is_gift"]
        read_only_fields = fields


class OrderEventOutputSerializer(serializers.ModelSerializer):
    """One timeline entry. `message` is the internal text for staff; `public_text` is what
    the customer reads (a fixed wording per kind plus safe data; empty for internal events)."""

    from_status = serializers.ChoiceField(choices=OrderStatus.choices, allow_blank=True, read_only=True,
                                          help_text="原状态;不改变状态的事件(如创建、确认备货)为空")
    to_status = serializers.ChoiceField(choices=OrderStatus.choices, allow_blank=True, read_only=True,
                                        help_text="新状态;不改变状态的事件为空")
    message = serializers.CharField(read_only=True, help_text="内部说明(仅员工可见)")
    public_text = serializers.CharField(read_only=True, help_text="客户看到的文字;内部事件为空")
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = OrderEvent
        fields = ["kind", "from_status", "to_status", "message", "public_text", "actor", "source", "is_public",
                  "occurred_at"]
        read_only_fields = fields


class ReceiverOutputSerializer(serializers.Serializer):
    """Where the parcel goes. Name, phone and street address are masked without view_pii."""

    name = serializers.SerializerMethodField()
    phone = serializers.SerializerMethodField()
    country = serializers.CharField(read_only=True)
    province = serializers.CharField(read_only=True)
    city = serializers.CharField(read_only=True)
    district = serializers.CharField(read_only=True)
    address = serializers.SerializerMethodField()
    postcode = serializers.CharField(read_only=True)

    def get_name(self, order: Order) -> str:
        return selectors.masked(order.receiver_name, "name", actor=_actor(self))

    def get_phone(self, order: Order) -> str:
        return selectors.masked(order.receiver_phone, "phone", actor=_actor(self))

    def get_address(self, order: Order) -> str:
        return selectors.masked(order.address, "address", actor=_actor(self))


class CustomerOutputSerializer(serializers.Serializer):
    """The customer matched across platforms (phone in E.164), masked without view_pii."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.SerializerMethodField()
    phone = serializers.SerializerMethodField()

    def get_name(self, customer) -> str:
        return selectors.masked(customer.name, "name", actor=_actor(self))

    def get_phone(self, customer) -> str:
        return selectors.masked(customer.phone, "phone", actor=_actor(self))


class OrderListOutputSerializer(serializers.ModelSerializer):
    """An order as the list shows it: everything but the timeline."""

    shop = serializers.SlugRelatedField(slug_field="code", read_only=True)
    platform = serializers.CharField(source="shop.platform", read_only=True)
    status = serializers.ChoiceField(choices=OrderStatus.choices, read_only=True)
    hold_reason = serializers.ChoiceField(choices=HoldReason.choices, allow_blank=True, read_only=True,
                                          help_text="挂起原因;未挂起时为空")
    receiver = ReceiverOutputSerializer(source="*", read_only=True)
    customer = CustomerOutputSerializer(read_only=True, allow_null=True)
    lines = OrderLineOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "number", "shop", "platform", "platform_order_id", "status", "platform_status",
            "hold_reason", "hold_note",
            "currency", "paid_amount", "goods_amount", "discount_amount", "shipping_fee",
            "buyer_note", "seller_note",
            "is_presale", "promised_ship_at", "source_detail", "coupon_codes", "member_level", "is_vip",
            "invoice_title", "invoice_tax_number", "tags",
            "placed_at", "paid_at", "platform_updated_at",
            "receiver", "customer", "lines",
        ]
        read_only_fields = fields

    def build_field(self, field_name, info, model_class, nested_depth):
        # JSON list columns render as lists of strings (and say so in the schema).
        if field_name in ("coupon_codes", "tags"):
            return serializers.ListField, {"child": serializers.CharField(), "read_only": True}
        return super().build_field(field_name, info, model_class, nested_depth)


class TrackingEventOutputSerializer(serializers.ModelSerializer):
    """One carrier scan, in the carrier's own time."""

    time = serializers.DateTimeField(source="occurred_at", read_only=True, help_text="轨迹时间(快递公司记录的时间)")
    description = serializers.SerializerMethodField(help_text="快递公司的轨迹描述(其中的手机号已脱敏)")
    state = serializers.ChoiceField(choices=TrackingState.choices, read_only=True, help_text="归一化的轨迹状态")

    class Meta:
        model = TrackingEvent
        fields = ["time", "description", "location", "state"]
        read_only_fields = fields

    def get_description(self, event: TrackingEvent) -> str:
        return mask_phones(event.description)


class ShipmentOutputSerializer(serializers.ModelSerializer):
    """One parcel: the warehouse it left, carrier, tracking number, status and its scans, oldest first."""

    warehouse = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True,
                                             help_text="发货仓编码")
    carrier = serializers.CharField(read_only=True, help_text="快递公司编码,如 SF、YTO")
    tracking_number = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=ShipmentStatus.choices, read_only=True)
    events = TrackingEventOutputSerializer(source="tracking_events", many=True, read_only=True)

    class Meta:
        model = Shipment
        fields = ["warehouse", "carrier", "tracking_number", "status", "exception_flag", "shipped_at",
                  "delivered_at", "events"]
        read_only_fields = fields


class OrderDetailOutputSerializer(OrderListOutputSerializer):
    """One order with its timeline, its shipments and the transitions the requesting user may take now."""

    events = OrderEventOutputSerializer(many=True, read_only=True)
    shipments = serializers.SerializerMethodField()
    available_transitions = serializers.SerializerMethodField()

    class Meta(OrderListOutputSerializer.Meta):
        fields = [*OrderListOutputSerializer.Meta.fields, "events", "shipments", "available_transitions"]
        read_only_fields = fields

    @extend_schema_field(ShipmentOutputSerializer(many=True))
    def get_shipments(self, order: Order) -> list[dict]:
        from django.db.models import Prefetch

        shipments = (Shipment.objects.filter(order=order).select_related("warehouse").order_by("created_at", "id")
                     .prefetch_related(Prefetch("tracking_events", queryset=TrackingEvent.objects.order_by(
                         "occurred_at", "id"))))
        return ShipmentOutputSerializer(shipments, many=True, context=self.context).data

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=list(TRANSITION_SERVICES))))
    def get_available_transitions(self, order: Order) -> list[str]:
        return available_transitions(order=order, actor=_actor(self))


def _transition_params_serializer() -> type[serializers.Serializer]:
    """The optional body of a transition, one field per input named in `orders.transitions`
    (the service validates which inputs a transition accepts, their length and choices;
    empty values are ignored). Each field says which actions take it."""
    uses: dict[str, list[tuple[str, Param]]] = {}
    for a in ACTIONS.values():
        for p in a.params:
            uses.setdefault(p.name, []).append((a.name, p))
    fields = {}
    for name, pairs in uses.items():
        groups: dict[tuple, list[str]] = {}  # actions sharing one wording read "cancel / mark_returned: …"
        for action_name, p in pairs:
            groups.setdefault((p.label, p.choices, p.help_text), []).append(action_name)
        parts = []
        for (label, choices, help_text), names in groups.items():
            extra = f"({', '.join(c[0] for c in choices)})" if choices else ""
            if any(p.kind == "warehouse" for _n, p in pairs):
                extra = "(仓库编码;拆单时按仓发货;省略则各仓一起发货)"
            parts.append(format_lazy("{}: {}{}{}", " / ".join(names), label, extra,
                                     format_lazy(";{}", help_text) if help_text else ""))
        fields[name] = serializers.CharField(
            required=False, allow_blank=True, max_length=max(p.max_length for _a, p in pairs),
            help_text=format_lazy("; ".join("{}" for _ in parts), *parts),
        )
    return type("TransitionParamsInputSerializer", (serializers.Serializer,), {
        "__doc__": "Optional inputs of a transition; which ones apply depends on the transition.",
        "__module__": __name__,
        **fields,
    })


TransitionParamsInputSerializer = _transition_params_serializer()


class OrderFilterSerializer(serializers.Serializer):
    """Query parameters of the order list; invalid values are a 400 with the reason, an
    empty one is ignored."""

    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False, allow_blank=True, help_text="订单状态")
    shop = serializers.CharField(required=False, allow_blank=True, help_text="店铺编码")
    phone = serializers.CharField(required=False, allow_blank=True, help_text="客户或收件人手机号(任意格式,如 13800138000 或 +86 138 0013 8000)")
    platform_order_id = serializers.CharField(required=False, allow_blank=True, help_text="平台订单号")
    created_after = serializers.DateTimeField(required=False, help_text="下单时间 ≥ (ISO 8601;无时区按 Asia/Shanghai)")
    created_before = serializers.DateTimeField(required=False, help_text="下单时间 < (ISO 8601;无时区按 Asia/Shanghai)")

    def to_internal_value(self, data):
        # A QueryDict → its last value per key; an empty value (`?shop=`) means no filter.
        data = {key: data[key] for key in data if str(data[key]).strip() != ""}
        for key in ("created_after", "created_before"):
            if isinstance(data.get(key), str):
                data[key] = _datetime_text(data[key])
        return super().to_internal_value(data)


def _datetime_text(value: str) -> str:
    """A bare date means the start of that day (server time zone); an unencoded "+08:00"
    arrives as " 08:00" after URL decoding, so put the plus sign back."""
    value = value.strip()
    if _DATE.fullmatch(value):
        return f"{value}T00:00:00"
    return _SPACE_OFFSET.sub(r"\1+\2", value)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACE_OFFSET = re.compile(r"([T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


