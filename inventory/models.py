"""Inventory: one central pool per warehouse × SKU, reservations, an append-only ledger."""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from simple_history.models import HistoricalRecords

from config.actors import Source
from config.append_only import AppendOnlyQuerySet


class Warehouse(models.Model):
    class Kind(models.TextChoices):
        OWN = "own", _("自营仓")
        THIRD_PARTY = "3pl", _("第三方仓")
        BONDED = "bonded", _("保税仓")
        OVERSEAS = "overseas", _("海外仓")
        RETURN_CENTER = "return_center", _("退货中心")
        FACTORY_DIRECT = "factory_direct", _("厂家直发")

    code = models.SlugField(_("编码"), max_length=40, unique=True)
    name = models.CharField(_("名称"), max_length=100, unique=True)
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices, default=Kind.OWN)
    country = models.CharField(_("国家"), max_length=2, default="CN")
    province = models.CharField(_("省份"), max_length=40, blank=True)
    city = models.CharField(_("城市"), max_length=40, blank=True)
    region = models.CharField(_("大区"), max_length=20, blank=True, help_text=_("如 华东、华北、华南"))
    address = models.CharField(_("地址"), max_length=255, blank=True)
    priority = models.PositiveIntegerField(_("优先级"), default=100, help_text=_("数字越小越优先"))
    lead_time_days = models.PositiveSmallIntegerField(
        _("备货天数"),
        default=0,
        help_text=_("0 = 现货即发;大于 0 = 需调拨,预占 24 小时内未确认即释放"),
    )
    allocatable = models.BooleanField(_("参与分仓"), default=True)
    is_active = models.BooleanField(_("启用"), default=True)
    # Sender on e-waybills (orders.waybills): with province, city and address above.
    contact_name = models.CharField(_("发件人"), max_length=50, blank=True, help_text=_("电子面单上的寄件人"))
    contact_phone = models.CharField(_("发件电话"), max_length=30, blank=True)
    district = models.CharField(_("区县"), max_length=40, blank=True)
    history = HistoricalRecords()  # audit (issue 17): who changed what

    class Meta:
        verbose_name = _("仓库")
        verbose_name_plural = pgettext_lazy("plural", "仓库")
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name


class Sku(models.Model):
    code = models.CharField(_("SKU 编码"), max_length=64, unique=True)
    name = models.CharField(_("名称"), max_length=200)
    category = models.CharField(_("类目"), max_length=64, blank=True, db_index=True)
    barcode = models.CharField(_("条码"), max_length=64, blank=True, db_index=True)
    safety_stock = models.PositiveIntegerField(_("安全库存"), default=0)
    emergency_buffer = models.PositiveIntegerField(
        _("应急保留"), default=0, help_text=_("不向渠道展示的保留数量")
    )
    emergency_buffer_percent = models.PositiveSmallIntegerField(
        _("应急保留比例(%)"), default=0, validators=[MaxValueValidator(100)],
        help_text=_("按可用库存的百分比保留,不向渠道展示;与「应急保留」取较大者"),
    )
    tax_exempt = models.BooleanField(_("免税商品"), default=False)
    is_active = models.BooleanField(_("启用"), default=True)
    history = HistoricalRecords()  # audit (issue 17): who changed what

    class Meta:
        verbose_name = _("SKU")
        verbose_name_plural = pgettext_lazy("plural", "SKU")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class SkuMapping(models.Model):
    shop = models.ForeignKey("orders.Shop", on_delete=models.CASCADE, related_name="sku_mappings", verbose_name=_("店铺"))
    platform_sku_id = models.CharField(_("平台 SKU ID"), max_length=100)
    platform_item_id = models.CharField(
        _("平台商品 ID"), max_length=100, blank=True,
        help_text=_("回写库存时部分平台需要(淘宝 num_iid、拼多多 goods_id、抖音 product_id)"),
    )
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="mappings", verbose_name=_("SKU"))
    history = HistoricalRecords()  # audit (issue 17): who changed what

    class Meta:
        verbose_name = _("SKU 映射")
        verbose_name_plural = pgettext_lazy("plural", "SKU 映射")
        constraints = [
            models.UniqueConstraint(fields=["shop", "platform_sku_id"], name="uniq_sku_mapping_per_shop"),
        ]

    def __str__(self) -> str:
        return f"{self.shop_id}:{self.platform_sku_id} → {self.sku_id}"


