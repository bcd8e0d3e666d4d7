"""Orders: shops, customers, orders and lines, the order lifecycle and its timeline."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pgtrigger

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from config.actors import Source
from config.append_only import AppendOnlyQuerySet


class Platform(models.TextChoices):
    TAOBAO = "taobao", _("淘宝/天猫")
    JD = "jd", _("京东")
    PDD = "pdd", _("拼多多")
    DOUYIN = "douyin", _("抖音小店")
    MINIAPP = "miniapp", _("微信小程序")
    SHOPIFY = "shopify", _("Shopify")
    AMAZON = "amazon", _("Amazon")
    DISTRIBUTOR = "distributor", _("分销导入")
    SANDBOX = "sandbox", _("沙箱")


class Shop(models.Model):
    platform = models.CharField(_("平台"), max_length=20, choices=Platform.choices, db_index=True)
    code = models.SlugField(_("店铺编码"), max_length=50, unique=True)
    name = models.CharField(_("店铺名称"), max_length=100)
    # Credentials: never shown in list views or API output.
    app_key = models.CharField(_("App Key"), max_length=200, blank=True)
    app_secret = models.CharField(_("App Secret"), max_length=200, blank=True)
    access_token = models.CharField(_("Access Token"), max_length=500, blank=True)
    webhook_secret = models.CharField(_("Webhook 密钥"), max_length=200, blank=True)
    ship_within_hours = models.PositiveIntegerField(_("承诺发货时限(小时)"), default=48)
    time_zone = models.CharField(_("时区"), max_length=50, default="Asia/Shanghai")
    currency = models.CharField(_("币种"), max_length=3, default="CNY")
    sync_enabled = models.BooleanField(_("启用同步"), default=False)
    sync_interval_minutes = models.PositiveIntegerField(_("同步间隔(分钟)"), default=5)
    sync_cursor = models.DateTimeField(_("同步游标"), null=True, blank=True)
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("店铺")
        verbose_name_plural = pgettext_lazy("plural", "店铺")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    PII_FIELDS = frozenset({"name", "phone"})  # config.pii: masked, never searched by without orders.view_pii
    phone = models.CharField(_("手机号"), max_length=32, blank=True, db_index=True,
                             help_text=_("E.164 格式;平台虚拟号的分机写作 ;ext=1234"))
    name = models.CharField(_("姓名"), max_length=100, blank=True)
    tags = models.JSONField(_("标签"), default=list, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("客户")
        verbose_name_plural = pgettext_lazy("plural", "客户")
        permissions = [("view_pii", _("可查看客户个人信息(手机号、地址)"))]
        constraints = [
            # One customer per phone (virtual numbers keep their extension, so they stay apart).
            models.UniqueConstraint(fields=["phone"], condition=~Q(phone=""), name="uniq_customer_phone"),
        ]

    def __str__(self) -> str:
        from orders.masking import mask_name, mask_phone

        return f"{mask_name(self.name)} {mask_phone(self.phone)}".strip() or f"#{self.pk}"


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("待付款")
    PAID = "paid", _("已付款")
    ON_HOLD = "on_hold", _("挂起")
    ALLOCATED = "allocated", _("已分仓")
    PACKED = "packed", _("已打包")
    PARTIALLY_SHIPPED = "partially_shipped", _("部分发货")
    SHIPPED = "shipped", _("已发货")
    DELIVERED = "delivered", _("已签收")
    COMPLETED = "completed", _("已完成")
    CANCELLED = "cancelled", _("已取消")
    RETURNED = "returned", _("已退货")


class HoldReason(models.TextChoices):
    STOCK_SHORT = "stock_short", _("库存不足")
    SKU_UNMAPPED = "sku_unmapped", _("SKU 未映射")
    NO_LINES = "no_lines", _("无商品行")
    RESERVATION_EXPIRED = "reservation_expired", _("备货预占已过期")
    ADDRESS = "address", _("地址待确认")
    RISK = "risk", _("风控审核")
    MANUAL = "manual", _("人工挂起")


S = OrderStatus
BEFORE_SHIPPED = [S.PENDING_PAYMENT, S.PAID, S.ON_HOLD, S.ALLOCATED, S.PACKED]


class OrderNumberSequence(models.Model):
    """One row per order number handed out: its id is the number's serial part.

    An auto-increment id never repeats (on SQLite and PostgreSQL alike) and inserts do not
    contend with each other, so numbers are collision-free without a hot counter row.
    """

    issued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("订单号序列")
        verbose_name_plural = pgettext_lazy("plural", "订单号序列")


def new_order_number(*, zone: str | None = None, at=None) -> str:
    """OH + the date in the shop's zone (yymmdd) + a serial of at least 8 digits."""
    zone = zone or settings.ORDERHUB.get("DEFAULT_TIME_ZONE", "Asia/Shanghai")
    local = timezone.localtime(at or timezone.now(), ZoneInfo(zone))
    serial = OrderNumberSequence.objects.create().pk
    return f"OH{local:%y%m%d}{serial:08d}"


