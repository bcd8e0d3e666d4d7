"""Exports in the admin: 导出 on the order list and on the shipment list (the current
filters and search, scoped and masked for the role), the 导出记录 page (stock levels, the ledger for a period) and the
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
from django.http import FileResponse, Http404, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.template.loader import select_template
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.admin_tools import OwnRecordsAdminMixin, admin_actor
from config.errors import DomainError
from config.models import ExportLog
from orders import exports
from orders.models import Order, Shipment

FORMATS = (("xlsx", "Excel (.xlsx)"), ("csv", "CSV"))


def _format(request) -> str:
    fmt = request.GET.get("format") or "xlsx"
    return fmt if fmt in dict(FORMATS) else "xlsx"


class ChangelistExportMixin:
    """导出 on a changelist: `export/` writes exactly the list's filters and search (?status__exact=…
    &q=…), scoped and masked by `build_table(actor, queryset, filters)` in `orders.exports`."""

    export_url_name = ""  # e.g. "orders_order_export"
    base_list_template = None  # the change-list template the export template extends

    @staticmethod
    def build_table(*, actor, queryset, filters) -> exports.Table:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_urls(self):
        return [path("export/", self.admin_site.admin_view(self.export_view), name=self.export_url_name),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        query = request.GET.copy()
        for key in ("p", "_changelist_filters"):
            query.pop(key, None)
        base = self.base_list_template or select_template([
            f"admin/{self.opts.app_label}/{self.opts.model_name}/change_list.html",
            f"admin/{self.opts.app_label}/change_list.html", "admin/change_list.html"]).template.name
        extra_context = {**(extra_context or {}), "base_change_list": base, "export_query": query.urlencode()}
        return super().changelist_view(request, extra_context=extra_context)

    def export_view(self, request):
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
            table = self.build_table(actor=actor, queryset=changelist.get_queryset(request),
                                     filters=exports.order_export_filters(params))
            return exports.respond(table, actor=actor, fmt=fmt, params=dict(params.items()))
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))


def table_from_changelist(model, *, user, params: dict) -> exports.Table:
    """For the export task: the same changelist (filters, search, scope) as `user` saw it."""
    from django.test import RequestFactory

    model_admin = admin.site._registry[model]
    request = RequestFactory().get(reverse(f"admin:orders_{model._meta.model_name}_changelist"), params)
    request.user = user
    changelist = model_admin.get_changelist_instance(request)
    return model_admin.build_table(actor=admin_actor(request), queryset=changelist.get_queryset(request),
                                   filters=exports.order_export_filters(request.GET))


_BaseOrderAdmin = type(admin.site._registry[Order])


class ExportingOrderAdmin(ChangelistExportMixin, _BaseOrderAdmin):
    change_list_template = "admin/orders/order/change_list_export.html"
    export_url_name = "orders_order_export"
    base_list_template = _BaseOrderAdmin.change_list_template

    @staticmethod
    def build_table(*, actor, queryset, filters):
        return exports.order_table(actor=actor, orders=queryset, filters=filters)


admin.site.unregister(Order)
admin.site.register(Order, ExportingOrderAdmin)

_BaseShipmentAdmin = type(admin.site._registry[Shipment])


class ExportingShipmentAdmin(ChangelistExportMixin, _BaseShipmentAdmin):
    """The shipment list with 导出, like the order list; a person limited to some warehouses
    lists (and exports) only the parcels leaving those."""

    change_list_template = "admin/orders/shipment/change_list_export.html"
    export_url_name = "orders_shipment_export"

    def get_queryset(self, request):
        return exports.scope_shipments(super().get_queryset(request), actor=admin_actor(request))

    @staticmethod
    def build_table(*, actor, queryset, filters):
        return exports.shipment_table(actor=actor, shipments=queryset, filters=filters)


admin.site.unregister(Shipment)
admin.site.register(Shipment, ExportingShipmentAdmin)


class LedgerPeriodForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("开始日期"))
    end = forms.DateField(label=gettext_lazy("结束日期"))
    warehouse = forms.CharField(label=gettext_lazy("仓库编码"), required=False)
    format = forms.ChoiceField(label=gettext_lazy("格式"), choices=FORMATS, required=False)


@admin.register(ExportLog)
class ExportLogAdmin(OwnRecordsAdminMixin, admin.ModelAdmin):
    change_list_template = "admin/core/exportlog/change_list.html"
    list_display = ("id", "kind", "status_link", "actor_label", "created_at", "includes_pii", "row_count", "file_format",
                    "filters")
    list_filter = ("kind", "includes_pii", "file_format", "status")
    search_fields = ("actor_label",)
    ordering = ("-created_at", "-id")

    @staticmethod
    def sees_all(request) -> bool:
        return request.user.is_superuser or request.user.has_perm("core.view_exportlog")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and (
            self.sees_all(request) or request.user.has_perm("orders.view_order")
            or request.user.has_perm("inventory.view_stocklevel"))

    @admin.display(description=gettext_lazy("状态"), ordering="status")
    def status_link(self, log):
        if log.user_id != getattr(self, "_viewer", None):  # a task's file is only for who asked for it
            return log.get_status_display()
        return format_html('<a href="{}">{}</a>', reverse("admin:core_exportlog_status", args=[log.pk]), log.get_status_display())

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("stock/", view(self.stock_view), name="core_exportlog_stock"),
            path("ledger/", view(self.ledger_view), name="core_exportlog_ledger"),
            path("<int:pk>/status/", view(self.status_view), name="core_exportlog_status"),
            path("<int:pk>/download/", view(self.download_view), name="core_exportlog_download"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        self._viewer = request.user.pk
        today = timezone.localdate().isoformat()
        extra_context = {**(extra_context or {}), "ledger_form": LedgerPeriodForm(initial={"start": today, "end": today}),
                         "formats": FORMATS}
        return super().changelist_view(request, extra_context=extra_context)

    def _log(self, request, pk) -> ExportLog:
        log = ExportLog.objects.filter(pk=pk).first()
        # A task's file is for the person who asked for it (it may hold their personal data).
        if log is None or not (log.user_id == request.user.pk or request.user.is_superuser):
            raise Http404
        return log

    def status_view(self, request, pk):
        log = self._log(request, pk)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "log": log,
                   "title": _("导出 #%(id)s:%(kind)s") % {"id": log.pk, "kind": log.get_kind_display()},
                   "refresh": log.status in (ExportLog.Status.QUEUED, ExportLog.Status.RUNNING)}
        return TemplateResponse(request, "admin/core/exportlog/status.html", context)

    def download_view(self, request, pk):
        log = self._log(request, pk)
        if log.status != ExportLog.Status.DONE or not log.file:
            raise Http404
        return FileResponse(log.file.open("rb"), as_attachment=True, filename=log.file.name.rsplit("/", 1)[-1],
                            content_type=exports.XLSX_TYPE)

    def _refused(self, request, message):
        messages.error(request, message)
        return HttpResponseRedirect(reverse("admin:core_exportlog_changelist"))

    def stock_view(self, request):
        actor = admin_actor(request)
        try:
            table = exports.stock_level_table(actor=actor, sku=request.GET.get("sku") or None,
                                              warehouse=request.GET.get("warehouse") or None,
                                              category=request.GET.get("category") or None)
            return exports.respond(table, actor=actor, fmt=_format(request), params=table.filters)
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
            return exports.respond(table, actor=actor, fmt=_format(request), params=table.filters)
        except DomainError as exc:
            if exc.http_status == 403:
                raise PermissionDenied(exc.message) from exc
            return self._refused(request, exc.message)
