"""Append-only tables (the stock ledger, the order timeline): rows are added, never changed.

Each model refuses `save()` of an existing row and `delete()` itself; this queryset refuses
the bulk paths that skip those methods. `bulk_create` stays allowed — it only adds rows.
On PostgreSQL a trigger (django-pgtrigger `Protect`, in each model's `Meta.triggers`) also
refuses UPDATE and DELETE from raw SQL; TRUNCATE (test teardown) is not a row operation and
is unaffected.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValidationError(f"{self.model._meta.label} 只能追加,不能修改")

    def delete(self):
        raise ValidationError(f"{self.model._meta.label} 只能追加,不能删除")

    update.queryset_only = True
    delete.queryset_only = True
