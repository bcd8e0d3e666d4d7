"""Orders admin: lists, filters, search, and buttons/actions that call `orders.services`.

Thin on purpose: every state change goes through a service (which checks the actor's
permission, so a hand-made POST is refused exactly like a hidden button), and personal
data is masked through `orders.selectors` for staff without `orders.view_pii`.

Staff who see personal data masked can neither search, filter nor sort by it: their
search boxes cover order numbers only, a URL lookup through a personal-data field is a
400 (`PiiLookupGuardMixin`), and no sortable column orders by one. Every queryset is
limited to the person's shops / warehouses (`StaffProfile`); outside it, a page is a 404.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value
from django.db.models import BooleanField as BooleanValue
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from config.history_admin import ConfigHistoryAdmin
from django.views.decorators.http import require_POST

from config.admin_tools import (
    EstimatedCountPaginator,
    OutOfScopeIs404Mixin,
    PiiLookupGuardMixin,
    ReadOnlyAdminMixin,
    admin_actor,
)
from inventory.models import Reservation, Sku
from orders import selectors, services
from config.errors import DomainError
from orders.masking import mask_address, mask_name, mask_phone
from orders.models import Customer, Order, OrderEvent, OrderLine, OrderStatus, Shop, StaffProfile
from orders.transitions import ACTIONS, Param
from orders import admin_orderlist as orderlist

ROW_ACTIONS_FLAG = "viewer_row_actions"

PII_FLAG = "viewer_may_see_pii"
MASKERS = {"phone": mask_phone, "name": mask_name, "address": mask_address}

STATUS_COLORS = {
    OrderStatus.PENDING_PAYMENT: "#6c757d",
    OrderStatus.PAID: "#0d6efd",
    OrderStatus.ON_HOLD: "#dc3545",
    OrderStatus.ALLOCATED: "#6610f2",
    OrderStatus.PACKED: "#6f42c1",
    OrderStatus.PARTIALLY_SHIPPED: "#fd7e14",
    OrderStatus.SHIPPED: "#198754",
    OrderStatus.DELIVERED: "#20c997",
    OrderStatus.COMPLETED: "#146c43",
    OrderStatus.CANCELLED: "#495057",
    OrderStatus.RETURNED: "#b02a37",
}



def _with_pii_flag(queryset, request):
    """Annotate each row with whether this viewer may see personal data (default deny)."""
    return queryset.annotate(**{PII_FLAG: Value(selectors.can_view_pii(admin_actor(request)), output_field=BooleanValue())})


def _pii(obj, value: str, kind: str) -> str:
    """`value` unmasked only when the row was loaded for a viewer holding orders.view_pii."""
    value = value or ""
    return value if getattr(obj, PII_FLAG, False) else MASKERS[kind](value)


def status_badge(order: Order) -> str:
    color = STATUS_COLORS.get(order.status, "#6c757d")
    return format_html(
        '<span class="status-badge status-{}" style="display:inline-block;padding:1px 8px;border-radius:10px;'
        'color:#fff;background:{};white-space:nowrap">{}</span>',
        order.status, color, order.get_status_display(),
    )


# --- Shop ---------------------------------------------------------------------------------------
SECRET_FIELDS = ("app_secret", "access_token", "webhook_secret")


class ShopAdminForm(forms.ModelForm):
    """Secrets are never sent back to the browser: a blank box keeps the stored value."""

    class Meta:
        model = Shop
        fields = "__all__"
        widgets = {name: forms.PasswordInput(render_value=False) for name in SECRET_FIELDS}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name in self.fields and self.instance.pk and getattr(self.instance, name):
                self.fields[name].help_text = _("已设置;留空则保持不变")

    def _keep(self, name: str) -> str:
        value = self.cleaned_data.get(name, "")
        if not value and self.instance.pk:
            return getattr(self.instance, name)
        return value

    def clean_app_secret(self):
        return self._keep("app_secret")

    def clean_access_token(self):
        return self._keep("access_token")

    def clean_webhook_secret(self):
        return self._keep("webhook_secret")


@admin.register(Shop)
class ShopAdmin(OutOfScopeIs404Mixin, ConfigHistoryAdmin):
    history_list_display = ("secrets_changed",)  # which credentials changed, never their values
    form = ShopAdminForm
    list_display = ("code", "name", "platform", "currency", "ship_within_hours", "sync_enabled", "is_active")
    list_filter = ("platform", "sync_enabled", "is_active")
    search_fields = ("code", "name")
    readonly_fields = ("created_at",)
    fieldsets = (
        (None, {"fields": ("platform", "code", "name", "is_active")}),
        (_("履约与同步"), {"fields": ("currency", "time_zone", "ship_within_hours", "sync_enabled",
                                   "sync_interval_minutes", "api_base_url", "platform_extra", "created_at")}),
        (_("接口凭据"), {"classes": ("collapse",), "fields": ("app_key", *SECRET_FIELDS)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=selectors.shop_list(actor=admin_actor(request)).values("pk"))

    def get_fieldsets(self, request, obj=None):
        # Staff who may only look at a shop never get its credentials, not even masked.
        if obj is not None and not self.has_change_permission(request, obj):
            return self.fieldsets[:2]
        return self.fieldsets


# --- Customer -----------------------------------------------------------------------------------
@admin.register(Customer)
class CustomerAdmin(OutOfScopeIs404Mixin, PiiLookupGuardMixin, admin.ModelAdmin):
    list_display = ("id", "display_name", "display_phone", "tags", "order_count", "created_at")
    # Masked roles: no column sorts by name or phone (the masked columns have no ordering).
    masked_list_display = ("id", "masked_name", "masked_phone", "tags", "order_count", "created_at")
    search_fields = ("name", "phone", "orders__number", "orders__platform_order_id")
    masked_search_fields = ("orders__number", "orders__platform_order_id")
    list_filter = ("created_at",)
    ordering = ("-id",)

    def get_queryset(self, request):
        qs = selectors.customer_list(actor=admin_actor(request)).order_by(*self.get_ordering(request))
        return _with_pii_flag(qs, request).annotate(order_total=Count("orders"))

    def get_list_display(self, request):
        if selectors.can_view_pii(admin_actor(request)):
            return self.list_display
        return self.masked_list_display

    def get_search_fields(self, request):
        if selectors.can_view_pii(admin_actor(request)):
            return self.search_fields
        return self.masked_search_fields

    def get_search_results(self, request, queryset, search_term):
        qs, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if not selectors.can_view_pii(admin_actor(request)):
            return qs, may_have_duplicates
        phone = services.normalize_phone(search_term)
        if phone:
            qs = queryset.filter(Q(pk__in=qs.values("pk")) | Q(phone=phone))
        return qs, may_have_duplicates

    def get_fields(self, request, obj=None):
        if selectors.can_view_pii(admin_actor(request)):
            return ("name", "phone", "tags", "created_at")
        return ("display_name", "display_phone", "tags", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if selectors.can_view_pii(admin_actor(request)):
            return ("created_at",)
        return ("display_name", "display_phone", "created_at")

    def has_add_permission(self, request):
        return False  # customers are matched from channel orders, never typed in

    @admin.display(description=_("姓名"), ordering="name")
    def display_name(self, obj):
        return _pii(obj, obj.name, "name")

    @admin.display(description=_("手机号"), ordering="phone")
    def display_phone(self, obj):
        return _pii(obj, obj.phone, "phone")

    @admin.display(description=_("姓名"))
    def masked_name(self, obj):
        return _pii(obj, obj.name, "name")

    @admin.display(description=_("手机号"))
    def masked_phone(self, obj):
        return _pii(obj, obj.phone, "phone")

    @admin.display(description=_("订单数"), ordering="order_total")
    def order_count(self, obj):
        return getattr(obj, "order_total", None)


# --- Order --------------------------------------------------------------------------------------
class ReservationWarehouseFilter(admin.SimpleListFilter):
    title = _("预占仓库")
    parameter_name = "warehouse"

    def lookups(self, request, model_admin):
        return [(str(w.pk), w.name) for w in selectors.warehouse_list(actor=admin_actor(request))]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        order_ids = Reservation.objects.filter(stock_level__warehouse_id=self.value()).values("order_line__order_id")
        return queryset.filter(pk__in=order_ids)


class IndexedOrderingChangeList(ChangeList):
    """Sorting only by the columns in `sortable_by`, even from a hand-made `?o=` (a sort by
    any other column would sort every order in the list). A page that comes back short
    is the last one: an estimated count (EstimatedCountPaginator) becomes exact there."""

    def get_results(self, request):
        super().get_results(request)
        shown = len(self.result_list)
        if getattr(self.paginator, "estimated", False) and shown < self.list_per_page and (shown or self.page_num == 1):
            exact = (self.page_num - 1) * self.list_per_page + shown
            self.paginator.settle(exact)
            self.result_count = exact
            self.can_show_all = exact <= self.list_max_show_all
            self.multi_page = exact > self.list_per_page

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class ShopWithOrdersFilter(admin.RelatedFieldListFilter):
    """Shops offered as filter choices: those the person may see with at least one order
    they may see. One EXISTS per shop (an index probe on the orders' shop), not Django's
    RelatedOnlyFieldListFilter, whose DISTINCT over every order costs ~100 ms at 1M orders."""

    def field_choices(self, field, request, model_admin):
        orders = model_admin.get_queryset(request).filter(shop_id=OuterRef("pk")).order_by()
        shops = selectors.shop_list(actor=admin_actor(request)).filter(Exists(orders))
        return [(shop.pk, str(shop)) for shop in shops]


class OrderLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderLine
    fields = ("sku", "platform_sku_id", "title", "quantity", "unit_price", "discount_amount", "is_gift", "reservation_summary")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = _("商品行")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sku").prefetch_related("reservations__stock_level__warehouse")

    @admin.display(description=_("预占"))
    def reservation_summary(self, line):
        parts = [f"{r.stock_level.warehouse.name} ×{r.quantity}({r.get_status_display()})" for r in line.reservations.all()]
        return ";".join(parts) or "-"


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderEvent
    fields = ("occurred_at", "event_kind", "from_status", "to_status", "message", "actor_label", "source", "is_public")
    readonly_fields = fields
    ordering = ("occurred_at", "id")
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = _("时间线")

    @admin.display(description=_("事件"))
    def event_kind(self, event):
        return event.kind_label


class OrderAdminForm(forms.ModelForm):
    """The only thing a person edits on an order: a note appended through the service."""

    add_note = forms.CharField(
        label=_("追加卖家备注"), required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=_("追加到卖家备注并记入时间线;订单的其他字段来自渠道,不可修改。"),
    )

    class Meta:
        model = Order
        fields: list[str] = []


def _order_warehouses(order: Order, actor) -> list[tuple[str, str]]:
    warehouses = selectors.warehouse_list(actor=actor).filter(
        stock_levels__reservations__order_line__order=order,
        stock_levels__reservations__status=Reservation.Status.ACTIVE,
    ).distinct().order_by("priority", "id")
    return [("", _("全部仓库"))] + [(w.code, w.name) for w in warehouses]


def _field(param: Param, order: Order, actor) -> forms.Field:
    if param.kind == "choice":
        return forms.ChoiceField(label=param.label, choices=param.choices, initial=param.choices[0][0],
                                 required=param.required, help_text=param.help_text)
    if param.kind == "warehouse":
        return forms.ChoiceField(label=param.label, choices=_order_warehouses(order, actor), required=param.required)
    if param.kind == "any_warehouse":  # every warehouse in the person's scope (emergency override ship)
        choices = [(w.code, w.name) for w in selectors.warehouse_list(actor=actor).order_by("priority", "id")]
        return forms.ChoiceField(label=param.label, choices=choices, required=param.required, help_text=param.help_text)
    return forms.CharField(label=param.label, required=param.required, max_length=param.max_length,
                           help_text=param.help_text)


def transition_form(name: str, order: Order, prefix: str, actor) -> forms.Form | None:
    """The small form of the inputs an action takes (None when it takes none), built from
    the action table in `orders.transitions`."""
    spec = ACTIONS[name]
    if not spec.params:
        return None
    form = forms.Form(auto_id=f"id_{prefix}_%s")
    for param in spec.params:
        form.fields[param.name] = _field(param, order, actor)
    return form


ORDER_NUMBER_PREFIX = re.compile(r"OH\d{0,20}", re.IGNORECASE)  # "OH" + yymmdd + serial, or a prefix of one


def _number_prefix_q(term: str) -> Q:
    """Order numbers starting with `term` ("OH" + digits). LIKE 'OH2612%' is the definition
    (the varchar_pattern_ops index on PostgreSQL); the equivalent range ('OH2612' ≤ number
    < 'OH2613', digits and capitals only) lets the unique index serve it and its order."""
    prefix = term.upper()
    digits = prefix[2:]
    following = str(int(digits) + 1).zfill(len(digits)) if digits else ""
    upper = "OI" if not digits or len(following) > len(digits) else "OH" + following
    return Q(number__startswith=prefix, number__gte=prefix, number__lt=upper)


def tracking_number_orders(term: str) -> QuerySet | None:
    """Hook for the shipments app: the ids of orders with a parcel of this tracking number
    (an exact match on an indexed column), e.g.
    `Shipment.objects.filter(tracking_number=term).values("order_id")`. None until then."""
    return None


def order_search(queryset: QuerySet[Order], term: str, *, may_see_pii: bool) -> QuerySet[Order]:
    """The orders of `queryset` (already scoped to the viewer) that `term` names, each
    interpretation an exact or prefix match on an index:

    - an order number, whole or a prefix ("OH2612"): a range on the unique number (a term
      shaped like an order number is looked up as one only, not as a platform id or phone);
    - a platform order id: exact (indexed);
    - a phone in any spelling, only for viewers who may see personal data: the normalized
      receiver phone or the customer's phone (`selectors.order_phone_q`);
    - a SKU code: exact, the orders with a line of that SKU (the lines' SKU index);
    - a tracking number, once shipments exist (`tracking_number_orders`).

    A term may fit several (an 11-digit platform id is also a valid phone): any match counts.
    Same-table interpretations are OR'ed (a BitmapOr of index scans); those through another
    table join as `id IN (… UNION ALL …)`, never an OR with a subquery (which would scan)."""
    if ORDER_NUMBER_PREFIX.fullmatch(term):
        same_table = _number_prefix_q(term)
    else:
        same_table = Q(platform_order_id=term)
        if may_see_pii and services.normalize_phone(term):
            same_table |= selectors.order_phone_q(term)
    elsewhere = []
    sku_ids = list(Sku.objects.filter(code=term).values_list("pk", flat=True)[:1])
    if sku_ids:
        elsewhere.append(OrderLine.objects.filter(sku_id=sku_ids[0]).order_by().values("order_id"))
    tracking = tracking_number_orders(term)
    if tracking is not None:
        elsewhere.append(tracking)
    if not elsewhere:
        return queryset.filter(same_table)
    ids = Order.objects.filter(same_table).order_by().values("pk").union(*elsewhere, all=True)
    return queryset.filter(pk__in=ids)


@admin.register(Order)
class OrderAdmin(orderlist.OrderListMixin, OutOfScopeIs404Mixin, PiiLookupGuardMixin, admin.ModelAdmin):
    form = OrderAdminForm
    change_form_template = "admin/orders/order/change_form.html"
    inlines = (OrderLineInline, OrderEventInline)
    list_display = ("number", "shop", "platform", "platform_order_id", "status_display", "hold_reason",
                    "amount", "receiver_name_display", "receiver_phone_display", "placed_at",
                    "ship_by_countdown", "row_actions")
    list_select_related = ("shop", "customer")
    # Shops offered as filter choices: only those of the orders the person may see.
    list_filter = ("status", ("shop", ShopWithOrdersFilter), "shop__platform", "hold_reason", "placed_at",
                   ReservationWarehouseFilter)
    # Only columns whose order an index serves (the rest would sort the whole table).
    sortable_by = ("number", "status_display", "placed_at")
    # What the search box looks up: exact or prefix matches on indexed columns, chosen by
    # what the term looks like (`order_search`), never `icontains` (a scan of the whole
    # table at a real seller's size). These names only document it (and show the box).
    search_fields = ("number", "platform_order_id", "receiver_phone_normalized", "lines__sku__code")
    masked_search_fields = ("number", "platform_order_id", "lines__sku__code")  # no personal data
    search_help_text = _("订单号、平台订单号、手机号(任意格式)或 SKU 编码")
    masked_search_help_text = _("订单号、平台订单号或 SKU 编码")
    # No date_hierarchy: its year/month links read the distinct dates of every order in
    # the list (a full scan); the placing-time filter on the right needs no query.
    actions = ("allocate_selected", "cancel_selected", "resolve_skus_selected",
               "hold_selected", "release_selected", "print_pick_list_selected")
    change_list_template = "admin/orders/order/change_list.html"
    list_per_page = 50
    # At a real seller's size: no COUNT(*) over the whole table on every page (the count
    # of the filtered list is bounded, see EstimatedCountPaginator), no facet counts.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    fieldsets_all = (
        (_("订单"), {"fields": ("number", "shop", "platform_order_id", "status_display", "platform_status",
                               "hold_reason", "hold_note")}),
        (_("时间"), {"fields": ("placed_at", "paid_at", "promised_ship_at", "platform_updated_at", "created_at", "updated_at")}),
        (_("金额"), {"fields": ("currency", "goods_amount", "discount_amount", "shipping_fee", "paid_amount")}),
        (_("客户与收件人"), {"fields": ("customer_display", "receiver_name_display", "receiver_phone_display", "country",
                                   "province", "city", "district", "address_display", "postcode")}),
        (_("业务信息"), {"fields": ("is_presale", "source_detail", "coupon_codes", "member_level", "is_vip", "tags",
                                 "invoice_title", "invoice_tax_number")}),
        (_("备注"), {"fields": ("buyer_note", "seller_note")}),
    )

    # --- querysets, permissions ---------------------------------------------------------------
    def get_queryset(self, request):
        qs = _with_pii_flag(selectors.order_list(actor=admin_actor(request)), request)
        # The actions this viewer's permissions allow, once per query (a constant, not a
        # per-row lookup): `row_actions` keeps those the row's status allows.
        return qs.annotate(**{ROW_ACTIONS_FLAG: Value(",".join(orderlist.permitted_row_actions(request.user)))})

    def get_search_fields(self, request):
        if selectors.can_view_pii(admin_actor(request)):
            return self.search_fields
        return self.masked_search_fields

    def get_changelist(self, request, **kwargs):
        return IndexedOrderingChangeList

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        if not selectors.can_view_pii(admin_actor(request)):
            # The box's hint must not promise a phone search to a role that cannot do one.
            changelist.search_help_text = self.masked_search_help_text
        return changelist

    def has_add_permission(self, request):
        return False  # orders come from the channels

    def has_delete_permission(self, request, obj=None):
        return False  # an order is history: cancel it instead

    def has_allocate_permission(self, request):
        return request.user.has_perm("orders.allocate_order")

    def has_cancel_permission(self, request):
        return request.user.has_perm("orders.cancel_order")

    def has_resolve_skus_permission(self, request):
        return request.user.has_perm("orders.release_order")

    def has_hold_permission(self, request):
        return request.user.has_perm("orders.hold_order")

    def has_release_permission(self, request):
        return request.user.has_perm("orders.release_order")

    def has_pick_list_permission(self, request):
        return request.user.has_perm(orderlist.PICK_PERMISSION)

    # --- change form: everything read-only except a note --------------------------------------
    def get_fieldsets(self, request, obj=None):
        fieldsets = [(name, {**opts, "fields": list(opts["fields"])}) for name, opts in self.fieldsets_all]
        if obj is not None and self.has_change_permission(request, obj):
            fieldsets[-1][1]["fields"].append("add_note")
        if selectors.can_view_pii(admin_actor(request)):
            fieldsets.append((_("原始报文"), {"classes": ("collapse",), "fields": ("raw",)}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [f for _name, opts in self.get_fieldsets(request, obj) for f in opts["fields"] if f != "add_note"]

    def save_model(self, request, obj, form, change):
        # The order row itself is never saved from a form (its status is FSM-protected and
        # the rest comes from the channel); a note goes through the service.
        note = (form.cleaned_data.get("add_note") or "").strip()
        if note:
            try:
                services.order_add_note(order=obj, actor=admin_actor(request), note=note)
            except DomainError as exc:
                messages.error(request, exc.message)

    # --- columns ------------------------------------------------------------------------------
    @admin.display(description=_("平台"), ordering="shop__platform")
    def platform(self, obj):
        return obj.shop.get_platform_display()

    @admin.display(description=_("状态"), ordering="status")
    def status_display(self, obj):
        return status_badge(obj)

    @admin.display(description=_("发货时限"))
    def ship_by_countdown(self, obj):
        return orderlist.countdown_html(obj)

    @admin.display(description=_("可执行操作"))
    def row_actions(self, obj):
        return orderlist.row_actions_html(obj, getattr(obj, ROW_ACTIONS_FLAG, ""))

    @admin.display(description=_("实付金额"), ordering="paid_amount")
    def amount(self, obj):
        return f"{obj.paid_amount} {obj.currency}"

    @admin.display(description=_("收件人"))
    def receiver_name_display(self, obj):
        return _pii(obj, obj.receiver_name, "name")

    @admin.display(description=_("收件电话"))
    def receiver_phone_display(self, obj):
        return _pii(obj, obj.receiver_phone, "phone")

    @admin.display(description=_("详细地址"))
    def address_display(self, obj):
        return _pii(obj, obj.address, "address")

    @admin.display(description=_("客户"))
    def customer_display(self, obj):
        customer = obj.customer
        if customer is None:
            return "-"
        text = f"{_pii(obj, customer.name, 'name')} {_pii(obj, customer.phone, 'phone')}".strip()
        return text or f"#{customer.pk}"

    # --- search: exact or prefix lookups on indexes, by what the term looks like ------------
    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        results = order_search(queryset, term, may_see_pii=selectors.can_view_pii(admin_actor(request)))
        if ORDER_NUMBER_PREFIX.fullmatch(term) and ORDER_VAR not in request.GET:
            # Newest number first, along the number index: a prefix can match a month of
            # orders, and walking the placing-time index to find old ones reads them all.
            results = results.order_by("-number")
        return results, False

    # --- transition buttons -------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view(require_POST(self.transition_view))
        return [
            path("<path:object_id>/transition/<str:name>/", view, name="orders_order_transition"),
            path("<path:object_id>/chain-export/", self.admin_site.admin_view(self.chain_export_view),
                 name="orders_order_chain_export"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            names = services.available_transitions(order=obj, actor=admin_actor(request))
            context["transition_buttons"] = [
                {
                    "name": name,
                    "label": gettext(services.TRANSITION_LABELS[name]),
                    "url": reverse("admin:orders_order_transition", args=[obj.pk, name]),
                    "form": transition_form(name, obj, prefix=name, actor=admin_actor(request)),
                }
                for name in names
            ]
            context["status_badge"] = status_badge(obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def transition_view(self, request, object_id, name):
        """POST only. The service checks permission and state; refusals become messages."""
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404(gettext("订单不存在"))
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        accepted = services.TRANSITION_PARAMS.get(name, set())
        params = {key: request.POST.get(key, "").strip() for key in accepted if key in request.POST}
        label = services.TRANSITION_LABELS.get(name, name)
        try:
            order = services.order_transition(order=order, name=name, actor=admin_actor(request), params=params)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            if name == "allocate" and order.status == OrderStatus.ON_HOLD:
                messages.warning(request, gettext("订单 %(number)s 未能分仓,已挂起:%(note)s") % {
                    "number": order.number, "note": order.hold_note or order.get_hold_reason_display()})
            else:
                messages.success(request, gettext("订单 %(number)s 已%(label)s,当前状态:%(status)s") % {
                    "number": order.number, "label": label, "status": order.get_status_display()})
        if not self.get_queryset(request).filter(pk=order.pk).exists():
            # The action moved it out of the person's scope (e.g. allocated to another warehouse).
            return HttpResponseRedirect(reverse("admin:orders_order_changelist"))
        return HttpResponseRedirect(reverse("admin:orders_order_change", args=[order.pk]))

    # --- changelist actions: one service call per order, never a bulk update ------------------
    # (allocate, hold, cancel, release, print pick list: `orders.admin_orderlist.OrderListMixin`)
    @admin.action(description=_("按 SKU 映射重新匹配"), permissions=("resolve_skus",))
    def resolve_skus_selected(self, request, queryset):
        """After a mapping is fixed: match unmapped lines again; unblocked orders are
        released and allocated (the same service a saved mapping triggers)."""
        unblocked, still = [], []
        for order in queryset.order_by("pk"):
            try:
                result = services.order_resolve_skus(order=order, actor=admin_actor(request))
            except DomainError as exc:
                messages.error(request, f"{order.number}: {exc.message}")
                continue
            (still if result.lines.filter(sku__isnull=True).exists() else unblocked).append(result.number)
        if unblocked:
            messages.success(request, gettext("SKU 已全部匹配 %(count)d 单:%(numbers)s") % {
                "count": len(unblocked), "numbers": "、".join(unblocked)})
        if still:
            messages.warning(request, gettext("仍有未匹配的 SKU %(count)d 单:%(numbers)s") % {
                "count": len(still), "numbers": "、".join(still)})


# --- Timeline (read-only) -----------------------------------------------------------------------
@admin.register(OrderEvent)
class OrderEventAdmin(OutOfScopeIs404Mixin, PiiLookupGuardMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "order", "kind", "from_status", "to_status", "message", "actor_label", "source", "is_public")
    list_filter = ("kind", "source", "is_public", "occurred_at")
    search_fields = ("order__number", "order__platform_order_id", "message", "actor_label")
    list_select_related = ("order",)
    date_hierarchy = "occurred_at"

    def get_queryset(self, request):
        return selectors.order_event_list(actor=admin_actor(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Staff scope: on the user's own admin page ----------------------------------------------------
class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    max_num = 1
    fields = ("shops", "warehouses")
    filter_horizontal = ("shops", "warehouses")
    verbose_name = verbose_name_plural = _("数据范围(留空 = 不限)")


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(ConfigHistoryAdmin, auth_admin.UserAdmin):
    history_list_display = ("secrets_changed",)  # "password" when it changed, never the hash
    inlines = (*auth_admin.UserAdmin.inlines, StaffProfileInline)

from orders import admin_sync  # noqa: E402,F401  (sync health list, "sync now" on shops)
from orders import admin_ingest  # noqa: E402,F401 — customer merges (issue 14, ingest)
from orders import admin_stockpush  # noqa: E402,F401  stock back to channels (issue 14)

from orders import shipping_admin  # noqa: E402,F401  shipments, scans, the carrier push inbox
from orders import admin_webhooks  # noqa: E402,F401  (webhook inbox)
from orders import admin_batches  # noqa: E402,F401  pick batches, pick and packing lists (issue 15)

from orders import admin_exports  # noqa: E402,F401 - Excel exports (导出, 导出记录)
from orders import admin_overrides  # noqa: E402,F401 - emergency overrides for review (issue 17)
from orders import admin_trackingpush  # noqa: E402,F401  tracking numbers back to the platforms (issue 15)
from orders import admin_dashboard  # noqa: E402,F401 - the "in a pick batch" filter the admin home links to
from orders import admin_notifications  # noqa: E402,F401 - staff alerts to the group chat (config.notify)
