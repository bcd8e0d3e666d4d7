"""Exports in the admin: 导出 on the order list (the current filters and search, scoped and
masked for the role), the 导出记录 page (stock levels, the ledger for a period) and the
export log. Imported by one line at the end of `orders/admin.py`.

The order admin registered by `orders/admin.py` is extended, not replaced: its class is
subclassed with the export URL and re-registered, so its lists, filters and scoping are the
ones the export reads.
"""

from __future__ import annotations

from django.utils import timezone

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.template.loader import select_template
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.admin_tools import admin_actor
from config.errors import DomainError
from config.models import ExportLog
from orders import exports
from orders.models import Order

FORMATS = (("xlsx", "Excel (.xlsx)"), ("csv", "CSV"))


def _format(request) -> str:
    fmt = request.GET.get("format") or "xlsx"
    return fmt if fmt in dict(FORMATS) else "xlsx"


_BaseOrderAdmin = type(admin.site._registry[Order])


class ExportingOrderAdmin(_BaseOrderAdmin):
    change_list_template = "admin/orders/order/change_list_export.html"

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="orders_order_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        base = _BaseOrderAdmin.change_list_template or select_template([
            f"admin/{self.opts.app_label}/{self.opts.model_name}/change_list.html",
            f"admin/{self.opts.app_label}/change_list.html", "admin/change_list.html"]).template.name
        query = request.GET.copy()
        for key in ("p", "_changelist_filters"):
            query.pop(key, None)
        extra_context = {**(extra_context or {}), "base_change_list": base, "export_query": query.urlencode()}
        return super().changelist_view(request, extra_context=extra_context)

    def export_view(self, request):
        """The changelist's own filters and search (?status__exact=…&q=…), as a file."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        fmt = _format(request)
        params = request.GET.copy()
        params.pop("format", None)
        request.GET = params
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(_("筛选条件无效"))
        actor = admin_actor(request)
        try:
            table = exports.order_table(actor=actor, orders=changelist.get_queryset(request),
                                        filters=exports.order_export_filters(params))
            return exports.respond(table, actor=actor, fmt=fmt)
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("admin:orders_order_changelist"))


admin.site.unregister(Order)
admin.site.register(Order, ExportingOrderAdmin)


class LedgerPeriodForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("开始日期"))
    end = forms.DateField(label=gettext_lazy("结束日期"))
    warehouse = forms.CharField(label=gettext_lazy("仓库编码"), required=False)
    format = forms.ChoiceField(label=gettext_lazy("格式"), choices=FORMATS, required=False)


@admin.register(ExportLog)
class ExportLogAdmin(admin.ModelAdmin):
    change_list_template = "admin/core/exportlog/change_list.html"
    list_display = ("id", "kind", "actor_label", "created_at", "includes_pii", "row_count", "file_format", "filters")
    list_filter = ("kind", "includes_pii", "file_format")
    search_fields = ("actor_label",)
    ordering = ("-created_at", "-id")

    @staticmethod
    def sees_all(request) -> bool:
        return request.user.is_superuser or request.user.has_perm("core.view_exportlog")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and (
            self.sees_all(request) or request.user.has_perm("orders.view_order")
            or request.user.has_perm("inventory.view_stocklevel"))

    def has_view_permission(self, request, obj=None):
        if not self.has_module_permission(request):
            return False
        return obj is None or self.sees_all(request) or obj.user_id == request.user.pk

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if self.sees_all(request) else qs.filter(user_id=request.user.pk)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("stock/", view(self.stock_view), name="core_exportlog_stock"),
            path("ledger/", view(self.ledger_view), name="core_exportlog_ledger"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        today = timezone.localdate().isoformat()
        extra_context = {**(extra_context or {}), "ledger_form": LedgerPeriodForm(initial={"start": today, "end": today}),
                         "formats": FORMATS}
        return super().changelist_view(request, extra_context=extra_context)

    def _refused(self, request, message):
        messages.error(request, message)
        return HttpResponseRedirect(reverse("admin:core_exportlog_changelist"))

    def stock_view(self, request):
        actor = admin_actor(request)
        try:
            table = exports.stock_level_table(actor=actor, sku=request.GET.get("sku") or None,
                                              warehouse=request.GET.get("warehouse") or None,
                                              category=request.GET.get("category") or None)
            return exports.respond(table, actor=actor, fmt=_format(request))
        except DomainError as exc:
            if exc.http_status == 403:
                raise PermissionDenied(exc.message) from exc
            return self._refused(request, exc.message)

    def ledger_view(self, request):
        form = LedgerPeriodForm(request.GET)
        if not form.is_valid():
            return self._refused(request, _("请填写有效的开始和结束日期"))
        actor = admin_actor(request)
        data = form.cleaned_data
        try:
            table = exports.stock_move_table(actor=actor, start=data["start"], end=data["end"],
                                             warehouse=data.get("warehouse") or None)
            return exports.respond(table, actor=actor, fmt=_format(request))
        except DomainError as exc:
            if exc.http_status == 403:
                raise PermissionDenied(exc.message) from exc
            return self._refused(request, exc.message)
