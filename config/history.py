"""Audit trail of configuration edits (issue 17), kept by django-simple-history.

Shops, warehouses, SKUs, SKU mappings, routing rules and staff scope profiles carry a
`HistoricalRecords()`; `HistoryRequestMiddleware` records the admin user, and each admin
has a 历史 page showing who changed what, when (a field-by-field diff).

A shop's credentials never reach its history: they are excluded fields, and the history
row records only *which* of them changed (`secrets_changed`, field names, never values
nor hashes).
"""

from __future__ import annotations

from django.db import models
from django.db.models.signals import pre_save
from django.utils.translation import gettext_lazy as _
from simple_history.signals import pre_create_historical_record

SHOP_SECRET_FIELDS = ("app_secret", "access_token", "webhook_secret")


class SecretsChangedHistory(models.Model):
    """Extra column on the shop's historical table: the names of the credentials changed."""

    secrets_changed = models.CharField(_("凭据变更"), max_length=100, blank=True,
                                       help_text=_("仅记录哪些凭据被修改,不记录其值"))

    class Meta:
        abstract = True


def _note_secret_changes(sender, instance, raw=False, **kwargs):
    if raw:
        return
    old = None
    if instance.pk is not None:
        old = sender._default_manager.filter(pk=instance.pk).values(*SHOP_SECRET_FIELDS).first()
    instance._secrets_changed = [
        f for f in SHOP_SECRET_FIELDS
        if (old[f] if old else "") != (getattr(instance, f) or "")
    ]


def _stamp_secret_changes(sender, instance, history_instance, **kwargs):
    if instance._meta.label != "orders.Shop":
        return
    changed = getattr(instance, "_secrets_changed", None)
    if changed:
        history_instance.secrets_changed = ",".join(changed)


pre_save.connect(_note_secret_changes, sender="orders.Shop", dispatch_uid="history_shop_secrets")
pre_create_historical_record.connect(_stamp_secret_changes, dispatch_uid="history_shop_secrets_stamp")