class StockLevel(models.Model):
    """The pool: warehouse × SKU. Available = on_hand − reserved. Changed only by services."""

    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="stock_levels", verbose_name=_("仓库"))
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="stock_levels", verbose_name=_("SKU"))
    on_hand = models.IntegerField(_("在库"), default=0)
    reserved = models.IntegerField(_("已预占"), default=0)
    inbound = models.PositiveIntegerField(_("在途"), default=0, help_text=_("仅展示,不可售"))
    inbound_eta = models.DateField(_("预计到货"), null=True, blank=True)
    location = models.CharField(_("库位"), max_length=40, blank=True, help_text=_("货架/库位编码,拣货单按它排序"))
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("库存")
        verbose_name_plural = pgettext_lazy("plural", "库存")
        constraints = [
            models.UniqueConstraint(fields=["warehouse", "sku"], name="uniq_stock_level"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_not_negative"),
            models.CheckConstraint(condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_le_on_hand"),
        ]
        permissions = [
            ("receive_stock", _("可入库")),
            ("adjust_stock", _("可调整库存/盘点")),
            ("confirm_reservation", _("可确认备货预占")),
        ]

    def __str__(self) -> str:
        return f"{self.warehouse} / {self.sku.code}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("预占中")
        CONSUMED = "consumed", _("已出库")
        RELEASED = "released", _("已释放")

    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT, related_name="reservations", verbose_name=_("订单行"))
    stock_level = models.ForeignKey(StockLevel, on_delete=models.PROTECT, related_name="reservations", verbose_name=_("库存"))
    quantity = models.PositiveIntegerField(_("数量"))
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    expires_at = models.DateTimeField(_("到期时间"), null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    closed_at = models.DateTimeField(_("结束时间"), null=True, blank=True)
    close_reason = models.CharField(_("结束原因"), max_length=40, blank=True)

    class Meta:
        verbose_name = _("库存预占")
        verbose_name_plural = pgettext_lazy("plural", "库存预占")
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="reservation_quantity_positive")]
        indexes = [models.Index(fields=["stock_level", "status"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.quantity} @ {self.stock_level_id} ({self.status})"


class StockMove(models.Model):
    """Append-only ledger: each pool equals the sum of its moves (`inventory_audit`)."""

    class Kind(models.TextChoices):
        RECEIPT = "receipt", _("入库")
        RESERVE = "reserve", _("预占")
        RELEASE = "release", _("释放")
        SHIP = "ship", _("发货出库")
        RETURN_RESTOCK = "return_restock", _("退货入库")
        ADJUSTMENT = "adjustment", _("调整")
        STOCKTAKE = "stocktake", _("盘点")

    stock_level = models.ForeignKey(StockLevel, on_delete=models.PROTECT, related_name="moves", verbose_name=_("库存"))
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    on_hand_delta = models.IntegerField(_("在库变动"), default=0)
    reserved_delta = models.IntegerField(_("预占变动"), default=0)
    on_hand_after = models.IntegerField(_("变动后在库"))
    reserved_after = models.IntegerField(_("变动后预占"))
    reservation = models.ForeignKey(Reservation, on_delete=models.PROTECT, null=True, blank=True, related_name="moves", verbose_name=_("预占"))
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="stock_moves", verbose_name=_("订单"))
    reason = models.CharField(_("原因"), max_length=255, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("操作人"))
    actor_label = models.CharField(_("操作人"), max_length=150, blank=True)
    source = models.CharField(_("来源"), max_length=20, choices=Source.CHOICES, default=Source.SYSTEM)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        verbose_name = _("库存流水")
        verbose_name_plural = pgettext_lazy("plural", "库存流水")
        ordering = ["-id"]
        triggers = [pgtrigger.Protect(name="stockmove_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.on_hand_delta:+d}/{self.reserved_delta:+d}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("库存流水只能追加,不能修改")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("库存流水只能追加,不能删除")


class RoutingRule(models.Model):
    """Ordered rules: the first active rule whose conditions match a line picks its warehouse.

    A *strict* rule is binding: when its warehouse cannot serve the line the order goes on
    hold (stock short), never silently to another warehouse. A *preferred* rule falls back
    to the next matching rule, then to the warehouses by priority.
    """

    class Mode(models.TextChoices):
        STRICT = "strict", _("严格")
        PREFERRED = "preferred", _("优先")

    name = models.CharField(_("名称"), max_length=100)
    position = models.PositiveIntegerField(_("顺序"), default=100, help_text=_("从小到大依次匹配"))
    conditions = models.JSONField(_("条件"), default=dict, help_text=_('例如 {"all": [{"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]}]}'))
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="routing_rules", verbose_name=_("目标仓库"))
    mode = models.CharField(
        _("模式"), max_length=10, choices=Mode.choices, default=Mode.PREFERRED,
        help_text=_("严格:目标仓库存不足时订单挂起(库存不足);优先:按优先级改由其他仓发货"),
    )
    is_active = models.BooleanField(_("启用"), default=True)
    note = models.CharField(_("备注"), max_length=255, blank=True)
    history = HistoricalRecords()  # audit (issue 17): who changed what

    class Meta:
        verbose_name = _("分仓规则")
        verbose_name_plural = pgettext_lazy("plural", "分仓规则")
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.position}. {self.name} → {self.warehouse}"

    def clean(self) -> None:
        from inventory.conditions import ConditionError, validate

        try:
            validate(self.conditions)
        except ConditionError as exc:
            raise ValidationError({"conditions": str(exc)}) from exc


class RoutingVersion(models.Model):
    """One row: a token that changes whenever a routing rule or a warehouse changes.

    Each process caches the rules and warehouses it routes with (`inventory.allocation`)
    and checks this token once per allocation; a different token means reload. The token
    is random rather than a counter, so a rolled-back change followed by another change
    can never bring back a token some process cached stale data under.
    """

    token = models.CharField(max_length=32, default="")

    class Meta:
        verbose_name = _("分仓配置版本")
        verbose_name_plural = pgettext_lazy("plural", "分仓配置版本")

    def __str__(self) -> str:
        return self.token


def bump_routing_version(**_kwargs) -> None:
    """Invalidate every process's routing cache (call after changing rules or warehouses
    without `save()`/`delete()`, e.g. a queryset `update()`; signals cover the rest)."""
    import uuid

    token = uuid.uuid4().hex
    if not RoutingVersion.objects.filter(pk=1).update(token=token):
        RoutingVersion.objects.update_or_create(pk=1, defaults={"token": token})
