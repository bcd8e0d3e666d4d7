"""Orders: shops, customers, orders and lines, the order lifecycle and its timeline."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pgtrigger

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition
from simple_history.models import HistoricalRecords

from config.actors import Source
from config.append_only import AppendOnlyQuerySet
from config.history import SHOP_SECRET_FIELDS, SecretsChangedHistory, register_user_history


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
    api_base_url = models.CharField(_("接口地址"), max_length=300, blank=True,
                                    validators=[URLValidator(schemes=["http", "https"])],
                                    help_text=_("留空 = 平台正式网关;测试与沙箱可指向 http://127.0.0.1:…"))
    is_active = models.BooleanField(_("启用"), default=True)
    # Per-shop adapter settings (Credentials.extra): Shopify shop_id/location_id, Amazon region/
    # marketplace_ids/shop_id (seller), carrier_codes overrides … — no secrets here.
    platform_extra = models.JSONField(_("平台参数"), default=dict, blank=True)
    allow_merge = models.BooleanField(_("允许合单"), default=True,
                                      help_text=_("同一买家同一地址的订单在拣货批次中合成一个包裹"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    # Audit (issue 17): who changed what; credentials excluded (only *which* changed is kept).
    history = HistoricalRecords(excluded_fields=list(SHOP_SECRET_FIELDS), bases=[SecretsChangedHistory])

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


def new_order_numbers(*, zone: str | None = None, at=None, count: int) -> list[str]:
    """`count` order numbers at once (bulk ingestion), each as `new_order_number` makes it:
    one `OrderNumberSequence` insert for the block, so they are collision-free with every
    other number. `at` is one time for all, or a list of `count` times (each number takes
    its own date in the shop's zone)."""
    if count <= 0:
        return []
    zone = ZoneInfo(zone or settings.ORDERHUB.get("DEFAULT_TIME_ZONE", "Asia/Shanghai"))
    times = list(at) if isinstance(at, (list, tuple)) else [at] * count
    if len(times) != count:
        raise ValueError("new_order_numbers: one time per number")
    rows = OrderNumberSequence.objects.bulk_create([OrderNumberSequence() for _ in range(count)])
    serials = [row.pk for row in rows]
    if None in serials:  # a backend that does not return ids
        serials = [OrderNumberSequence.objects.create().pk for _ in range(count)]
    serials.sort()
    now = timezone.now()
    return [f"OH{timezone.localtime(t or now, zone):%y%m%d}{serial:08d}" for t, serial in zip(times, serials)]


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
    # What the platform says, kept apart from what staff type (`seller_note`): the seller's
    # memo on the platform, the buyer's open refund request, and what needs a person's look
    # because the platform changed something we could not apply (e.g. cancelled after
    # shipment, address changed after packing). `platform_hash` fingerprints the last
    # applied version, so an identical payload is recognised without a diff.
    platform_memo = models.TextField(_("平台卖家备注"), blank=True)
    refund_requested = models.BooleanField(_("平台退款申请中"), default=False)
    platform_flags = models.JSONField(_("平台变更待处理"), default=list, blank=True)
    platform_hash = models.CharField(_("平台版本指纹"), max_length=64, blank=True, editable=False)
    overridden = models.BooleanField(_("紧急放行"), default=False, db_index=True,
                                     help_text=_("主管曾紧急放行(无库存锁发货或解除系统挂起),见放行记录"))

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
            # The admin home (config/dashboard.py): open orders past / due by a ship-by time,
            # and buyers' refund requests.
            models.Index(fields=["status", "promised_ship_at"], name="order_status_shipby_idx"),
            models.Index(fields=["status"], name="order_refund_idx", condition=Q(refund_requested=True)),
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
            ("override_order", _("可紧急放行(无库存锁发货、解除系统挂起)")),
            ("import_distributor_orders", _("可导入分销订单")),
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

    # Emergency overrides (`orders.services.order_override_*`): no person-facing action of
    # their own in the FSM table; the services check `orders.override_order`.
    @transition(field=status, source=S.ON_HOLD, target=S.PAID)
    def force_release(self):
        """A supervisor lifted a hold the system set (with a written reason)."""

    @transition(field=status, source=S.ON_HOLD, target=S.SHIPPED)
    def force_ship(self):
        """A supervisor shipped an order the system held, without (all of) the stock lock."""


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("订单"))
    sku = models.ForeignKey("inventory.Sku", on_delete=models.PROTECT, null=True, blank=True, related_name="order_lines", verbose_name=_("SKU"))
    platform_sku_id = models.CharField(_("平台 SKU ID"), max_length=100, blank=True)
    title = models.CharField(_("商品名称"), max_length=255)
    quantity = models.PositiveIntegerField(_("数量"))
    unit_price = models.DecimalField(_("单价"), max_digits=12, decimal_places=2, default=0)
    discount_amount = models.DecimalField(_("行优惠"), max_digits=12, decimal_places=2, default=0)
    is_gift = models.BooleanField(_("赠品"), default=False)
    # The platform's own id of the line (Taobao oid, Shopify line_item id, PDD sku_id): a
    # platform update is matched onto the stored lines by it.
    platform_line_id = models.CharField(_("平台行 ID"), max_length=100, blank=True)

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
    # Changes the platform sends (orders.ingest).
    PLATFORM_UPDATED = "platform_updated", _("平台更新订单")
    ADDRESS_CHANGED = "address_changed", _("收货地址已修改")
    ADDRESS_CHANGE_REFUSED = "address_change_refused", _("平台改址未生效")
    PLATFORM_CANCELLED = "platform_cancelled", _("平台已取消(已发货)")
    REFUND_REQUESTED = "refund_requested", _("买家申请退款")
    REFUND_CLOSED = "refund_closed", _("退款申请已关闭")
    # Carrier scans (orders.shipping): one public kind per normalized state, plus the
    # internal ones staff act on.
    TRACKING_PICKED_UP = "tracking_picked_up", _("快递已揽收")
    TRACKING_IN_TRANSIT = "tracking_in_transit", _("运输中")
    TRACKING_OUT_FOR_DELIVERY = "tracking_out_for_delivery", _("派送中")
    TRACKING_DELIVERED = "tracking_delivered", _("快递已签收")
    TRACKING_EXCEPTION = "tracking_exception", _("快递异常")
    TRACKING_RETURNED = "tracking_returned", _("快递退回")
    SHIPMENT_EXCEPTION = "shipment_exception", _("包裹异常")
    SHIPMENT_RETURNED = "shipment_returned", _("包裹退回")
    # Emergency overrides by a supervisor: internal only (never in PUBLIC_WORDING).
    OVERRIDE_RELEASED = "override_released", _("紧急放行:解除系统挂起")
    OVERRIDE_SHIPPED = "override_shipped", _("紧急放行:无库存锁发货")
    # Tracking numbers back to the platform (orders.tracking_push): internal only.
    TRACKING_PUSHED = "tracking_pushed", _("运单号已回传平台")
    TRACKING_PUSH_FAILED = "tracking_push_failed", _("运单号回传平台失败")
    # E-waybills (orders.waybills): internal only.
    WAYBILL_ISSUED = "waybill_issued", _("已申请电子面单")


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
    EventKind.ADDRESS_CHANGED: _("收货地址已更新"),
    EventKind.REFUND_REQUESTED: _("退款申请已收到,正在处理"),
    # Carrier scans: the carrier's own text may name couriers and their phone numbers, so
    # the customer reads a fixed wording per state (the staff see the scan text).
    EventKind.TRACKING_PICKED_UP: _("快递已揽收"),
    EventKind.TRACKING_IN_TRANSIT: _("包裹运输中"),
    EventKind.TRACKING_OUT_FOR_DELIVERY: _("快递员正在派送"),
    EventKind.TRACKING_DELIVERED: _("包裹已签收"),
    EventKind.TRACKING_EXCEPTION: _("包裹运输异常,客服正在跟进"),
    EventKind.TRACKING_RETURNED: _("包裹已退回"),
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
    history = HistoricalRecords(m2m_fields=[shops, warehouses])  # audit (issue 17)

    class Meta:
        verbose_name = _("员工数据范围")
        verbose_name_plural = pgettext_lazy("plural", "员工数据范围")

    def __str__(self) -> str:
        return str(self.user)