class Order(ConcurrentTransitionMixin, models.Model):
    # See config.pii. The normalized phone is personal data too: masked roles never look it up.
    PII_FIELDS = frozenset({"receiver_name", "receiver_phone", "receiver_phone_normalized", "address", "raw"})
    number = models.CharField(_("订单号"), max_length=32, unique=True, default=new_order_number, editable=False)
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="orders", verbose_name=_("店铺"))
    platform_order_id = models.CharField(_("平台订单号"), max_length=64)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="orders", verbose_name=_("客户"))

    status = FSMField(_("状态"), max_length=20, choices=OrderStatus.choices, default=S.PENDING_PAYMENT, protected=True, db_index=True)
    platform_status = models.CharField(_("平台状态"), max_length=64, blank=True)
    hold_reason = models.CharField(_("挂起原因"), max_length=30, choices=HoldReason.choices, blank=True)
    hold_note = models.CharField(_("挂起说明"), max_length=255, blank=True)

    # Money: what the buyer paid and how it breaks down.
    currency = models.CharField(_("币种"), max_length=3, default="CNY")
    goods_amount = models.DecimalField(_("商品金额"), max_digits=12, decimal_places=2, default=0)
    discount_amount = models.DecimalField(_("优惠金额"), max_digits=12, decimal_places=2, default=0)
    shipping_fee = models.DecimalField(_("运费"), max_digits=12, decimal_places=2, default=0)
    paid_amount = models.DecimalField(_("实付金额"), max_digits=12, decimal_places=2, default=0)

    # Receiver.
    receiver_name = models.CharField(_("收件人"), max_length=100, blank=True)
    receiver_phone = models.CharField(_("收件电话"), max_length=30, blank=True)
    # The receiver phone in E.164 (`orders.services.normalize_phone`), '' when it is not a
    # valid number; set by the order service. What a phone search looks up (indexed).
    receiver_phone_normalized = models.CharField(_("收件电话(规范化)"), max_length=40, blank=True, editable=False)
    country = models.CharField(_("国家"), max_length=2, default="CN")
    province = models.CharField(_("省份"), max_length=40, blank=True)
    city = models.CharField(_("城市"), max_length=40, blank=True)
    district = models.CharField(_("区县"), max_length=40, blank=True)
    address = models.CharField(_("详细地址"), max_length=255, blank=True)
    postcode = models.CharField(_("邮编"), max_length=20, blank=True)

    # Business context: rules and people decide on these, so they are real columns.
    is_presale = models.BooleanField(_("预售"), default=False)
    promised_ship_at = models.DateTimeField(_("承诺发货时间"), null=True, blank=True)
    source_detail = models.CharField(_("来源详情"), max_length=200, blank=True, help_text=_("直播间、活动等"))
    coupon_codes = models.JSONField(_("优惠券"), default=list, blank=True)
    member_level = models.CharField(_("会员等级"), max_length=30, blank=True)
    is_vip = models.BooleanField(_("VIP"), default=False)
    buyer_note = models.TextField(_("买家留言"), blank=True)
    seller_note = models.TextField(_("卖家备注"), blank=True)
    invoice_title = models.CharField(_("发票抬头"), max_length=200, blank=True)
    invoice_tax_number = models.CharField(_("税号"), max_length=40, blank=True)
    tags = models.JSONField(_("标签"), default=list, blank=True)

    placed_at = models.DateTimeField(_("下单时间"), default=timezone.now)  # indexed with id: Meta.indexes
    paid_at = models.DateTimeField(_("付款时间"), null=True, blank=True)
    platform_updated_at = models.DateTimeField(_("平台更新时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    raw = models.JSONField(_("原始报文"), default=dict, blank=True)

    class Meta:
        verbose_name = _("订单")
        verbose_name_plural = pgettext_lazy("plural", "订单")
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["shop", "platform_order_id"], name="uniq_platform_order"),
            models.CheckConstraint(
                condition=Q(goods_amount__gte=0) & Q(discount_amount__gte=0) & Q(shipping_fee__gte=0) & Q(paid_amount__gte=0),
                name="order_amounts_not_negative",
            ),
        ]
        # Every list and lookup of the admin and the API runs on one of these (see
        # bench/admin.py): the lists are ordered like `ordering`, filtered by status, shop or
        # a placing-time range; lookups are exact or prefix matches. `number` is unique, and
        # on PostgreSQL Django also gives it a varchar_pattern_ops index ("…_like"), which
        # is what an order-number prefix (LIKE 'OH2612%') uses.
        indexes = [
            models.Index(fields=["-placed_at", "-id"], name="order_placed_idx"),
            models.Index(fields=["status", "-placed_at", "-id"], name="order_status_placed_idx"),
            models.Index(fields=["shop", "-placed_at", "-id"], name="order_shop_placed_idx"),
            models.Index(fields=["platform_order_id"]),
            models.Index(fields=["receiver_phone_normalized"], name="order_rphone_norm_idx",
                         condition=~Q(receiver_phone_normalized="")),
        ]
        permissions = [
            ("pay_order", _("可确认付款")),
            ("allocate_order", _("可分仓预占")),
            ("hold_order", _("可挂起订单")),
            ("release_order", _("可解除挂起")),
            ("pack_order", _("可打包")),
            ("ship_order", _("可发货")),
            ("deliver_order", _("可确认签收")),
            ("complete_order", _("可完成订单")),
            ("cancel_order", _("可取消订单")),
            ("return_order", _("可标记退货")),
        ]

    def __str__(self) -> str:
        return self.number

    # --- transitions: state only, no I/O; services call them ----------------------------
    @transition(field=status, source=S.PENDING_PAYMENT, target=S.PAID, permission="orders.pay_order")
    def pay(self):
        """Payment confirmed."""

    @transition(field=status, source=S.PAID, target=S.ALLOCATED, permission="orders.allocate_order")
    def allocate(self):
        """Stock reserved in one or more warehouses."""

    @transition(field=status, source=[S.PAID, S.ALLOCATED], target=S.ON_HOLD, permission="orders.hold_order")
    def hold(self):
        """Stopped for a reason (stock short, unmapped SKU, risk, manual)."""

    @transition(field=status, source=S.ON_HOLD, target=RETURN_VALUE(S.PAID, S.ALLOCATED), permission="orders.release_order")
    def release(self, *, to_allocated: bool = False):
        """Back to allocated when the order still holds reservations, else to paid."""
        return S.ALLOCATED if to_allocated else S.PAID

    @transition(field=status, source=S.ALLOCATED, target=S.PACKED, permission="orders.pack_order")
    def pack(self):
        """Picked and packed."""

    @transition(field=status, source=[S.PACKED, S.PARTIALLY_SHIPPED], target=RETURN_VALUE(S.SHIPPED, S.PARTIALLY_SHIPPED), permission="orders.ship_order")
    def ship(self, *, complete: bool = True):
        """Handed to the carrier; partially when other warehouses still have to ship."""
        return S.SHIPPED if complete else S.PARTIALLY_SHIPPED

    @transition(field=status, source=S.SHIPPED, target=S.DELIVERED, permission="orders.deliver_order")
    def deliver(self):
        """Signed for."""

    @transition(field=status, source=S.DELIVERED, target=S.COMPLETED, permission="orders.complete_order")
    def complete(self):
        """Closed: nothing left to do."""

    @transition(field=status, source=BEFORE_SHIPPED, target=S.CANCELLED, permission="orders.cancel_order")
    def cancel(self):
        """Cancelled before anything left a warehouse."""

    @transition(field=status, source=[S.SHIPPED, S.DELIVERED, S.COMPLETED], target=S.RETURNED, permission="orders.return_order")
    def mark_returned(self):
        """Every line came back and was refunded."""


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("订单"))
    sku = models.ForeignKey("inventory.Sku", on_delete=models.PROTECT, null=True, blank=True, related_name="order_lines", verbose_name=_("SKU"))
    platform_sku_id = models.CharField(_("平台 SKU ID"), max_length=100, blank=True)
    title = models.CharField(_("商品名称"), max_length=255)
    quantity = models.PositiveIntegerField(_("数量"))
    unit_price = models.DecimalField(_("单价"), max_digits=12, decimal_places=2, default=0)
    discount_amount = models.DecimalField(_("行优惠"), max_digits=12, decimal_places=2, default=0)
    is_gift = models.BooleanField(_("赠品"), default=False)

    class Meta:
        verbose_name = _("订单行")
        verbose_name_plural = pgettext_lazy("plural", "订单行")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0) & Q(discount_amount__gte=0), name="order_line_amounts_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.title} × {self.quantity}"

    def clean(self) -> None:
        if self.quantity is not None and self.quantity <= 0:
            raise ValidationError({"quantity": _("数量必须大于 0")})


