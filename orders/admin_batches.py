"""Admin for pick batches (imported by `orders.admin`): the list, "build a batch now", the
printable pick list (A4) and packing lists, the Excel download, and undoing a merge.

Everything goes through `orders.batches` with the person as actor: it checks
`orders.build_pickbatch` (仓管, 运营, 主管) and the person's warehouses — another
warehouse's batch is a 404. Printing or downloading marks the batch printed.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from config.admin_tools import ReadOnlyAdminMixin, admin_actor
from config.errors import DomainError, NotFound
from inventory.models import Warehouse
from orders import batches, waybills
from orders.models import Parcel, PickBatch, ReceiverDecryption


class BuildForm(forms.Form):
    warehouse = forms.ModelChoiceField(label=_("仓库"), queryset=Warehouse.objects.none())

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        qs = Warehouse.objects.filter(is_active=True).order_by("priority", "id")
        if actor.scope.warehouse_ids is not None:
            qs = qs.filter(pk__in=actor.scope.warehouse_ids)
        self.fields["warehouse"].queryset = qs


@admin.register(PickBatch)
class PickBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("number", "warehouse", "slot", "created_at", "order_count", "parcel_count", "printed_at",
                    "printed_by", "links")
    list_filter = ("warehouse", ("printed_at", admin.EmptyFieldListFilter))
    search_fields = ("number",)
    list_select_related = ("warehouse",)
    date_hierarchy = "created_at"

    # --- access: the permission, then the person's warehouses ------------------------------------
    def _allowed(self, request) -> bool:
        return request.user.is_active and request.user.has_perm(batches.PERMISSION)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request)

    def has_module_permission(self, request):
        return self._allowed(request)

    def get_queryset(self, request):
        return batches.batch_list(actor=admin_actor(request)) if self._allowed(request) else PickBatch.objects.none()

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(gettext("对象不存在"))
        return obj

    @admin.display(description=_("打印"))
    def links(self, obj: PickBatch):
        return format_html('<a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">Excel</a> · <a href="{}">{}</a>',
                           reverse("admin:orders_pickbatch_pick", args=[obj.pk]), gettext("拣货单"),
                           reverse("admin:orders_pickbatch_packing", args=[obj.pk]), gettext("装箱单"),
                           reverse("admin:orders_pickbatch_excel", args=[obj.pk]),
                           reverse("admin:orders_pickbatch_waybills", args=[obj.pk]), gettext("电子面单"))

    def get_urls(self):
        own = [
            path("build/", self.admin_site.admin_view(self.build_view), name="orders_pickbatch_build"),
            path("<int:pk>/pick-list/", self.admin_site.admin_view(self.pick_view), name="orders_pickbatch_pick"),
            path("<int:pk>/packing-lists/", self.admin_site.admin_view(self.packing_view),
                 name="orders_pickbatch_packing"),
            path("<int:pk>/excel/", self.admin_site.admin_view(self.excel_view), name="orders_pickbatch_excel"),
            path("<int:pk>/waybills/", self.admin_site.admin_view(self.waybills_view),
                 name="orders_pickbatch_waybills"),
            path("<int:pk>/waybills/request/", self.admin_site.admin_view(require_POST(self.waybills_request_view)),
                 name="orders_pickbatch_waybills_request"),
            path("<int:pk>/waybills/labels/", self.admin_site.admin_view(self.labels_view),
                 name="orders_pickbatch_labels"),
            path("parcel/<int:pk>/unmerge/", self.admin_site.admin_view(require_POST(self.unmerge_view)),
                 name="orders_pickbatch_unmerge"),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "build_url": reverse("admin:orders_pickbatch_build")}
        return super().changelist_view(request, extra_context)

    # --- views -------------------------------------------------------------------------------------
    def _batch(self, request, pk) -> PickBatch:
        if not self._allowed(request):
            raise PermissionDenied
        try:
            return batches.batch_get(pk=pk, actor=admin_actor(request))
        except NotFound as exc:
            raise Http404(exc.message) from exc

    def build_view(self, request):
        if not self._allowed(request):
            raise PermissionDenied
        actor = admin_actor(request)
        form = BuildForm(request.POST or None, actor=actor)
        if request.method == "POST" and form.is_valid():
            try:
                batch = batches.batch_build(warehouse=form.cleaned_data["warehouse"], actor=actor)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                if batch is None:
                    messages.info(request, gettext("没有待拣货的订单"))
                    return HttpResponseRedirect(reverse("admin:orders_pickbatch_changelist"))
                messages.success(request, gettext("已建立批次 %(number)s:%(orders)d 单,%(parcels)d 个包裹") % {
                    "number": batch.number, "orders": batch.order_count, "parcels": batch.parcel_count})
                return HttpResponseRedirect(reverse("admin:orders_pickbatch_packing", args=[batch.pk]))
        context = {**self.admin_site.each_context(request), "title": gettext("立即建立拣货批次"), "form": form,
                   "opts": self.model._meta, "times": batches.batch_times()}
        return TemplateResponse(request, "orders/batch_build.html", context)

    def pick_view(self, request, pk):
        batch = self._batch(request, pk)
        actor = admin_actor(request)
        rows = batches.pick_list(batch=batch, actor=actor)
        batches.batch_mark_printed(batch=batch, actor=actor)
        return TemplateResponse(request, "orders/pick_list.html", {
            "batch": batch, "rows": rows, "total": sum(r.quantity for r in rows),
            "priority_rows": [r for r in rows if r.priority], "other_rows": [r for r in rows if not r.priority],
            "now": timezone.now()})

    def packing_view(self, request, pk):
        batch = self._batch(request, pk)
        actor = admin_actor(request)
        slips = batches.packing_lists(batch=batch, actor=actor)
        batches.batch_mark_printed(batch=batch, actor=actor)
        return TemplateResponse(request, "orders/packing_lists.html", {"batch": batch, "slips": slips,
                                                                      "now": timezone.now()})

    def excel_view(self, request, pk):
        batch = self._batch(request, pk)
        actor = admin_actor(request)
        content = batches.batch_workbook(batch=batch, actor=actor)
        batches.batch_mark_printed(batch=batch, actor=actor)
        response = HttpResponse(content,
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f'attachment; filename="{batch.number}.xlsx"'
        return response

    def unmerge_view(self, request, pk):
        if not self._allowed(request):
            raise PermissionDenied
        actor = admin_actor(request)
        parcel = Parcel.objects.filter(pk=pk).select_related("batch").first()
        if parcel is None or not actor.scope.allows_warehouse(parcel.warehouse_id):
            raise Http404(gettext("对象不存在"))
        try:
            batches.parcel_unmerge(parcel=parcel, actor=actor)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, gettext("已撤销合单 %(code)s") % {"code": parcel.code})
        return HttpResponseRedirect(reverse("admin:orders_pickbatch_packing", args=[parcel.batch_id]))

    # --- e-waybills (orders.waybills) --------------------------------------------------------------
    def waybills_view(self, request, pk):
        batch = self._batch(request, pk)
        rows = waybills.batch_waybill_rows(batch=batch, actor=admin_actor(request))
        context = {**self.admin_site.each_context(request), "title": gettext("电子面单 %(number)s") % {
            "number": batch.number}, "opts": self.model._meta, "batch": batch, "rows": rows,
            "missing": sum(1 for r in rows if r["waybill"] is None)}
        return TemplateResponse(request, "orders/batch_waybills.html", context)

    def waybills_request_view(self, request, pk):
        batch = self._batch(request, pk)
        try:
            result = waybills.batch_request_waybills(batch=batch, actor=admin_actor(request))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.info(request, gettext("已申请 %(issued)d 张电子面单,%(kept)d 个包裹已有面单") % {
                "issued": len(result.issued), "kept": len(result.kept)})
            for code, reason in result.failed:
                messages.error(request, gettext("包裹 %(code)s 申请失败:%(reason)s") % {"code": code, "reason": reason})
        return HttpResponseRedirect(reverse("admin:orders_pickbatch_waybills", args=[batch.pk]))

    def labels_view(self, request, pk):
        batch = self._batch(request, pk)
        try:
            labels, skipped = waybills.waybill_labels(batch=batch, actor=admin_actor(request))
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("admin:orders_pickbatch_waybills", args=[batch.pk]))
        return TemplateResponse(request, "orders/waybill_labels.html", {
            "batch": batch, "labels": labels, "skipped": skipped, "now": timezone.now()})


@admin.register(ReceiverDecryption)
class ReceiverDecryptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit of receiver decryptions: read-only, for supervisors (orders.view_receiverdecryption).
    Shows who decrypted which order when and why — never the clear text (it is not stored)."""

    list_display = ("at", "order", "platform", "reason", "succeeded", "actor_label", "detail")
    list_filter = ("reason", "succeeded", "platform")
    search_fields = ("order__number", "actor_label")
    list_select_related = ("order",)
    date_hierarchy = "at"
    fields = ("at", "order", "waybill", "platform", "reason", "fields", "succeeded", "detail", "actor_label")

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        actor = admin_actor(request)
        if actor.scope.shop_ids is not None:
            qs = qs.filter(order__shop_id__in=actor.scope.shop_ids)
        return qs
