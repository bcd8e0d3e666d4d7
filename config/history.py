"""Audit trail of configuration edits (issue 17), kept by django-simple-history.

Shops, warehouses, SKUs, SKU mappings, routing rules and staff scope profiles carry a
`HistoricalRecords()`; `HistoryRequestMiddleware` records the admin user, and each admin
has a 历史 page showing who changed what, when (a field-by-field diff).

Staff accounts (auth.User) are registered too, with their groups (= roles) and
permissions, so a role change is on record; logins (which save only `last_login`) are not.

Credentials never reach the history: a shop's secrets and a user's password hash are
excluded fields, and the history row records only *which* of them changed
(`secrets_changed`, field names, never values nor hashes).
"""

from __future__ import annotations

from django.db import models
from django.db.models.signals import pre_save
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

SHOP_SECRET_FIELDS = ("app_secret", "access_token", "webhook_secret")
USER_SECRET_FIELDS = ("password",)
SECRET_FIELDS = {"orders.Shop": SHOP_SECRET_FIELDS, "auth.User": USER_SECRET_FIELDS}


class SecretsChangedHistory(models.Model):
    """Extra column on the shop's historical table: the names of the credentials changed."""

    secrets_changed = models.CharField(_("凭据变更"), max_length=100, blank=True,
                                       help_text=_("仅记录哪些凭据被修改,不记录其值"))

    class Meta:
        abstract = True


class UserHistoricalRecords(HistoricalRecords):
    """A login saves only `last_login`: that is not an edit, so it writes no history row."""

    def post_save(self, instance, created, using=None, **kwargs):
        if _login_only(kwargs.get("update_fields")):
            return
        super().post_save(instance, created, using=using, **kwargs)


def _login_only(update_fields) -> bool:
    return bool(update_fields) and set(update_fields) <= {"last_login"}


def register_user_history() -> None:
    """Called once from orders/models.py: the historical user table lives in `orders`."""
    import simple_history
    from django.contrib.auth import get_user_model

    user = get_user_model()
    if hasattr(user, "history"):
        return
    simple_history.register(
        user, app="orders", records_class=UserHistoricalRecords, bases=[SecretsChangedHistory],
        m2m_fields=["groups", "user_permissions"], excluded_fields=[*USER_SECRET_FIELDS, "last_login"],
    )


def _note_secret_changes(sender, instance, raw=False, update_fields=None, **kwargs):
    fields = SECRET_FIELDS.get(sender._meta.label)
    if raw or not fields or _login_only(update_fields):
        return
    old = None
    if instance.pk is not None:
        old = sender._default_manager.filter(pk=instance.pk).values(*fields).first()
    instance._secrets_changed = [
        f for f in fields
        if ((old[f] if old else "") or "") != (getattr(instance, f) or "")
    ]


def _stamp_secret_changes(sender, instance, history_instance, **kwargs):
    if instance._meta.label not in SECRET_FIELDS:
        return
    changed = getattr(instance, "_secrets_changed", None)
    if changed:
        history_instance.secrets_changed = ",".join(changed)
        instance._secrets_changed = []  # an m2m change right after the save did not change them


for _label in SECRET_FIELDS:
    pre_save.connect(_note_secret_changes, sender=_label, dispatch_uid=f"history_secrets_{_label}")
pre_create_historical_record.connect(_stamp_secret_changes, dispatch_uid="history_secrets_stamp")
