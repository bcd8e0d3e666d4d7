"""The order list's polish (issue 17), used by `orders.admin.OrderAdmin` through
`OrderListMixin`: a ship-by countdown column, the row's transition buttons, bulk actions
with one result message per order, the role's default filter, and the full-chain export.

- **No per-row queries.** The actions a viewer's permissions allow are computed once per
  request (`permitted_row_actions`, from the FSM permissions in `orders.transitions`) and
  annotated on the list's queryset as a constant; each row keeps those its status allows
  (the FSM transition's source states). Conditions that need a query (e.g. confirming
  lead-time stock, overrides) are left to the order's page, where the full check runs.
  Buttons link to the order page's existing transition forms (`#transition-<name>`):
  every action that takes inputs asks for them there, and the service checks again.
- **Bulk actions** call the same service per order (`services.order_transition`, each in
  its own transaction — the services are `@transaction.atomic`, the request is not), so a
  refusal of one order rolls back that order only; the admin shows one message per order
  (成功 / 拒绝:reason) and a summary. Hold and cancel first show a confirmation page that
  asks for the reason.
- **Print pick list** prints the pick list of the batch the selected orders are in, never
  a new ad-hoc batch: a warehouse picks by batch (wave), and a second list for orders
  already on a printed one would have them picked twice. Orders in no batch are refused
  with a hint to build one (拣货批次 → 立即建批次).
- **Default filter per role** on a visit with no query string (客服 → 已挂起, 仓管 →
  已分仓, 财务 → 已完成, 运营 → SKU 未映射; 主管 sees everything). Any explicit filter,
  search or sort wins; the "全部" link (`?_all=1`) shows every order.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_tools import admin_actor
from config.errors import DomainError
from config.roles import ROLES
from orders import batches, chain_export, services
from orders.models import HoldReason, Order, OrderStatus, ParcelOrder
from orders.transitions import ACTIONS, PERSON_HOLD_REASONS

PICK_PERMISSION = batches.PERMISSION
MAX_ORDER_MESSAGES = 100  # one message per order up to this many; then a count of the rest
SHOW_ALL = "_all"

# Statuses whose ship-by time still matters (not shipped, not closed).
OPEN = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.ON_HOLD, OrderStatus.ALLOCATED,
        OrderStatus.PACKED, OrderStatus.PARTIALLY_SHIPPED)

# The order list a role opens on (from the role descriptions): first match in this order.
ROLE_DEFAULT_FILTERS: tuple[tuple[str, dict[str, str] | None], ...] = (
    ("supervisor", None),  # 主管: every order
    ("warehouse", {"status__exact": OrderStatus.ALLOCATED}),  # 仓管: to pick and pack
    ("customer_service", {"status__exact": OrderStatus.ON_HOLD}),  # 客服: held orders to sort out
    ("operations", {"hold_reason__exact": HoldReason.SKU_UNMAPPED}),  # 运营: SKU mappings to fix
    ("finance", {"status__exact": OrderStatus.COMPLETED}),  # 财务: completed orders to reconcile
)


# --- columns ------------------------------------------------------------------------------
def _span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    if minutes < 60:
        return gettext("%(n)d 分钟") % {"n": max(minutes, 1)}
    hours = minutes // 60
    if hours < 48:
        return gettext("%(n)d 小时") % {"n": hours}
    return gettext("%(n)d 天") % {"n": hours // 24}


def countdown_text(order: Order, now=None) -> tuple[str, str]:
    """(css class, text): 剩余 3 小时 / 已超时 2 小时, from the promised ship-by time."""
    if order.promised_ship_at is None or order.status not in OPEN:
        return "none", "-"
    delta = order.promised_ship_at - (now or timezone.now())
    if delta.total_seconds() < 0:
        return "overdue", gettext("已超时 %(span)s") % {"span": _span(delta)}
    return ("soon" if delta < timedelta(hours=4) else "ok"), gettext("剩余 %(span)s") % {"span": _span(delta)}


def countdown_html(order: Order) -> str:
    css, text = countdown_text(order)
    return format_html('<span class="ship-by ship-by-{}">{}</span>', css, text)


def _sources(name: str) -> set[str]:
    meta = getattr(getattr(Order, name), "_django_fsm")
    return {str(s) for s in meta.transitions}


ROW_ACTION_NAMES = tuple(name for name, spec in ACTIONS.items() if spec.fsm)


def permitted_row_actions(user) -> list[str]:
    """The FSM actions the user's permissions allow (permissions are cached per request)."""
    return [name for name in ROW_ACTION_NAMES if user.has_perm(ACTIONS[name].required_permission)]