# --- ingest (issue 14): customers across platforms ------------------------------------------
class CustomerIdentity(models.Model):
    """A stable platform identity of a customer, used when the phone is masked or encrypted:
    the platform's buyer id (Taobao buyer_open_uid / nick, PDD open_address_id, Shopify
    customer id …) or Taobao's OAID. One identity belongs to one customer."""

    class Kind(models.TextChoices):
        BUYER_ID = "buyer_id", _("平台买家 ID")
        OAID = "oaid", _("淘宝 OAID")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities", verbose_name=_("客户"))
    platform = models.CharField(_("平台"), max_length=20, choices=Platform.choices)
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices)
    value = models.CharField(_("标识"), max_length=200)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("客户平台标识")
        verbose_name_plural = pgettext_lazy("plural", "客户平台标识")
        constraints = [models.UniqueConstraint(fields=["platform", "kind", "value"], name="uniq_customer_identity")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.kind}"


class CustomerMerge(models.Model):
    """Two customer rows found to be one person: `merged`'s orders and identities moved to
    `kept` (listed in `moved`, so a supervisor can undo it). The merged row stays."""

    kept = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+", verbose_name=_("保留客户"))
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+", verbose_name=_("被合并客户"))
    reason = models.CharField(_("原因"), max_length=255)
    moved = models.JSONField(_("迁移内容"), default=dict, blank=True,
                             help_text=_("orders / identities 的 id,保留客户新增的标签,被合并客户原手机号"))
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", verbose_name=_("操作人"))
    actor_label = models.CharField(_("操作人"), max_length=150, blank=True)
    source = models.CharField(_("来源"), max_length=20, choices=Source.CHOICES, default=Source.SYSTEM)
    merged_at = models.DateTimeField(_("合并时间"), default=timezone.now)
    undone_at = models.DateTimeField(_("撤销时间"), null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+", verbose_name=_("撤销人"))
    undone_by_label = models.CharField(_("撤销人"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("客户合并记录")
        verbose_name_plural = pgettext_lazy("plural", "客户合并记录")
        ordering = ["-merged_at", "-id"]
        permissions = [("undo_customermerge", _("可撤销客户合并"))]

    def __str__(self) -> str:
        return f"#{self.merged_id} → #{self.kept_id}"


# --- sync (issue 14): per-shop sync state, apart from the Shop row ------------------------------
class SyncStatus(models.TextChoices):
    NEVER = "never", _("从未同步")
    RUNNING = "running", _("同步中")
    OK = "ok", _("正常")
    PARTIAL = "partial", _("部分失败")  # the run finished; some payloads were refused (see last_error)
    FAILED = "failed", _("失败")  # the run stopped (platform unreachable, rate limited, error envelope)


class ShopSyncState(models.Model):
    """Where one shop's order sync stands, written only by the sync (`orders.sync`).

    Its own table, so saving a shop in the admin never rewinds a running sync. The cursor is
    opaque (each adapter defines its own) and is stored only after a page's orders are
    committed. The lease (`lease_owner`, `lease_expires_at`) is how one sync per shop runs at
    a time across every cluster on every machine: taken by a conditional UPDATE, renewed per
    page, released at the end; a killed worker's lease simply expires.
    """

    shop = models.OneToOneField(Shop, on_delete=models.CASCADE, related_name="sync_state", verbose_name=_("店铺"))
    cursor = models.TextField(_("同步游标"), blank=True, help_text=_("平台适配器自定义的游标,每页入库后才前进"))
    start_from = models.DateTimeField(_("首次同步起点"), null=True, blank=True,
                                      help_text=_("游标为空时从这里开始(为空 = 当前时间减回溯时长)"))
    status = models.CharField(_("状态"), max_length=10, choices=SyncStatus.choices, default=SyncStatus.NEVER)
    last_started_at = models.DateTimeField(_("最近开始"), null=True, blank=True)
    last_finished_at = models.DateTimeField(_("最近结束"), null=True, blank=True)
    last_succeeded_at = models.DateTimeField(_("最近成功"), null=True, blank=True)
    last_pages = models.PositiveIntegerField(_("页数"), default=0)
    last_fetched = models.PositiveIntegerField(_("拉取"), default=0)
    last_created = models.PositiveIntegerField(_("新建"), default=0)
    last_updated = models.PositiveIntegerField(_("更新"), default=0)
    last_unchanged = models.PositiveIntegerField(_("未变"), default=0)
    last_failed = models.PositiveIntegerField(_("失败"), default=0)
    newest_platform_updated_at = models.DateTimeField(_("最新平台更新时间"), null=True, blank=True)
    lag_seconds = models.PositiveIntegerField(_("延迟(秒)"), null=True, blank=True,
                                              help_text=_("最近一次同步结束时:当前时间 − 最新平台更新时间"))
    last_error = models.TextField(_("最近错误"), blank=True)
    consecutive_failures = models.PositiveIntegerField(_("连续失败次数"), default=0)
    next_run_at = models.DateTimeField(_("下次同步"), null=True, blank=True, db_index=True)
    lease_owner = models.CharField(_("租约持有者"), max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(_("租约到期"), null=True, blank=True)

    class Meta:
        verbose_name = _("同步状态")
        verbose_name_plural = pgettext_lazy("plural", "同步状态")
        ordering = ["shop__code"]

    def __str__(self) -> str:
        return f"{self.shop} · {self.get_status_display()}"

    def leased(self, now=None) -> bool:
        now = now or timezone.now()
        return bool(self.lease_expires_at and self.lease_expires_at > now)

# --- stockpush (issue 14): stock back to channels ------------------------------------------------
# Written only by `orders.stock_push`. Stock moves are found by `StockLevel.updated_at` (every
# stock path keeps it fresh); config changes that move a channel figure without touching a pool
# (safety stock, buffer, a new mapping) leave a `StockPushDirty` mark after commit.
class StockPushCursor(models.Model):
    """One row (pk=1): how far the stock-push job has read, and its lease."""

    scanned_until = models.DateTimeField(_("已扫描至"), null=True, blank=True)
    full_pass_at = models.DateTimeField(_("上次全量核对"), null=True, blank=True,
                                        help_text=_("留空 = 下次运行核对全部映射 SKU"))
    lease_until = models.DateTimeField(_("租约到期"), null=True, blank=True)
    lease_owner = models.CharField(_("租约持有者"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("库存回写游标")
        verbose_name_plural = pgettext_lazy("plural", "库存回写游标")

    def __str__(self) -> str:
        return f"{self.scanned_until}"


class StockPushDirty(models.Model):
    """A SKU whose channel figure may have changed without a stock move (config edits)."""

    sku = models.OneToOneField("inventory.Sku", on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"))
    marked_at = models.DateTimeField(_("标记时间"), db_index=True)

    class Meta:
        verbose_name = _("待回写 SKU")
        verbose_name_plural = pgettext_lazy("plural", "待回写 SKU")

    def __str__(self) -> str:
        return f"{self.sku_id} @ {self.marked_at}"


class StockPushState(models.Model):
    """What one channel listing (shop × platform SKU id) was last told, and whether a retry is due."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+", verbose_name=_("店铺"))
    platform_sku_id = models.CharField(_("平台 SKU ID"), max_length=100)
    sku = models.ForeignKey("inventory.Sku", on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"))
    last_quantity = models.IntegerField(_("上次成功回写数量"), null=True, blank=True)
    last_pushed_at = models.DateTimeField(_("上次成功回写时间"), null=True, blank=True)
    offered = models.BooleanField(_("在售"), default=True, help_text=_("低于安全库存时停售(回写 0),恢复后重新上架"))
    pending = models.BooleanField(_("待重试"), default=False, db_index=True)
    failures = models.PositiveIntegerField(_("连续失败次数"), default=0)
    last_error = models.TextField(_("最近错误"), blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("渠道库存状态")
        verbose_name_plural = pgettext_lazy("plural", "渠道库存状态")
        ordering = ["shop_id", "platform_sku_id"]
        constraints = [
            models.UniqueConstraint(fields=["shop", "platform_sku_id"], name="uniq_stock_push_state"),
        ]

    def __str__(self) -> str:
        return f"{self.shop_id}:{self.platform_sku_id} = {self.last_quantity}"


class StockPush(models.Model):
    """The log: one row per push attempt (what, when, to which shop, the HTTP outcome)."""

    class Reason(models.TextChoices):
        CHANGED = "changed", _("库存变动")
        BELOW_SAFETY = "below_safety", _("低于安全库存,停售")
        RECOVERED = "recovered", _("恢复,重新上架")
        RETRY = "retry", _("失败重试")
        MANUAL = "manual", _("手动回写")

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+", verbose_name=_("店铺"))
    sku = models.ForeignKey("inventory.Sku", on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"))
    platform_sku_id = models.CharField(_("平台 SKU ID"), max_length=100)
    platform_item_id = models.CharField(_("平台商品 ID"), max_length=100, blank=True)
    quantity = models.IntegerField(_("回写数量"))
    available = models.IntegerField(_("可用库存"))
    buffer = models.IntegerField(_("应急保留"), default=0)
    safety_stock = models.IntegerField(_("安全库存"), default=0)
    reason = models.CharField(_("原因"), max_length=20, choices=Reason.choices, default=Reason.CHANGED)
    ok = models.BooleanField(_("成功"), default=False)
    http_status = models.PositiveSmallIntegerField(_("HTTP 状态"), null=True, blank=True)
    error = models.TextField(_("错误"), blank=True)
    duration_ms = models.PositiveIntegerField(_("耗时(毫秒)"), default=0)
    actor_label = models.CharField(_("操作人"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("库存回写记录")
        verbose_name_plural = pgettext_lazy("plural", "库存回写记录")
        ordering = ["-id"]
        indexes = [models.Index(fields=["shop", "platform_sku_id", "-id"])]

    def __str__(self) -> str:
        return f"{self.shop_id}:{self.platform_sku_id} ← {self.quantity} ({'ok' if self.ok else 'failed'})"


class StockAlert(models.Model):
    """A SKU below its safety stock in one country's serving warehouses (open until it recovers)."""

    sku = models.ForeignKey("inventory.Sku", on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"))
    country = models.CharField(_("国家"), max_length=2)
    available = models.IntegerField(_("可用库存"))
    threshold = models.IntegerField(_("安全库存"))
    opened_at = models.DateTimeField(_("触发时间"), db_index=True)
    resolved_at = models.DateTimeField(_("恢复时间"), null=True, blank=True)
    recovered_available = models.IntegerField(_("恢复时可用"), null=True, blank=True)

    class Meta:
        verbose_name = _("安全库存预警")
        verbose_name_plural = pgettext_lazy("plural", "安全库存预警")
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "country"], condition=Q(resolved_at__isnull=True),
                                    name="uniq_open_stock_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}/{self.country}: {self.available} < {self.threshold}"


# === Shipments and carrier tracking (orders.shipping, orders.carriers) ===============

class ShipmentStatus(models.TextChoices):
    CREATED = "created", _("已建包裹")
    PICKED = "picked", _("已拣货")
    PACKED = "packed", _("已打包")
    SHIPPED = "shipped", _("已揽收")
    IN_TRANSIT = "in_transit", _("运输中")
    DELIVERED = "delivered", _("已签收")
    EXCEPTION = "exception", _("异常")
    RETURNED = "returned", _("已退回")


class TrackingState(models.TextChoices):
    """A carrier scan, normalized across carriers (`orders.carriers`)."""

    PICKED_UP = "picked_up", _("已揽收")
    IN_TRANSIT = "in_transit", _("运输中")
    OUT_FOR_DELIVERY = "out_for_delivery", _("派送中")
    DELIVERED = "delivered", _("已签收")
    EXCEPTION = "exception", _("异常")
    RETURNED = "returned", _("已退回")


class TrackingProvider(models.TextChoices):
    """Who tells us where a parcel is: a tracking aggregator, or the local sandbox."""

    KDNIAO = "kdniao", _("快递鸟")
    KUAIDI100 = "kuaidi100", _("快递100")
    SANDBOX = "sandbox", _("沙箱快递")


SH = ShipmentStatus
SHIPMENT_AWAY = [SH.SHIPPED, SH.IN_TRANSIT, SH.EXCEPTION]  # with the carrier, not yet at the end


class CarrierAccount(models.Model):
    """Credentials at a tracking provider. KDNiao: EBusinessID + AppKey (signs queries and
    pushes). Kuaidi100: customer + key (queries) and the salt given at subscription (pushes)."""

    provider = models.CharField(_("服务商"), max_length=20, choices=TrackingProvider.choices)
    account_id = models.CharField(_("商户 ID"), max_length=64, blank=True,
                                  help_text=_("快递鸟 EBusinessID;快递100 customer"))
    app_key = models.CharField(_("密钥"), max_length=200, blank=True, help_text=_("快递鸟 AppKey;快递100 key"))
    salt = models.CharField(_("推送签名 salt"), max_length=200, blank=True, help_text=_("快递100 订阅推送的 salt"))
    api_url = models.URLField(_("接口地址"), blank=True, help_text=_("留空 = 官方地址"))
    is_default = models.BooleanField(_("默认查询渠道"), default=False, help_text=_("新包裹通过此服务商查询轨迹"))
    subscribe = models.BooleanField(_("订阅推送"), default=False,
                                    help_text=_("新发出的包裹向服务商订阅轨迹推送(快递鸟 1008 / 快递100 订阅);"
                                                "推送地址见 README“订阅推送”"))
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("物流查询账号")
        verbose_name_plural = pgettext_lazy("plural", "物流查询账号")
        constraints = [models.UniqueConstraint(fields=["provider", "account_id"], name="uniq_carrier_account")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.account_id}".strip()


class Shipment(ConcurrentTransitionMixin, models.Model):
    """One parcel of an order from one warehouse. Its status follows the carrier's scans;
    the order's status follows its shipments (`orders.shipping`)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="shipments", verbose_name=_("订单"))
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="shipments", verbose_name=_("发货仓"))
    carrier = models.CharField(_("快递公司"), max_length=20, blank=True, help_text=_("快递公司编码,如 SF、YTO"))
    tracking_number = models.CharField(_("运单号"), max_length=40, blank=True, db_index=True)
    provider = models.CharField(_("轨迹服务商"), max_length=20, choices=TrackingProvider.choices,
                                default=TrackingProvider.SANDBOX)
    status = FSMField(_("状态"), max_length=20, choices=ShipmentStatus.choices, default=SH.CREATED, protected=True,
                      db_index=True)
    exception_flag = models.BooleanField(_("异常标记"), default=False)
    exception_note = models.CharField(_("异常说明"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("创建时间"), default=timezone.now)
    shipped_at = models.DateTimeField(_("揽收时间"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    last_scan_at = models.DateTimeField(_("最新轨迹时间"), null=True, blank=True)
    next_poll_at = models.DateTimeField(_("下次查询"), null=True, blank=True, db_index=True)
    poll_failures = models.PositiveIntegerField(_("连续查询失败"), default=0)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("包裹")
        verbose_name_plural = pgettext_lazy("plural", "包裹")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["carrier", "tracking_number"]), models.Index(fields=["status", "next_poll_at"])]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_number}".strip() or f"#{self.pk}"

    # --- transitions: state only ---------------------------------------------------------
    @transition(field=status, source=SH.CREATED, target=SH.PICKED, permission="orders.pack_order")
    def pick(self):
        """Goods picked from the shelves."""

    @transition(field=status, source=[SH.CREATED, SH.PICKED], target=SH.PACKED, permission="orders.pack_order")
    def pack(self):
        """Packed, waiting for the carrier."""

    @transition(field=status, source=[SH.CREATED, SH.PICKED, SH.PACKED], target=SH.SHIPPED,
                permission="orders.ship_order")
    def ship(self):
        """Handed to the carrier (a person said so, or the carrier's first scan)."""

    @transition(field=status, source=[SH.SHIPPED, SH.EXCEPTION], target=SH.IN_TRANSIT, permission="orders.ship_order")
    def move(self):
        """A scan on the way (also clears an exception state when the parcel moves again)."""

    @transition(field=status, source=[SH.SHIPPED, SH.IN_TRANSIT], target=SH.EXCEPTION, permission="orders.ship_order")
    def flag_exception(self):
        """The carrier reports a problem (问题件)."""

    @transition(field=status, source=SHIPMENT_AWAY, target=SH.DELIVERED, permission="orders.deliver_order")
    def deliver(self):
        """Signed for."""

    @transition(field=status, source=SHIPMENT_AWAY, target=SH.RETURNED, permission="orders.ship_order")
    def mark_returned(self):
        """Came back to the sender (退回/退签)."""


class ShipmentLine(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="lines", verbose_name=_("包裹"))
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="shipment_lines",
                                   verbose_name=_("订单行"))
    quantity = models.PositiveIntegerField(_("数量"))

    class Meta:
        verbose_name = _("包裹商品")
        verbose_name_plural = pgettext_lazy("plural", "包裹商品")
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="shipment_line_quantity_positive")]


class TrackingEvent(models.Model):
    """One carrier scan of a shipment, in the carrier's own time; duplicates (same key) are dropped."""

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="tracking_events",
                                 verbose_name=_("包裹"))
    occurred_at = models.DateTimeField(_("轨迹时间"), db_index=True)
    description = models.CharField(_("轨迹描述"), max_length=500, blank=True)
    location = models.CharField(_("地点"), max_length=200, blank=True)
    state = models.CharField(_("状态"), max_length=20, choices=TrackingState.choices)
    carrier_state = models.CharField(_("快递状态码"), max_length=20, blank=True)
    key = models.CharField(_("去重键"), max_length=64)
    raw = models.JSONField(_("原始报文"), default=dict, blank=True)
    received_at = models.DateTimeField(_("接收时间"), default=timezone.now)

    class Meta:
        verbose_name = _("物流轨迹")
        verbose_name_plural = pgettext_lazy("plural", "物流轨迹")
        ordering = ["occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["shipment", "key"], name="uniq_tracking_event_key")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.description}"


class CarrierSubscription(models.Model):
    """A parcel subscribed at its tracking provider, so the provider pushes its scans
    (`orders.carrier_subscriptions`). One row per parcel; polling stays on as the safety net."""

    class Status(models.TextChoices):
        PENDING = "pending", _("待订阅")
        SUBSCRIBED = "subscribed", _("已订阅")
        FAILED = "failed", _("订阅失败")

    shipment = models.OneToOneField("Shipment", on_delete=models.CASCADE, related_name="subscription",
                                    verbose_name=_("包裹"))
    provider = models.CharField(_("服务商"), max_length=20, choices=TrackingProvider.choices)
    account = models.ForeignKey(CarrierAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                verbose_name=_("账号"))
    status = models.CharField(_("状态"), max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次尝试"), null=True, blank=True, db_index=True)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)
    answer = models.CharField(_("服务商答复"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("创建时间"), default=timezone.now)
    subscribed_at = models.DateTimeField(_("订阅时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("轨迹订阅")
        verbose_name_plural = pgettext_lazy("plural", "轨迹订阅")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} #{self.shipment_id}"


class CarrierPush(models.Model):
    """Durable inbox of carrier pushes: the raw body is stored (after its signature checked
    out) before anything is processed; processing is idempotent and may be retried."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("已接收")
        PROCESSED = "processed", _("已处理")
        FAILED = "failed", _("处理失败")

    provider = models.CharField(_("服务商"), max_length=20, choices=TrackingProvider.choices)
    account = models.ForeignKey(CarrierAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                verbose_name=_("账号"))
    body = models.TextField(_("原始报文"))
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(_("处理次数"), default=0)
    error = models.TextField(_("错误"), blank=True)
    result = models.JSONField(_("处理结果"), default=dict, blank=True)
    received_at = models.DateTimeField(_("接收时间"), default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("物流推送")
        verbose_name_plural = pgettext_lazy("plural", "物流推送")
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} #{self.pk}"

# --- webhooks: the durable inbox (helper `webhooks`, issue 14) ------------------------------------
class WebhookStatus(models.TextChoices):
    RECEIVED = "received", _("已接收")
    PROCESSING = "processing", _("处理中")
    DONE = "done", _("已处理")
    FAILED = "failed", _("失败待重试")
    DEAD = "dead", _("已放弃")


class WebhookEvent(models.Model):
    """One verified platform webhook delivery, stored before it is answered.

    Only deliveries whose signature checked out land here (an unverified sender's payload is
    never stored). A redelivery (same event id, or the same body) is the same row. Processing
    happens in `orders.webhook_tasks`; ``next_attempt_at`` is when the retry sweep may pick
    the row up (a received row that no worker took, a failed one after its back-off, or a
    processing one whose worker died).
    """

    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="webhook_events", verbose_name=_("店铺"))
    platform = models.CharField(_("平台"), max_length=20, choices=Platform.choices)
    topic = models.CharField(_("主题"), max_length=100, blank=True)
    event_id = models.CharField(_("事件 ID"), max_length=200, blank=True,
                                help_text=_("平台的投递 ID(如 X-Shopify-Webhook-Id);重投时不变"))
    body = models.TextField(_("原始报文"))
    body_sha256 = models.CharField(_("报文 SHA-256"), max_length=64)
    headers = models.JSONField(_("请求头"), default=dict, blank=True)
    received_at = models.DateTimeField(_("接收时间"), default=timezone.now, db_index=True)
    status = models.CharField(_("状态"), max_length=20, choices=WebhookStatus.choices,
                              default=WebhookStatus.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(_("处理次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次尝试"), null=True, blank=True)
    last_error = models.TextField(_("最近错误"), blank=True)
    result = models.CharField(_("处理结果"), max_length=200, blank=True)
    processed_at = models.DateTimeField(_("处理完成时间"), null=True, blank=True)
    duplicates = models.PositiveIntegerField(_("重复投递次数"), default=0)
    replayed_by = models.CharField(_("最近重放人"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("Webhook 事件")
        verbose_name_plural = pgettext_lazy("plural", "Webhook 事件")
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["shop", "event_id"], condition=~Q(event_id=""),
                                    name="webhook_event_unique_event_id"),
            models.UniqueConstraint(fields=["shop", "body_sha256"], name="webhook_event_unique_body"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in WebhookStatus]), name="webhook_event_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_event_due")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.topic or '-'}:{self.event_id or self.body_sha256[:12]}"


# --- pick batches and merged parcels (helper `batches`, issue 15) --------------------------------
class PickBatch(models.Model):
    """One warehouse's pick run (09:00, 15:00 or on demand): its parcels, the pick list and
    the packing lists. Built by `orders.batches.batch_build`; an order (per warehouse) is in
    at most one batch, so the next batch never picks it again."""

    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="pick_batches",
                                  verbose_name=_("仓库"))
    number = models.CharField(_("批次号"), max_length=40, unique=True)
    slot = models.CharField(_("批次时间"), max_length=10, blank=True, help_text=_("如 09:00;手动建立为空"))
    created_at = models.DateTimeField(_("建立时间"), default=timezone.now, db_index=True)
    created_by = models.CharField(_("建立人"), max_length=150, blank=True)
    printed_at = models.DateTimeField(_("打印时间"), null=True, blank=True)
    printed_by = models.CharField(_("打印人"), max_length=150, blank=True)
    order_count = models.PositiveIntegerField(_("订单数"), default=0)
    parcel_count = models.PositiveIntegerField(_("包裹数"), default=0)

    class Meta:
        verbose_name = _("拣货批次")
        verbose_name_plural = pgettext_lazy("plural", "拣货批次")
        ordering = ["-created_at", "-id"]
        permissions = [("build_pickbatch", _("可建立/打印拣货批次、撤销合单"))]

    def __str__(self) -> str:
        return self.number


class Parcel(models.Model):
    """One box of a batch: one order, or several merged (合单) — same buyer, same receiver and
    address, same warehouse, no presale/normal mix, every shop allowing it."""

    batch = models.ForeignKey(PickBatch, on_delete=models.CASCADE, related_name="parcels", verbose_name=_("批次"))
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="+",
                                  verbose_name=_("仓库"))
    code = models.CharField(_("包裹号"), max_length=50, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                 verbose_name=_("客户"))
    is_presale = models.BooleanField(_("预售"), default=False)
    priority = models.BooleanField(_("优先"), default=False, help_text=_("预售优先发货:先拣"))
    position = models.PositiveIntegerField(_("顺序"), default=0)
    created_at = models.DateTimeField(_("建立时间"), default=timezone.now)

    class Meta:
        verbose_name = _("批次包裹")
        verbose_name_plural = pgettext_lazy("plural", "批次包裹")
        ordering = ["batch", "position", "id"]

    def __str__(self) -> str:
        return self.code


class ParcelOrder(models.Model):
    """Which order (its part in this warehouse) is in which parcel, and its shipment."""

    parcel = models.ForeignKey(Parcel, on_delete=models.CASCADE, related_name="members", verbose_name=_("包裹"))
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="parcel_memberships",
                              verbose_name=_("订单"))
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="+",
                                  verbose_name=_("仓库"))
    shipment = models.OneToOneField(Shipment, on_delete=models.PROTECT, null=True, blank=True, related_name="parcel_member",
                                    verbose_name=_("发货包裹"))

    class Meta:
        verbose_name = _("包裹订单")
        verbose_name_plural = pgettext_lazy("plural", "包裹订单")
        ordering = ["parcel", "id"]
        constraints = [models.UniqueConstraint(fields=["order", "warehouse"], name="uniq_parcel_order_warehouse")]


class OrderOverride(models.Model):
    """One emergency override a supervisor made, with the reason they wrote; reviewed later."""

    class Kind(models.TextChoices):
        RELEASE = "release", _("解除系统挂起")
        SHIP = "ship", _("无库存锁发货")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="overrides", verbose_name=_("订单"))
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    reason = models.CharField(_("原因"), max_length=200)
    detail = models.JSONField(_("明细"), default=dict, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", verbose_name=_("操作人"))
    actor_label = models.CharField(_("操作人"), max_length=150, blank=True)
    at = models.DateTimeField(_("时间"), default=timezone.now, db_index=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("复核人"))
    reviewed_at = models.DateTimeField(_("复核时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("紧急放行记录")
        verbose_name_plural = pgettext_lazy("plural", "紧急放行记录")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind}"


class TrackingPush(models.Model):
    """Outbox: one parcel's tracking number to push back to its platform (issue 15).

    Written in the transaction that ships the parcel (`orders.tracking_push.enqueue`), pushed
    after commit and by the retry schedule. Holds no secrets: request/response are summaries."""

    class Status(models.TextChoices):
        PENDING = "pending", _("待回传")
        SENT = "sent", _("已回传")
        FAILED = "failed", _("回传失败")
        NOT_APPLICABLE = "not_applicable", _("无需回传")

    shipment = models.OneToOneField(Shipment, on_delete=models.CASCADE, related_name="tracking_push",
                                    verbose_name=_("包裹"))
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="tracking_pushes", verbose_name=_("订单"))
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="tracking_pushes", verbose_name=_("店铺"))
    platform = models.CharField(_("平台"), max_length=20)
    carrier = models.CharField(_("快递公司"), max_length=20, blank=True)
    tracking_number = models.CharField(_("运单号"), max_length=40, blank=True)
    package_no = models.PositiveIntegerField(_("包裹序号"), default=1)
    status = models.CharField(_("状态"), max_length=20, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次尝试"), null=True, blank=True, db_index=True)
    claimed_until = models.DateTimeField(_("处理中至"), null=True, blank=True)
    last_error = models.TextField(_("最近错误"), blank=True)
    note = models.CharField(_("说明"), max_length=255, blank=True)
    request_summary = models.JSONField(_("请求摘要"), default=dict, blank=True)
    response_summary = models.JSONField(_("响应摘要"), default=dict, blank=True)
    platform_reference = models.CharField(_("平台记录号"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("创建时间"), default=timezone.now)
    sent_at = models.DateTimeField(_("回传时间"), null=True, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("运单回传")
        verbose_name_plural = pgettext_lazy("plural", "运单回传")
        ordering = ["-created_at", "-id"]
        permissions = [("retry_trackingpush", _("可重新回传运单号"))]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.platform}:{self.tracking_number} ({self.status})"


# --- e-waybills and receiver decryption (helper `waybill`, issues 15 + 14) ------------------------
class Waybill(models.Model):
    """The e-waybill (电子面单) of one batch parcel: the carrier's tracking number and the
    sort/route codes its label prints. Requested by `orders.waybills`; one per parcel, kept."""

    parcel = models.OneToOneField(Parcel, on_delete=models.PROTECT, related_name="waybill", verbose_name=_("批次包裹"))
    carrier = models.CharField(_("快递公司"), max_length=20)
    tracking_number = models.CharField(_("运单号"), max_length=40, unique=True)
    provider = models.CharField(_("面单服务商"), max_length=20, choices=TrackingProvider.choices)
    sort_code = models.CharField(_("大头笔"), max_length=100, blank=True)
    package_center = models.CharField(_("集包地"), max_length=100, blank=True)
    sorting_code = models.CharField(_("分拣码"), max_length=100, blank=True)
    requested_at = models.DateTimeField(_("申请时间"), default=timezone.now)
    requested_by = models.CharField(_("申请人"), max_length=150, blank=True)
    printed_at = models.DateTimeField(_("打印时间"), null=True, blank=True)
    printed_by = models.CharField(_("打印人"), max_length=150, blank=True)
    print_count = models.PositiveIntegerField(_("打印次数"), default=0)

    class Meta:
        verbose_name = _("电子面单")
        verbose_name_plural = pgettext_lazy("plural", "电子面单")
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_number}"


class ReceiverDecryption(models.Model):
    """Audit: one decryption of an order's masked/encrypted receiver through its platform's
    adapter — who, when, which order, why. The clear text itself is never stored."""

    class Reason(models.TextChoices):
        PRINT_WAYBILL = "print_waybill", _("打印面单")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="receiver_decryptions",
                              verbose_name=_("订单"))
    waybill = models.ForeignKey(Waybill, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                verbose_name=_("电子面单"))
    reason = models.CharField(_("原因"), max_length=30, choices=Reason.choices, default=Reason.PRINT_WAYBILL)
    platform = models.CharField(_("平台"), max_length=20)
    fields = models.JSONField(_("解密字段"), default=list, blank=True)
    succeeded = models.BooleanField(_("成功"), default=True)
    detail = models.CharField(_("说明"), max_length=300, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", verbose_name=_("操作人"))
    actor_label = models.CharField(_("操作人"), max_length=150, blank=True)
    at = models.DateTimeField(_("时间"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("收件人解密记录")
        verbose_name_plural = pgettext_lazy("plural", "收件人解密记录")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.reason} {self.at:%Y-%m-%d %H:%M}"


register_user_history()  # audit (issue 17): staff accounts, their roles (groups) and permissions
