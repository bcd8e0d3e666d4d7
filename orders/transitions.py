"""Every action a person can take on an order, described once.

A transition's label, the permission that guards it, the inputs it takes from a person and
the event it writes live here; the admin buttons and their forms, the API (path names,
parameters, schema description), the roles (`config.roles` reads the FSM permissions) and
the services' dispatcher are derived from this table. Adding a transition means: the
`@transition` method on `Order`, its service in `orders.services`, and one entry below.

Actions that change no status (confirming lead-time stock) are listed too, with the
permission they need, so they get the same buttons, API and checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from orders.models import EventKind, HoldReason, Order

# Hold reasons a person may choose; the others (stock short, unmapped SKU, expired
# reservations, no lines) describe data and are set by the system only.
PERSON_HOLD_REASONS = (HoldReason.MANUAL, HoldReason.ADDRESS, HoldReason.RISK)


@dataclass(frozen=True)
class Param:
    """One input a person gives to an action (a form field, an API body key)."""

    name: str
    label: Promise
    kind: str = "text"  # text | choice | warehouse (one of the order's reserving warehouses) | any_warehouse
    max_length: int = 200
    choices: tuple = ()
    required: bool = False
    help_text: Promise | str = ""


@dataclass(frozen=True)
class Action:
    name: str
    label: Promise
    event: EventKind | None
    params: tuple[Param, ...] = ()
    # Only for actions that are not an FSM transition; transitions take theirs from `Order`.
    permission: str | None = None
    fsm: bool = True
    description: str = field(default="", compare=False)

    @property
    def required_permission(self) -> str | None:
        if not self.fsm:
            return self.permission
        meta = getattr(getattr(Order, self.name), "_django_fsm")
        return next(iter(meta.transitions.values())).permission


REASON = Param("reason", _("原因"), max_length=200)
NOTE = Param("note", _("说明"), max_length=255)
# Overrides need a written reason (checked again by the services: at least 5 characters).
OVERRIDE_MIN_REASON = 5
OVERRIDE_REASON = Param("reason", _("放行原因"), max_length=200, required=True,
                        help_text=_("必填,至少 5 个字,供事后复核"))

ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("pay", _("确认付款"), EventKind.PAID),
    Action("allocate", _("分仓预占"), EventKind.ALLOCATED),
    Action("hold", _("挂起"), EventKind.HELD, params=(
        Param("reason", _("挂起原因"), kind="choice",
              choices=tuple((r.value, r.label) for r in PERSON_HOLD_REASONS)),
        NOTE,
    )),
    Action("release", _("解除挂起"), EventKind.RELEASED, params=(NOTE,)),
    Action("confirm_stock", _("确认备货"), EventKind.STOCK_CONFIRMED, fsm=False,
           permission="inventory.confirm_reservation",
           description="备货(调拨)已落实:该订单的备货预占不再过期"),
    Action("pack", _("打包"), EventKind.PACKED),
    Action("ship", _("发货"), EventKind.SHIPPED, params=(
        Param("warehouse", _("发货仓"), kind="warehouse", max_length=40),
        Param("carrier", _("快递公司"), max_length=20, help_text=_("快递公司编码,如 SF、YTO、ZTO、EMS")),
        Param("tracking_number", _("运单号"), max_length=40),
    )),
    Action("deliver", _("确认签收"), EventKind.DELIVERED),
    Action("complete", _("完成"), EventKind.COMPLETED),
    Action("cancel", _("取消"), EventKind.CANCELLED, params=(REASON,)),
    Action("mark_returned", _("标记退货"), EventKind.RETURNED, params=(REASON,)),
    # Emergency overrides (supervisor only, always with a written reason; reviewed later).
    Action("override_release", _("紧急放行:解除系统挂起"), EventKind.OVERRIDE_RELEASED, fsm=False,
           permission="orders.override_order", params=(OVERRIDE_REASON,),
           description="解除系统设置的挂起(库存不足、SKU 未映射、预占过期、无商品行),回到已付款,不分仓"),
    Action("override_ship", _("紧急放行:无库存锁发货"), EventKind.OVERRIDE_SHIPPED, fsm=False,
           permission="orders.override_order", params=(
               OVERRIDE_REASON,
               Param("warehouse", _("发货仓"), kind="any_warehouse", max_length=40, required=True,
                     help_text=_("仓库编码:整单从该仓出库")),
               Param("carrier", _("快递公司"), max_length=20, help_text=_("快递公司编码,如 SF、YTO、ZTO、EMS")),
               Param("tracking_number", _("运单号"), max_length=40),
           ),
           description="系统挂起的订单没有(或只有部分)库存预占时发货:未预占的数量直接从所选仓的可用库存出库"),
)}


def action(name: str) -> Action:
    from config.errors import UnknownTransition

    try:
        return ACTIONS[name]
    except KeyError:
        raise UnknownTransition(f"未知的操作: {name}") from None


def api_description() -> str:
    """The transitions endpoint's description, from the table."""
    parts = []
    for a in ACTIONS.values():
        params = ", ".join(p.name + ("(必填)" if p.required else "") for p in a.params)
        parts.append(f"`{a.name}` ({a.label})" + (f" → {params}" if params else ""))
    return "操作: " + "; ".join(parts) + "。成功返回操作后的订单。"