def row_actions_html(order: Order, permitted: str) -> str:
    names = [n for n in permitted.split(",") if n and (order.status in _sources(n) or "*" in _sources(n))]
    if not names:
        return "-"
    url = reverse("admin:orders_order_change", args=[order.pk])
    return format_html_join(" ", '<a class="button row-action row-action-{}" href="{}#transition-{}">{}</a>',
                            ((n, url, n, gettext(ACTIONS[n].label)) for n in names))


# --- bulk actions ---------------------------------------------------------------------------
class HoldForm(forms.Form):
    reason = forms.ChoiceField(label=_("挂起原因"), choices=[(r.value, r.label) for r in PERSON_HOLD_REASONS])
    note = forms.CharField(label=_("说明"), max_length=255, required=False)


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("取消原因"), max_length=200)


class Results:
    """One line per order, then a summary."""

    def __init__(self, request, label):
        self.request, self.label = request, str(label)
        self.done: list[str] = []
        self.refused: list[str] = []
        self.shown = 0

    def _say(self, level, text):
        if self.shown < MAX_ORDER_MESSAGES:
            messages.add_message(self.request, level, text)
        self.shown += 1

    def ok(self, order, detail=""):
        self.done.append(order.number)
        self._say(messages.SUCCESS, gettext("%(number)s:成功 — %(detail)s") % {
            "number": order.number, "detail": detail or self.label})

    def warn(self, order, detail):
        self._say(messages.WARNING, f"{order.number}:{detail}")

    def refuse(self, order, reason):
        self.refused.append(order.number)
        self._say(messages.ERROR, gettext("%(number)s:拒绝:%(reason)s") % {"number": order.number, "reason": reason})

    def summary(self, held: int = 0):
        if self.shown > MAX_ORDER_MESSAGES:
            messages.info(self.request, gettext("另有 %(count)d 单的结果未逐条列出") % {
                "count": self.shown - MAX_ORDER_MESSAGES})
        messages.info(self.request, gettext("%(label)s:共 %(total)d 单,成功 %(done)d 单,拒绝 %(refused)d 单") % {
            "label": self.label, "total": len(self.done) + len(self.refused) + held,
            "done": len(self.done), "refused": len(self.refused)})


