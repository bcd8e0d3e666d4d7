"""Admin forms for inventory: routing-rule conditions and stock receipts / stocktakes."""

from __future__ import annotations

import json

from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from inventory.conditions import FIELDS, OPS
from inventory.models import RoutingRule, Sku, Warehouse

CONDITIONS_EXAMPLE = {
    "all": [
        {"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},
        {"not": {"field": "sku_category", "op": "eq", "value": "折叠盆"}},
    ]
}


def _conditions_help_text() -> str:
    return _(
        "JSON 条件,留空或 {} 表示匹配所有订单。组合:all / any(数组)、not(单个条件);"
        "单个条件为 {\"field\", \"op\", \"value\"}。字段:%(fields)s;运算:%(ops)s。示例:%(example)s"
    ) % {
        "fields": ", ".join(FIELDS),
        "ops": ", ".join(OPS),
        "example": json.dumps(CONDITIONS_EXAMPLE, ensure_ascii=False),
    }


conditions_help_text = lazy(_conditions_help_text, str)


class ConditionsJSONField(forms.JSONField):
    default_error_messages = {"invalid": _("条件不是有效的 JSON:请检查引号、逗号和括号是否成对。")}

    def to_python(self, value):
        # An empty box means "match every order" ({}), never NULL.
        value = super().to_python(value)
        return {} if value is None else value


class RoutingRuleForm(forms.ModelForm):
    conditions = ConditionsJSONField(
        label=_("条件"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "style": "font-family: monospace"}),
        help_text=conditions_help_text(),
    )

    mode = forms.ChoiceField(
        label=_("模式"), choices=RoutingRule.Mode.choices, required=False, initial=RoutingRule.Mode.PREFERRED,
        help_text=_("严格:目标仓库存不足时订单挂起(库存不足);优先:按优先级改由其他仓发货"),
    )

    class Meta:
        model = RoutingRule
        fields = ("name", "position", "warehouse", "mode", "conditions", "is_active", "note")

    def clean_mode(self) -> str:
        # Left out (an older client or script posting the form) means the default, preferred.
        return self.cleaned_data.get("mode") or RoutingRule.Mode.PREFERRED
    # Structural validation (unknown field, wrong operator…) runs in RoutingRule.clean(),
    # which ModelForm calls through full_clean(); its message lands on `conditions`.


class StockOperationForm(forms.Form):
    RECEIVE = "receive"
    STOCKTAKE = "stocktake"
    ADJUST = "adjust"
    OPERATIONS = [
        (RECEIVE, _("入库(增加在库数量)")),
        (STOCKTAKE, _("盘点(以实盘数量为准)")),
        (ADJUST, _("调整(正数增加、负数减少)")),
    ]

    operation = forms.ChoiceField(label=_("操作"), choices=OPERATIONS, initial=RECEIVE)
    warehouse = forms.ModelChoiceField(label=_("仓库"), queryset=Warehouse.objects.filter(is_active=True))
    sku = forms.ModelChoiceField(label=_("SKU"), queryset=Sku.objects.filter(is_active=True))
    # Range checks belong to the services (they give the clear message); the form only
    # makes sure the box holds a whole number.
    quantity = forms.IntegerField(
        label=_("数量"),
        help_text=_("入库:到货数量;盘点:实盘数量;调整:变动数量(可为负)"),
        error_messages={"invalid": _("数量必须是整数")},
    )
    reason = forms.CharField(label=_("原因/单据号"), required=False, max_length=200)
