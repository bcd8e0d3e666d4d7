"""Notifications: one small module every app calls, always after commit.

Every call is logged (`orderhub.notify`). The ones staff must act on — a parcel exception or
return, a SKU below its safety stock, a shop whose sync keeps failing, a platform push that
could not be processed — also become a `config.models.Notification` (an outbox row, at most
one per `key`, so a redelivered scan or a retried job never alerts twice) that the job
`deliver_pending` sends to the team's group chat:

- **企业微信群机器人** (`NOTIFY_WECOM_WEBHOOK` = the robot's full webhook URL,
  `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`): POST
  `{"msgtype": "text", "text": {"content": …}}` (content ≤ 2,048 bytes), answer
  `{"errcode": 0, "errmsg": "ok"}`; 45009 = too many messages (a robot takes ~20 a minute).
- **钉钉自定义机器人** (`NOTIFY_DINGTALK_WEBHOOK` = `https://oapi.dingtalk.com/robot/send?access_token=…`,
  `NOTIFY_DINGTALK_SECRET` = its 加签 secret `SEC…`): the same body, the URL signed with
  `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")));
  answer `{"errcode": 0, …}`; 130101 = sending too fast.

Both robots' request shapes follow their public documentation (企业微信 "群机器人配置说明",
developer.work.weixin.qq.com/document/path/91770; 钉钉 "自定义机器人安全设置 · 加签"). Rows are
sent in batches of up to `NOTIFY_BATCH` lines per message, so a carrier outage that flags a
thousand parcels is a few messages, not a thousand. Without a robot configured the rows are
kept as 未配置机器人 and stay visible in the admin (员工通知). Text is for staff and never
carries a customer's name, phone or address (mobile numbers in carrier text are masked).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
import urllib.parse
from datetime import timedelta

from django.conf import settings
from django.db import transaction

logger = logging.getLogger("orderhub.notify")

ORDER_TOPICS = {"shipment_exception", "shipment_returned"}  # order_changed kinds that alert staff
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
MAX_BYTES = 2000  # WeCom's text limit is 2,048 bytes
MAX_ATTEMPTS = 5
RETRYABLE_CODES = {45009, 130101, -1}  # WeCom / DingTalk rate limits, "system busy"


def order_changed(order_id: int, *, kind: str, message: str = "") -> None:
    logger.info("order %s %s %s", order_id, kind, message)
    if kind in ORDER_TOPICS:
        from django.apps import apps
        from django.urls import reverse

        number = apps.get_model("orders", "Order").objects.filter(pk=order_id).values_list("number", flat=True).first()
        alert(kind, key=f"{kind}:{order_id}:{message}", text=f"订单 {number or order_id}: {message}",
              link=reverse("admin:orders_order_change", args=[order_id]))


def stock_alert(stock_level_id: int, *, available: int, threshold: int) -> None:
    logger.warning("stock level %s below safety stock: %s < %s", stock_level_id, available, threshold)


def alert(topic: str, *, key: str, text: str, link: str = "") -> None:
    """Record a staff alert once per `key` after the current transaction commits (at once
    outside one), and ask for a delivery run."""
    transaction.on_commit(lambda: _store(topic, key, text, link))


def _store(topic: str, key: str, text: str, link: str) -> None:
    from config.models import Notification

    if len(key) > 200:
        key = f"{key[:150]}#{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    status = Notification.Status.PENDING if robots() else Notification.Status.NOT_SENT
    try:
        _row, created = Notification.objects.get_or_create(
            key=key, defaults={"topic": topic, "text": mask_mobiles(text)[:500], "link": link[:300], "status": status})
    except Exception:  # noqa: BLE001 - an alert must never break the work that raised it
        logger.exception("could not store notification %s", key)
        return
    if created and status == Notification.Status.PENDING:
        request_delivery()


def mask_mobiles(text: str) -> str:
    return _MOBILE.sub(r"\1****\2", text or "")


def robots() -> list[dict]:
    found = []
    if getattr(settings, "NOTIFY_WECOM_WEBHOOK", ""):
        found.append({"kind": "wecom", "url": settings.NOTIFY_WECOM_WEBHOOK})
    if getattr(settings, "NOTIFY_DINGTALK_WEBHOOK", ""):
        found.append({"kind": "dingtalk", "url": settings.NOTIFY_DINGTALK_WEBHOOK,
                      "secret": getattr(settings, "NOTIFY_DINGTALK_SECRET", "")})
    return found


def request_delivery() -> None:
    """Queue one delivery run, at most one every few seconds (the schedule catches the rest)."""
    from django.core.cache import cache
    from django_q.tasks import async_task

    try:
        if not cache.add("orderhub:notify:queued", 1, 5):
            return
        async_task("config.notify.deliver_pending", task_name="notify-deliver", group="notify")
    except Exception:  # noqa: BLE001 - the schedule sends it within two minutes anyway
        logger.warning("could not queue a notification run", exc_info=True)


# --- sending ------------------------------------------------------------------------------
class RobotError(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def dingtalk_signed_url(url: str, secret: str, *, timestamp_ms: int | None = None) -> str:
    """The robot URL with `timestamp` and `sign` (钉钉 加签); unchanged without a secret."""
    if not secret:
        return url
    timestamp = str(timestamp_ms if timestamp_ms is not None else round(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def send(robot: dict, content: str, *, client=None) -> None:
    """POST one text message; raises RobotError (retryable or not) unless errcode is 0."""
    import httpx

    url = dingtalk_signed_url(robot["url"], robot.get("secret", "")) if robot["kind"] == "dingtalk" else robot["url"]
    body = {"msgtype": "text", "text": {"content": content}}
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(5.0))
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise RobotError(f"{robot['kind']}: {type(exc).__name__}", retryable=True) from exc
    finally:
        if own:
            client.close()
    if response.status_code == 429 or response.status_code >= 500:
        raise RobotError(f"{robot['kind']}: HTTP {response.status_code}", retryable=True)
    try:
        answer = response.json()
    except ValueError as exc:
        raise RobotError(f"{robot['kind']}: HTTP {response.status_code}, not JSON", retryable=False) from exc
    code = answer.get("errcode")
    if code != 0:
        raise RobotError(f"{robot['kind']}: errcode {code} {answer.get('errmsg', '')}"[:300],
                         retryable=code in RETRYABLE_CODES)


def compose(rows) -> str:
    site = getattr(settings, "NOTIFY_SITE_URL", "").rstrip("/")
    lines = [f"【Order Hub】{len(rows)} 条提醒"]
    for n, row in enumerate(rows, start=1):
        line = f"{n}. {row.get_topic_display()} · {row.text}"
        if site and row.link:
            line += f"\n   {site}{row.link}"
        lines.append(line)
    content = "\n".join(lines)
    while len(content.encode()) > MAX_BYTES:
        content = content[: len(content) - 50]
    return content


def deliver_pending(*, batch: int | None = None, max_messages: int = 10, client=None) -> int:
    """The job: send pending rows, `batch` per message, at most `max_messages` messages a run
    (a robot takes ~20 a minute). Returns how many rows were sent."""
    from django.utils import timezone

    from config.models import Notification

    targets = robots()
    if not targets:
        return 0
    size = batch or int(getattr(settings, "NOTIFY_BATCH", 20))
    sent = 0
    for _ in range(max_messages):
        now = timezone.now()
        with transaction.atomic():
            due = (Notification.objects.select_for_update(skip_locked=True)
                   .filter(status__in=[Notification.Status.PENDING, Notification.Status.SENDING])
                   .exclude(status=Notification.Status.SENDING, claimed_until__gt=now).order_by("id"))
            rows = list(due[:size])
            if not rows:
                break
            for row in rows:
                row.status, row.claimed_until, row.attempts = Notification.Status.SENDING, now + timedelta(minutes=5), row.attempts + 1
            Notification.objects.bulk_update(rows, ["status", "claimed_until", "attempts"])
        content = compose(rows)
        try:
            for robot in targets:
                send(robot, content, client=client)
        except RobotError as exc:
            for row in rows:
                retry = exc.retryable and row.attempts < MAX_ATTEMPTS
                row.status = Notification.Status.PENDING if retry else Notification.Status.FAILED
                row.last_error, row.claimed_until = str(exc)[:300], None
            Notification.objects.bulk_update(rows, ["status", "last_error", "claimed_until"])
            logger.warning("notification delivery failed (%d rows): %s", len(rows), exc)
            break
        for row in rows:
            row.status, row.sent_at, row.claimed_until, row.last_error = Notification.Status.SENT, timezone.now(), None, ""
        Notification.objects.bulk_update(rows, ["status", "sent_at", "claimed_until", "last_error"])
        sent += len(rows)
    return sent


def resend(ids) -> int:
    """The admin's 重新发送: failed or unsent rows go back to pending (robots configured)."""
    from config.models import Notification

    if not robots():
        return 0
    n = Notification.objects.filter(pk__in=list(ids), status__in=[Notification.Status.FAILED,
                                                                   Notification.Status.NOT_SENT]).update(
        status=Notification.Status.PENDING, attempts=0, last_error="", claimed_until=None)
    if n:
        request_delivery()
    return n
