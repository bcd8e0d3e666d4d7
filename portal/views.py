"""The customer H5 pages: phone → code → my orders → one order's timeline.

Server-rendered, no script; every form is a POST with a CSRF token. The session holds the
phone once the code was right (`portal_phone`), and forgets it after
PORTAL_SESSION_IDLE_SECONDS without a request.
"""

from __future__ import annotations

import time
from functools import wraps

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from config.security import client_ip
from orders.masking import mask_phone
from orders.models import Order
from portal import pagecache, selectors, services
from portal.forms import CodeForm, PhoneForm
from portal.services import Outcome

PHONE_KEY = "portal_phone"
SEEN_KEY = "portal_seen"
PENDING_KEY = "portal_pending"
SEEN_GRANULARITY = 60  # seconds: refresh the idle clock at most once a minute (one session write)
PAGE_SIZE = 20


def _service_context() -> dict:
    return {"service_phone": settings.PORTAL_SERVICE_PHONE, "service_hours": settings.PORTAL_SERVICE_HOURS,
            "ttl_minutes": settings.PORTAL_CODE_TTL_SECONDS // 60}


def _render(request, template: str, context: dict | None = None, status: int = 200):
    return render(request, template, {**_service_context(), **(context or {})}, status=status)


def session_phone(request) -> str:
    """The phone this session logged in with, or '' (never logged in, or idle too long)."""
    session = request.session
    phone = session.get(PHONE_KEY)
    if not phone:
        return ""
    now = int(time.time())
    seen = int(session.get(SEEN_KEY) or 0)
    if now - seen > settings.PORTAL_SESSION_IDLE_SECONDS:
        for key in (PHONE_KEY, SEEN_KEY):
            session.pop(key, None)
        request.portal_expired = True
        return ""
    if now - seen >= SEEN_GRANULARITY:
        session[SEEN_KEY] = now
        session.set_expiry(settings.PORTAL_SESSION_IDLE_SECONDS)
    return phone


def portal_login_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        phone = session_phone(request)
        if not phone:
            if getattr(request, "portal_expired", False):
                request.session["portal_notice"] = "expired"
            return redirect("portal:start")
        request.portal_phone = phone
        return view(request, *args, **kwargs)

    return wrapper


def _log_in(request, phone: str) -> None:
    request.session.cycle_key()  # a new session id at login: no fixation
    request.session.pop(PENDING_KEY, None)
    request.session[PHONE_KEY] = phone
    request.session[SEEN_KEY] = int(time.time())
    request.session.set_expiry(settings.PORTAL_SESSION_IDLE_SECONDS)  # the row and cookie go too


@require_http_methods(["GET", "POST"])
def start(request):
    if session_phone(request):
        return redirect("portal:orders")
    notice = request.session.pop("portal_notice", "")
    form = PhoneForm(request.POST or None)
    error, status = "", 200
    if request.method == "POST" and form.is_valid():
        result = services.code_request(raw_phone=form.cleaned_data["phone"], ip=client_ip(request))
        if result.outcome == Outcome.SENT:
            request.session[PENDING_KEY] = result.phone
            return redirect("portal:verify")
        error, status = {
            Outcome.INVALID_PHONE: (_("请输入正确的手机号"), 200),
            Outcome.RATE_LIMITED: (_("获取验证码过于频繁,请稍后再试"), 429),
            Outcome.SMS_FAILED: (_("短信发送失败,请稍后再试"), 503),
        }[result.outcome]
    return _render(request, "portal/start.html", {"form": form, "error": error, "notice": notice}, status=status)


@require_http_methods(["GET", "POST"])
def verify(request):
    phone = request.session.get(PENDING_KEY)
    if not phone:
        return redirect("portal:start")
    form = CodeForm(request.POST or None)
    error, status, locked = "", 200, False
    if request.method == "POST" and form.is_valid():
        result = services.code_verify(phone=phone, code=form.cleaned_data["code"], ip=client_ip(request))
        if result.outcome == Outcome.OK:
            _log_in(request, phone)
            return redirect("portal:orders")
        if result.outcome == Outcome.WRONG:
            error = _("验证码错误,还可尝试 %(n)d 次") % {"n": result.attempts_left}
        elif result.outcome == Outcome.LOCKED:
            error, locked = _("错误次数过多,该验证码已失效,请重新获取"), True
        elif result.outcome == Outcome.EXPIRED:
            error, locked = _("验证码已过期或已失效,请重新获取"), True
        else:
            error, status = _("尝试过于频繁,请稍后再试"), 429
    context = {"form": form, "error": error, "locked": locked, "masked_phone": mask_phone(phone)}
    return _render(request, "portal/verify.html", context, status=status)


@require_POST
def resend(request):
    phone = request.session.get(PENDING_KEY)
    if not phone:
        return redirect("portal:start")
    result = services.code_request(raw_phone=phone, ip=client_ip(request))
    if result.outcome == Outcome.SENT:
        return redirect("portal:verify")
    message = _("获取验证码过于频繁,请稍后再试") if result.outcome == Outcome.RATE_LIMITED else _("短信发送失败,请稍后再试")
    status = 429 if result.outcome == Outcome.RATE_LIMITED else 503
    context = {"form": CodeForm(), "error": message, "locked": True, "masked_phone": mask_phone(phone)}
    return _render(request, "portal/verify.html", context, status=status)


def _list_content(*, phone: str, number: int) -> str:
    start = (number - 1) * PAGE_SIZE
    # One row more than a page tells whether there is a next one (no COUNT over all orders).
    orders = selectors.order_page(phone=phone, offset=start, limit=PAGE_SIZE + 1)
    cards = [selectors.card(order, phone=phone) for order in orders[:PAGE_SIZE]]
    page = {"number": number, "previous": number - 1 if number > 1 else None,
            "next": number + 1 if len(orders) > PAGE_SIZE else None}
    return render_to_string("portal/orders_content.html", {**_service_context(), "cards": cards, "page": page})


@require_http_methods(["GET"])
@portal_login_required
def order_list(request):
    phone = request.portal_phone
    try:
        number = max(1, min(int(request.GET.get("page", 1)), 10_000))
    except ValueError:
        number = 1
    if pagecache.enabled():
        # The fingerprint first, then the data: a fragment is never older than its key.
        fingerprint = pagecache.list_fingerprint(phone=phone, wanted=number * PAGE_SIZE + 1)
        content = pagecache.fragment(page="list", phone=phone, ident=number, fingerprint=fingerprint,
                                     render=lambda: _list_content(phone=phone, number=number))
    else:
        content = mark_safe(_list_content(phone=phone, number=number))  # noqa: S308 — our template's output
    return _render(request, "portal/orders.html", {"content": content, "masked_phone": mask_phone(phone)})


def _order_content(*, phone: str, order_id: int) -> str:
    try:
        order = selectors.order_detail(order_id)
    except Order.DoesNotExist:  # deleted since its id was looked up
        raise Http404 from None
    card = selectors.card(order, phone=phone, detail=True)
    return render_to_string("portal/order_content.html", {**_service_context(), "card": card})


@require_http_methods(["GET"])
@portal_login_required
def order_detail(request, token: str):
    phone = request.portal_phone
    if pagecache.enabled():
        order_id = pagecache.order_id_for_token(phone=phone, token=token)
        fingerprint = pagecache.detail_fingerprint(phone=phone, order_id=order_id)
        if fingerprint is None:  # no longer this phone's order (e.g. the receiver phone changed)
            raise Http404
        content = pagecache.fragment(page="order", phone=phone, ident=order_id, fingerprint=fingerprint,
                                     render=lambda: _order_content(phone=phone, order_id=order_id))
    else:
        content = mark_safe(_order_content(phone=phone, order_id=selectors.order_id_for_token(phone=phone, token=token)))  # noqa: S308
    return _render(request, "portal/order.html", {"content": content, "masked_phone": mask_phone(phone)})


@require_POST
def logout(request):
    for key in (PHONE_KEY, SEEN_KEY, PENDING_KEY):
        request.session.pop(key, None)
    request.session.cycle_key()
    return redirect("portal:start")
