"""Brute-force protection, in one place: who the client is, when a login is refused.

- **Client IP** (`client_ip`): with `TRUSTED_PROXY_HOPS=0` (the default) the address the
  TCP connection came from (`REMOTE_ADDR`); with N > 0 the N-th `X-Forwarded-For` entry
  from the right — the one our own outermost proxy appended. The leftmost entries are
  whatever the client sent and are never trusted. django-axes (`AXES_CLIENT_IP_CALLABLE`)
  and DRF throttling (`NUM_PROXIES`, and `TokenRateThrottle` below) both use it.
- **Lock-out** (django-axes, database handler): `LOGIN_FAILURE_LIMIT` failed logins
  (default 5) for one username — from any IP — or from one IP — with any username — lock
  that username / that IP for `LOGIN_COOLOFF_MINUTES` (default 15). Applies to the admin
  login and `POST /api/v1/auth/token/`. Unlock early with `manage.py axes_reset`
  (or `axes_reset_username <name>` / `axes_reset_ip <ip>`).
- **Throttle**: the token endpoint answers 429 after `AUTH_TOKEN_THROTTLE_RATE` requests
  (default "10/min") from one client IP.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.utils.translation import get_language, gettext as _
from rest_framework.throttling import ScopedRateThrottle

from config.errors import DomainError, ErrorCode

# config/settings.py reads the environment (TRUSTED_PROXY_HOPS, LOGIN_FAILURE_LIMIT,
# LOGIN_COOLOFF_MINUTES, AUTH_TOKEN_THROTTLE_RATE) and points axes and DRF here; this module
# must not be imported by the settings (DRF would read its settings half-loaded).
AUTH_TOKEN_THROTTLE_SCOPE = "auth_token"


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's IP address, trusting exactly `TRUSTED_PROXY_HOPS` proxies in front of us.

    Each trusted proxy appends the address it received the connection from, so the client
    as seen by the outermost one is the N-th entry from the right. A request with fewer
    entries did not come through all of them: use the connection's address.
    """
    meta = request.META
    remote = _valid_ip(meta.get("REMOTE_ADDR"))
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    entries = [entry.strip() for entry in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if len(entries) < hops:
        return remote
    return _valid_ip(entries[-hops]) or remote


class LockedOut(DomainError):
    code = ErrorCode.LOCKED_OUT
    http_status = 403
    default_message = "登录失败次数过多,已暂时锁定,请稍后再试"


def lockout_message() -> str:
    return _("登录失败次数过多,已暂时锁定,请 %(minutes)d 分钟后再试,或联系主管解锁。") % {
        "minutes": settings.LOGIN_COOLOFF_MINUTES
    }


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 403 — our JSON error body for the API, a short page elsewhere."""
    message = lockout_message()
    if request.path_info.startswith("/api/"):
        return JsonResponse(LockedOut(message).as_dict(), status=LockedOut.http_status)
    title = escape(_("登录已锁定"))
    lang = escape(get_language() or settings.LANGUAGE_CODE)
    page = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{escape(message)}</p></body></html>"
    )
    return HttpResponse(page, status=403, content_type="text/html; charset=utf-8")


def authenticate_for_token(request, username: str, password: str):
    """Check a username/password pair for the token endpoint, through axes.

    `request` is DRF's Request; axes must see (and mark) the underlying HttpRequest.
    Returns the user, or None for wrong credentials; raises `LockedOut` when axes refuses
    (already locked, or this failure reached the limit).
    """
    http_request = getattr(request, "_request", request)
    user = authenticate(request=http_request, username=username, password=password)
    if getattr(http_request, "axes_locked_out", False):
        raise LockedOut(lockout_message())
    return user


class TokenRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle keyed on `client_ip`, reading its rate when called (so tests can
    change `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`)."""

    def get_ident(self, request):
        return client_ip(request) or ""

    def get_rate(self):
        from rest_framework.settings import api_settings

        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
