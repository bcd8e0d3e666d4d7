"""Import and export history, shared by every app's Excel pages.

The module also makes Django send `post_migrate` to the `config` app (`config/apps.py`
creates the database cache table there).

- `ImportJob`: one uploaded file — who, when, what kind, the file (kept for
  `IMPORT_KEEP_DAYS`, then purged by `purge_import_files`), row counts, the preview of
  what it would change, row-numbered errors, and progress while a task runs it.
- `ExportLog`: one export — who, when, what, with which filters, how many rows, and
  whether personal data was in it (who exported personal data, and when, is answerable);
  a big xlsx export is written by a task and its file kept here for `EXPORT_KEEP_DAYS`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ImportJob(models.Model):
    class Kind(models.TextChoices):
        SKU = "sku", _("SKU 主数据")
        SKU_MAPPING = "sku_mapping", _("SKU 映射")
        STOCK_COUNT = "stock_count", _("盘点")
        SAFETY_STOCK = "safety_stock", _("安全库存")
        TRACKING = "tracking", _("运单号(批量发货)")
        DISTRIBUTOR_ORDERS = "distributor_orders", _("分销订单")

    class Status(models.TextChoices):
        VALIDATING = "validating", _("校验中")
        PREVIEW = "preview", _("待确认")  # dry run passed: shows what would change, nothing changed
        INVALID = "invalid", _("有错误")  # the file or some rows are wrong: nothing changed
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("导入中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")  # refused while applying (all or nothing: nothing changed)
        CANCELLED = "cancelled", _("已放弃")

    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    status = models.CharField(_("状态"), max_length=12, choices=Status.choices, default=Status.VALIDATING, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("导入人"))
    actor_label = models.CharField(_("导入人"), max_length=150, blank=True)
    file = models.FileField(_("文件"), upload_to="imports/%Y/%m/", blank=True, max_length=255)
    file_name = models.CharField(_("文件名"), max_length=255)
    file_size = models.PositiveIntegerField(_("文件大小"), default=0)
    file_purged_at = models.DateTimeField(_("文件清理时间"), null=True, blank=True)
    is_async = models.BooleanField(_("后台任务"), default=False)
    total_rows = models.PositiveIntegerField(_("行数"), default=0)
    processed_rows = models.PositiveIntegerField(_("已处理"), default=0)
    created_count = models.PositiveIntegerField(_("新增"), default=0)
    updated_count = models.PositiveIntegerField(_("更新"), default=0)
    unchanged_count = models.PositiveIntegerField(_("无变化"), default=0)
    error_count = models.PositiveIntegerField(_("错误数"), default=0)
    errors = models.JSONField(_("错误"), default=list, blank=True)  # [{"row": 3, "column": "数量", "message": "…"}]
    preview = models.JSONField(_("变更预览"), default=list, blank=True)  # the first rows that would change
    options = models.JSONField(_("导入选项"), default=dict, blank=True)  # e.g. {"shop": "dist-a"} for distributor orders
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True, db_index=True)
    confirmed_at = models.DateTimeField(_("确认时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导入记录")
        verbose_name_plural = pgettext_lazy("plural", "导入记录")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.file_name}"

    @property
    def progress_percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status in (self.Status.DONE,) else 0
        return min(100, int(self.processed_rows * 100 / self.total_rows))

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.VALIDATING, self.Status.QUEUED, self.Status.RUNNING)


class ExportLog(models.Model):
    class Kind(models.TextChoices):
        ORDERS = "orders", _("订单")
        STOCK_LEVELS = "stock_levels", _("库存")
        STOCK_MOVES = "stock_moves", _("库存流水")
        SHIPMENTS = "shipments", _("发货包裹")

    class Status(models.TextChoices):
        DONE = "done", _("已完成")  # streamed in the request, or the task's file is ready
        QUEUED = "queued", _("排队中")  # a big xlsx: a django-q2 task writes the file
        RUNNING = "running", _("生成中")
        FAILED = "failed", _("失败")

    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.DONE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("导出人"))
    actor_label = models.CharField(_("导出人"), max_length=150, blank=True)
    filters = models.JSONField(_("筛选条件"), default=dict, blank=True)
    file_format = models.CharField(_("格式"), max_length=8, default="xlsx")
    row_count = models.PositiveIntegerField(_("行数"), null=True, blank=True)  # set when the stream ends
    includes_pii = models.BooleanField(_("含个人信息"), default=False, db_index=True)
    file = models.FileField(_("文件"), upload_to="exports/%Y/%m/", blank=True, max_length=255)  # task exports only
    error = models.CharField(_("错误"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("导出时间"), auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导出记录")
        verbose_name_plural = pgettext_lazy("plural", "导出记录")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.actor_label}"


class GuideDismissal(models.Model):
    """A staff member closed the first-day guide on the admin home (config/dashboard.py):
    it is never shown to them again."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                verbose_name=_("用户"))
    dismissed_at = models.DateTimeField(_("关闭时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("新手指引关闭记录")
        verbose_name_plural = pgettext_lazy("plural", "新手指引关闭记录")

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.dismissed_at}"


class Notification(models.Model):
    """One staff alert for the team's group chat (企业微信 / 钉钉 群机器人), an outbox row.

    Written after the commit that caused it (`config.notify.alert`), at most once per `key`
    (a redelivered scan or a retried job never alerts twice), and sent by a django-q2 job
    in batches (robots accept about 20 messages a minute). Staff text only: order numbers,
    tracking numbers, SKU codes and shop codes, never a customer's name, phone or address."""

    class Topic(models.TextChoices):
        SHIPMENT_EXCEPTION = "shipment_exception", _("物流异常")
        SHIPMENT_RETURNED = "shipment_returned", _("包裹退回")
        STOCK_LOW = "stock_low", _("低于安全库存")
        SYNC_FAILED = "sync_failed", _("平台同步连续失败")
        WEBHOOK_DEAD = "webhook_dead", _("平台推送处理失败")

    class Status(models.TextChoices):
        PENDING = "pending", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        FAILED = "failed", _("发送失败")
        NOT_SENT = "not_sent", _("未配置机器人")

    topic = models.CharField(_("类型"), max_length=30, choices=Topic.choices, db_index=True)
    key = models.CharField(_("去重键"), max_length=200, unique=True)
    text = models.CharField(_("内容"), max_length=500)
    link = models.CharField(_("后台链接"), max_length=300, blank=True)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)
    claimed_until = models.DateTimeField(_("处理中至"), null=True, blank=True)

    class Meta:
        verbose_name = _("员工通知")
        verbose_name_plural = pgettext_lazy("plural", "员工通知")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_topic_display()}: {self.text[:40]}"