class OrderListMixin:
    """Mixed into `orders.admin.OrderAdmin`."""

    # --- default filter per role ----------------------------------------------------------
    def role_default_filter(self, request) -> dict[str, str] | None:
        names = set(request.user.groups.values_list("name", flat=True))
        for role, params in ROLE_DEFAULT_FILTERS:
            if ROLES[role]["name"] in names:
                return params
        return None

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if SHOW_ALL in request.GET:
            query = request.GET.copy()
            query.pop(SHOW_ALL)
            request.GET = query
            request.META["QUERY_STRING"] = query.urlencode()
        elif (request.method == "GET" and not request.GET
              and getattr(settings, "ORDER_LIST_ROLE_DEFAULTS", True)):
            params = self.role_default_filter(request)
            if params:
                return HttpResponseRedirect(f"{request.path}?{urlencode(params)}")
        defaults = self.role_default_filter(request)
        if defaults and all(request.GET.get(k) == v for k, v in defaults.items()) and len(request.GET) == len(defaults):
            extra_context["role_default_active"] = True
        extra_context["show_all_url"] = f"{request.path}?{SHOW_ALL}=1"
        return super().changelist_view(request, extra_context=extra_context)

    # --- per-order runs ---------------------------------------------------------------------
    def _each(self, request, queryset, name: str, params: dict | None = None):
        results = Results(request, ACTIONS[name].label)
        held = 0
        actor = admin_actor(request)
        for order in queryset.order_by("pk"):
            try:
                result = services.order_transition(order=order, name=name, actor=actor, params=params or {})
            except DomainError as exc:
                results.refuse(order, exc.message)
                continue
            if name == "allocate" and result.status == OrderStatus.ON_HOLD:
                held += 1
                results.warn(result, gettext("库存不足已挂起:%(note)s") % {
                    "note": result.hold_note or result.get_hold_reason_display()})
            else:
                results.ok(result, gettext("当前状态:%(status)s") % {"status": result.get_status_display()})
        results.summary(held=held)

    def _with_form(self, request, queryset, form_class, name: str, title):
        """The confirmation page asking for the reason; runs when it comes back valid."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            params = {k: v for k, v in form.cleaned_data.items() if v}
            self._each(request, queryset, name, params)
            return None
        orders = list(queryset.order_by("pk").values_list("pk", "number")[:500])
        return TemplateResponse(request, "admin/orders/order/bulk_confirm.html", {
            **self.admin_site.each_context(request),
            "title": title, "opts": self.model._meta, "form": form, "action": request.POST.get("action"),
            "orders": orders, "count": queryset.count(), "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        })

    @admin.action(description=_("分仓预占"), permissions=("allocate",))
    def allocate_selected(self, request, queryset):
        self._each(request, queryset, "allocate")

    @admin.action(description=_("挂起(填写原因)"), permissions=("hold",))
    def hold_selected(self, request, queryset):
        return self._with_form(request, queryset, HoldForm, "hold", gettext("批量挂起"))

    @admin.action(description=_("取消(填写原因)"), permissions=("cancel",))
    def cancel_selected(self, request, queryset):
        return self._with_form(request, queryset, CancelForm, "cancel", gettext("批量取消"))

    @admin.action(description=_("解除挂起"), permissions=("release",))
    def release_selected(self, request, queryset):
        self._each(request, queryset, "release")

    @admin.action(description=_("打印拣货单(所在批次)"), permissions=("pick_list",))
    def print_pick_list_selected(self, request, queryset):
        actor = admin_actor(request)
        results = Results(request, gettext("打印拣货单"))
        try:
            visible = set(batches.batch_list(actor=actor).values_list("pk", flat=True))
        except DomainError as exc:
            messages.error(request, exc.message)
            return None
        members: dict[int, list] = {}
        for m in ParcelOrder.objects.filter(order__in=queryset.values("pk")).select_related("parcel__batch"):
            members.setdefault(m.order_id, []).append(m.parcel.batch)
        found: dict[int, object] = {}
        for order in queryset.order_by("pk"):
            mine = [b for b in members.get(order.pk, []) if b.pk in visible]
            if not mine:
                results.refuse(order, gettext("不在您可见的拣货批次中(请先在「拣货批次」建立批次)"))
            elif order.status in batches.OFF_THE_LISTS:
                results.refuse(order, gettext("订单状态为「%(status)s」,不在拣货单上") % {
                    "status": order.get_status_display()})
            else:
                for b in mine:
                    found[b.pk] = b
                results.ok(order, gettext("批次 %(batch)s") % {"batch": "、".join(b.number for b in mine)})
        results.summary()
        if len(found) == 1:
            return HttpResponseRedirect(reverse("admin:orders_pickbatch_pick", args=[next(iter(found))]))
        for batch in found.values():
            messages.info(request, format_html('{} <a href="{}" target="_blank">{}</a>', batch.number,
                                               reverse("admin:orders_pickbatch_pick", args=[batch.pk]),
                                               gettext("打印拣货单")))
        return None

    # --- full chain export ----------------------------------------------------------------
    def chain_export_view(self, request, object_id):
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404(gettext("订单不存在"))
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        try:
            order, data = chain_export.order_chain_workbook(order_id=order.pk, actor=admin_actor(request))
        except DomainError as exc:
            if exc.__class__.__name__ == "NotFound":
                raise Http404(exc.message) from exc
            raise PermissionDenied(exc.message) from exc
        response = HttpResponse(data, content_type=chain_export_content_type())
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="order-chain-{order.number}-{stamp}.xlsx"'
        return response


def chain_export_content_type() -> str:
    from orders.exports import XLSX_TYPE

    return XLSX_TYPE
