"""Notifications: one small module every app calls, always after commit.

Backends (WeCom, DingTalk, SMS, e-mail) arrive with the monitoring work; for now messages
go to the log, which is what the demo and the tests need.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("orderhub.notify")


def order_changed(order_id: int, *, kind: str, message: str = "") -> None:
    logger.info("order %s %s %s", order_id, kind, message)


def stock_alert(stock_level_id: int, *, available: int, threshold: int) -> None:
    logger.warning("stock level %s below safety stock: %s < %s", stock_level_id, available, threshold)