class EventKind(models.TextChoices):
    """Every kind of thing that happens to an order (the timeline's `kind`)."""

    CREATED = "created", _("订单创建")
    PAID = "paid", _("已付款")
    ALLOCATED = "allocated", _("仓库已接单")
    HELD = "held", _("挂起")
    RELEASED = "released", _("解除挂起")
    PACKED = "packed", _("已打包")
    SHIPPED = "shipped", _("已发货")
    PARTIALLY_SHIPPED = "partially_shipped", _("部分商品已发货")
    DELIVERED = "delivered", _("已签收")
    COMPLETED = "completed", _("交易完成")
    CANCELLED = "cancelled", _("订单已取消")
    RETURNED = "returned", _("已退货退款")
    NOTE = "note", _("备注")
    RESERVATIONS_EXPIRED = "reservations_expired", _("备货预占过期")
    STOCK_CONFIRMED = "stock_confirmed", _("备货已确认")
    SKUS_RESOLVED = "skus_resolved", _("SKU 已重新匹配")


# What the customer reads for each public kind: a fixed wording, plus only the safe data
# named in braces (carrier and tracking number). Kinds not listed here are internal.
# Never the event's `message`: that is staff text (warehouse names, reasons staff typed).
PUBLIC_WORDING = {
    EventKind.CREATED: _("订单已提交"),
    EventKind.PAID: _("已付款,等待仓库处理"),
    EventKind.ALLOCATED: _("仓库已接单,正在备货"),
    EventKind.PACKED: _("已打包,等待快递揽收"),
    EventKind.SHIPPED: _("已发货"),
    EventKind.PARTIALLY_SHIPPED: _("部分商品已发货"),
    EventKind.DELIVERED: _("已签收"),
    EventKind.COMPLETED: _("交易完成"),
    EventKind.CANCELLED: _("订单已取消"),
    EventKind.RETURNED: _("已退货退款"),
}
# The only event data a customer may see, and how it reads.
PUBLIC_DATA = {"carrier": _("快递公司"), "tracking_number": _("运单号")}


