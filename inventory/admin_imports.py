"""Excel imports in the admin: 导入记录 (history), upload, template download, the dry-run
preview with its row-numbered errors, confirm, and a status page with a progress bar
(meta refresh, so it works without JavaScript) while a django-q2 task runs a big file.

The pages call `inventory.imports` only; the person is the actor with source `import`.
Imported by one line at the end of `inventory/admin.py`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.actors import Actor, Source
from config.admin_tools import OwnRecordsAdminMixin
from config.errors import DomainError
from config.models import ImportJob
from inventory import imports


def import_actor(request) -> Actor:
    return Actor.of(request.user, Source.IMPORT)


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("导入类型"))
    file = forms.FileField(label=gettext_lazy("文件"), allow_empty_file=True,  # an empty file gets our answer
                            help_text=gettext_lazy("xlsx / xls / csv;第一个工作表,第 1 行为表头"))

    shop = forms.CharField(label=gettext_lazy("店铺编码"), required=False, max_length=50,
                           help_text=gettext_lazy("仅分销订单:订单所属的分销商店铺;文件里有“店铺编码”列时可不填"))

    def __init__(self, *args, actor: Actor, **kwargs):
        super().__init__(*args, **kwargs)
        kinds = imports.kinds_for(actor)
        self.fields["kind"].choices = [(k.kind, k.title) for k in kinds]
        if not any("shop" in k.options for k in kinds):
            del self.fields["shop"]  # only the kinds that take a shop show the box

    def import_options(self) -> dict:
        return {"shop": self.cleaned_data.get("shop", "").strip()} if "shop" in self.fields else {}


@admin.register(ImportJob)
class ImportJobAdmin(OwnRecordsAdminMixin, admin.ModelAdmin):
    change_list_template = "admin/core/importjob/change_list.html"
    list_display = ("id", "kind", "status_link", "file_name", "actor_label", "total_rows", "created_count",
                    "updated_count", "unchanged_count", "error_count", "created_at", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("file_name", "actor_label")
    ordering = ("-created_at", "-id")

    # Everyone on the staff who may import something sees their own jobs; supervisors of
    # the history (superuser, or core.view_importjob) see everyone's.
    @staticmethod
    def sees_all(request) -> bool:
        return request.user.is_superuser or request.user.has_perm("core.view_importjob")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and (
            self.sees_all(request) or bool(imports.kinds_for(import_actor(request))))

    @admin.display(description=gettext_lazy("状态"), ordering="status")
    def status_link(self, job):
        return format_html('<a href="{}">{}</a>', reverse("admin:core_importjob_status", args=[job.pk]), job.get_status_display())

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("new/", view(self.upload_view), name="core_importjob_upload"),
            path("template/<str:kind>/", view(self.template_view), name="core_importjob_template"),
            path("<int:pk>/status/", view(self.status_view), name="core_importjob_status"),
            path("<int:pk>/confirm/", view(self.confirm_view), name="core_importjob_confirm"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="core_importjob_cancel"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:core_importjob_status", args=[object_id]))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "import_kinds": imports.kinds_for(import_actor(request))}
        return super().changelist_view(request, extra_context=extra_context)

    def _context(self, request, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, **extra}

    def upload_view(self, request):
        actor = import_actor(request)
        kinds = imports.kinds_for(actor)
        if not kinds:
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None, actor=actor,
                          initial={"kind": request.GET.get("kind")})
        if request.method == "POST":
            wanted = request.POST.get("kind")
            if wanted in imports.KINDS and not imports.KINDS[wanted].may_import(actor):
                messages.error(request, _("你没有权限导入%(what)s") % {"what": imports.KINDS[wanted].title})
                response = TemplateResponse(request, "admin/core/importjob/upload.html",
                                            self._context(request, form=form, kinds=kinds, title=_("导入 Excel")))
                response.status_code = 403
                return response
            if form.is_valid():
                try:
                    job = imports.start_import(kind=form.cleaned_data["kind"], upload=form.cleaned_data["file"], actor=actor,
                                               options=form.import_options())
                except DomainError as exc:
                    messages.error(request, exc.message)
                else:
                    return HttpResponseRedirect(reverse("admin:core_importjob_status", args=[job.pk]))
        return TemplateResponse(request, "admin/core/importjob/upload.html",
                                self._context(request, form=form, kinds=kinds, title=_("导入 Excel")))

    def template_view(self, request, kind):
        spec = imports.KINDS.get(kind)
        if spec is None:
            raise Http404
        if not spec.may_import(import_actor(request)):
            raise PermissionDenied
        response = HttpResponse(imports.template_xlsx(kind),
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f"attachment; filename=template-{kind}.xlsx"
        return response

    def _job(self, request, pk) -> ImportJob:
        job = get_object_or_404(ImportJob, pk=pk)
        if not self.has_view_permission(request, job):
            raise Http404
        return job

    def status_view(self, request, pk):
        job = self._job(request, pk)
        context = self._context(
            request, job=job, title=_("导入 #%(id)s:%(kind)s") % {"id": job.pk, "kind": job.get_kind_display()},
            may_confirm=job.status == ImportJob.Status.PREVIEW and job.user_id == request.user.pk,
            refresh=job.is_active,
        )
        return TemplateResponse(request, "admin/core/importjob/status.html", context)

    def confirm_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:core_importjob_status", args=[pk]))
        job = self._job(request, pk)
        try:
            job = imports.confirm_import(job=job, actor=import_actor(request))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            if job.status == ImportJob.Status.DONE:
                messages.success(request, _("导入完成:新增 %(c)s,更新 %(u)s,无变化 %(n)s")
                                 % {"c": job.created_count, "u": job.updated_count, "n": job.unchanged_count})
            elif job.status == ImportJob.Status.FAILED:
                messages.error(request, _("导入未执行:数据已变化,发现错误,所有行均未导入"))
        return HttpResponseRedirect(reverse("admin:core_importjob_status", args=[pk]))

    def cancel_view(self, request, pk):
        if request.method == "POST":
            job = self._job(request, pk)
            try:
                imports.cancel_import(job=job, actor=import_actor(request))
            except DomainError as exc:
                messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("admin:core_importjob_status", args=[pk]))
