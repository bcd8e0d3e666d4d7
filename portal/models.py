"""Portal data: the one-time login codes (hashed) and the SMS outbox of the default backend."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class PortalLoginCode(models.Model):
    """One 6-digit code sent to one phone. Only a keyed hash of it is stored (portal.services)."""

    phone = models.CharField(_("手机号"), max_length=32, db_index=True, help_text=_("E.164"))
    code_hash = models.CharField(_("验证码摘要"), max_length=64)
    created_at = models.DateTimeField(_("发送时间"), default=timezone.now)
    expires_at = models.DateTimeField(_("过期时间"))
    attempts = models.PositiveSmallIntegerField(_("已尝试次数"), default=0)
    used_at = models.DateTimeField(_("使用时间"), null=True, blank=True)
    revoked = models.BooleanField(_("已作废"), default=False, help_text=_("发送新验证码后旧的作废"))
    ip = models.GenericIPAddressField(_("请求 IP"), null=True, blank=True)

    class Meta:
        verbose_name = _("登录验证码")
        verbose_name_plural = pgettext_lazy("plural", "登录验证码")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["phone", "created_at"])]

    def __str__(self) -> str:
        from orders.masking import mask_phone

        return f"{mask_phone(self.phone)} {self.created_at:%Y-%m-%d %H:%M}"


class PortalSmsOutbox(models.Model):
    """Every SMS the portal sent through the outbox backend (the default): the demo's "phone"."""

    phone = models.CharField(_("手机号"), max_length=32, db_index=True)
    text = models.CharField(_("短信内容"), max_length=500)
    backend = models.CharField(_("发送方式"), max_length=20, default="outbox")
    created_at = models.DateTimeField(_("发送时间"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("短信发件箱")
        verbose_name_plural = pgettext_lazy("plural", "短信发件箱")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        from orders.masking import mask_phone

        return f"{mask_phone(self.phone)} {self.created_at:%Y-%m-%d %H:%M:%S}"