class OrderEventQuerySet(AppendOnlyQuerySet):
    def public(self):
        return self.filter(is_public=True, kind__in=[k.value for k in PUBLIC_WORDING])


class OrderEvent(models.Model):
    """The timeline: one row per thing that happened to an order. Append-only.

    `message` is the internal text for staff; what a customer reads is `public_text`, made
    from the kind's fixed wording and the safe data only.
    """

    Kind = EventKind

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", verbose_name=_("订单"))
    kind = models.CharField(_("事件"), max_length=40, choices=EventKind.choices, db_index=True)
    from_status = models.CharField(_("原状态"), max_length=20, blank=True, choices=OrderStatus.choices)
    to_status = models.CharField(_("新状态"), max_length=20, blank=True, choices=OrderStatus.choices)
    message = models.CharField(_("内部说明"), max_length=500, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("操作人"))
    actor_label = models.CharField(_("操作人"), max_length=150, blank=True)
    source = models.CharField(_("来源"), max_length=20, choices=Source.CHOICES, default=Source.SYSTEM)
    is_public = models.BooleanField(_("客户可见"), default=False)
    data = models.JSONField(_("数据"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("发生时间"), default=timezone.now, db_index=True)

    objects = OrderEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("订单事件")
        verbose_name_plural = pgettext_lazy("plural", "订单事件")
        ordering = ["occurred_at", "id"]
        triggers = [pgtrigger.Protect(name="orderevent_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind}"

    @property
    def kind_label(self) -> str:
        return str(EventKind(self.kind).label) if self.kind in EventKind.values else self.kind

    @property
    def public_text(self) -> str:
        """The customer's wording of this event ('' for an internal one)."""
        wording = PUBLIC_WORDING.get(self.kind) if self.is_public else None
        if wording is None:
            return ""
        safe = [f"{label} {self.data[key]}" for key, label in PUBLIC_DATA.items()
                if isinstance(self.data.get(key), str) and self.data[key].strip()]
        return str(wording) + (f"({','.join(str(s) for s in safe)})" if safe else "")


class StaffProfile(models.Model):
    """What one staff member may see beyond their role: some shops and/or some warehouses.

    An empty list means no limit on that axis (so a user without a profile sees everything
    their role lets them see). Superusers and system actors are never limited. The rule
    is applied by the selectors (`orders.selectors.scope_orders`, `inventory.selectors`),
    and an object outside a person's scope answers 404 everywhere.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile",
                                verbose_name=_("用户"))
    shops = models.ManyToManyField(Shop, blank=True, related_name="+", verbose_name=_("可见店铺"),
                                   help_text=_("留空 = 全部店铺"))
    warehouses = models.ManyToManyField("inventory.Warehouse", blank=True, related_name="+", verbose_name=_("可见仓库"),
                                        help_text=_("留空 = 全部仓库"))

    class Meta:
        verbose_name = _("员工数据范围")
        verbose_name_plural = pgettext_lazy("plural", "员工数据范围")

    def __str__(self) -> str:
        return str(self.user)
