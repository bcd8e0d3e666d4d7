"""`{% dashboard_home %}`: the admin home's panels (config/dashboard.py) for this person."""

from __future__ import annotations

from django import template

from config import dashboard

register = template.Library()


@register.inclusion_tag("admin/dashboard/home.html", takes_context=True)
def dashboard_home(context):
    request = context.get("request")
    if request is None or not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"panels": {}, "guide": []}
    return {**dashboard.home(request), "request": request, "csrf_token": context.get("csrf_token")}
