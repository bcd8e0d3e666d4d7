"""Portal write side: send a login code, check it.

Enumeration: `code_request` never looks at orders. Any valid phone gets the same work done
(limits counted, a code created and sent) and the caller the same answer, so neither the
body, the status nor the timing says whether the phone has orders.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from orders.services import normalize_phone
from portal import ratelimit
from portal.models import PortalLoginCode
from portal.sms import SmsError, SmsMessage, get_backend

logger = logging.getLogger("orderhub.portal")


class Outcome:
    SENT = "sent"
    RATE_LIMITED = "rate_limited"
    INVALID_PHONE = "invalid_phone"
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # this code had too many wrong tries: ask for a new one
    EXPIRED = "expired"  # no live code (never sent, expired, used or replaced)
    SMS_FAILED = "sms_failed"


@dataclass(frozen=True)
class Result:
    outcome: str
    phone: str = ""
    attempts_left: int = 0


def portal_phone(raw: str) -> str:
    """The E.164 form of a mobile number typed by a customer ('' when not valid)."""
    phone = normalize_phone(raw or "")
    return phone if phone and ";ext=" not in phone else ""


def hash_code(phone: str, code: str) -> str:
    return salted_hmac("portal.login-code", f"{phone}|{code}", algorithm="sha256").hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def sms_text(code: str) -> str:
    minutes = settings.PORTAL_CODE_TTL_SECONDS // 60
    return f"【订单查询】验证码 {code},{minutes} 分钟内有效。请勿告诉他人。"


def code_request(*, raw_phone: str, ip: str | None) -> Result:
    """Send a fresh code to a phone (any valid mobile number; orders are not consulted)."""
    phone = portal_phone(raw_phone)
    if not phone:
        return Result(Outcome.INVALID_PHONE)
    # Count every limit (no short-circuit), so a limited request costs the same.
    allowed = [ratelimit.hit("send_ip", ip or ""), ratelimit.hit("send_phone_interval", phone),
               ratelimit.hit("send_phone", phone)]
    if not all(allowed):
        return Result(Outcome.RATE_LIMITED, phone)
    code = new_code()
    now = timezone.now()
    with transaction.atomic():
        PortalLoginCode.objects.filter(phone=phone, used_at__isnull=True, revoked=False).update(revoked=True)
        # Housekeeping on the way (the same query for every phone): this phone's day-old codes.
        PortalLoginCode.objects.filter(phone=phone, created_at__lt=now - timedelta(days=1)).delete()
        PortalLoginCode.objects.create(phone=phone, code_hash=hash_code(phone, code), created_at=now,
                                       expires_at=now + timedelta(seconds=settings.PORTAL_CODE_TTL_SECONDS), ip=ip)
    try:
        get_backend().send(SmsMessage(phone=phone, code=code, text=sms_text(code)))
    except SmsError:
        logger.exception("portal: sending the login code failed")
        return Result(Outcome.SMS_FAILED, phone)
    return Result(Outcome.SENT, phone)


def code_verify(*, phone: str, code: str, ip: str | None) -> Result:
    """Check a code typed for `phone`. At most PORTAL_CODE_MAX_ATTEMPTS tries per code, and
    the verify rate limits per phone and per IP on top."""
    allowed = [ratelimit.hit("verify_ip", ip or ""), ratelimit.hit("verify_phone", phone)]
    if not all(allowed):
        return Result(Outcome.RATE_LIMITED, phone)
    max_attempts = settings.PORTAL_CODE_MAX_ATTEMPTS
    now = timezone.now()
    code = (code or "").strip()
    with transaction.atomic():
        row = (PortalLoginCode.objects.select_for_update()
               .filter(phone=phone, used_at__isnull=True, revoked=False).order_by("-created_at", "-id").first())
        if row is None or row.expires_at <= now:
            return Result(Outcome.EXPIRED, phone)
        if row.attempts >= max_attempts:
            return Result(Outcome.LOCKED, phone)
        PortalLoginCode.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
        attempts = row.attempts + 1
        if code.isdigit() and len(code) == 6 and constant_time_compare(row.code_hash, hash_code(phone, code)):
            PortalLoginCode.objects.filter(pk=row.pk).update(used_at=now)
            return Result(Outcome.OK, phone)
        if attempts >= max_attempts:
            return Result(Outcome.LOCKED, phone)
        return Result(Outcome.WRONG, phone, attempts_left=max_attempts - attempts)
