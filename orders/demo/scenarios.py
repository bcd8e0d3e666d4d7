"""The demo's order scenarios: where each order ends up, on which platforms, and the
platform status code it then carries.

Plain data: `orders.demo.planner` turns them into plans.
"""

from __future__ import annotations

from orders.models import Platform

# Platform status codes as the platforms publish them (../shared/fixtures/STATUS_CODES.md).
PLATFORM_STATUS = {
    Platform.TAOBAO: {"pending": "WAIT_BUYER_PAY", "paid": "WAIT_SELLER_SEND_GOODS", "partial": "SELLER_CONSIGNED_PART",
                      "shipped": "WAIT_BUYER_CONFIRM_GOODS", "completed": "TRADE_FINISHED",
                      "closed_unpaid": "TRADE_CLOSED_BY_TAOBAO", "closed": "TRADE_CLOSED"},
    Platform.JD: {"pending": "WAIT_PAY", "paid": "WAIT_SELLER_STOCK_OUT", "partial": "WAIT_SELLER_STOCK_OUT",
                  "shipped": "WAIT_GOODS_RECEIVE_CONFIRM", "completed": "FINISHED_L",
                  "closed_unpaid": "TRADE_CANCELED", "closed": "TRADE_CANCELED"},
    Platform.PDD: {"pending": "", "paid": "1", "partial": "1", "shipped": "2", "delivered": "3", "completed": "3",
                   "closed_unpaid": "", "closed": "1"},
    Platform.DOUYIN: {"pending": "1", "paid": "105", "allocated": "2", "partial": "101", "shipped": "3",
                      "completed": "5", "closed_unpaid": "4", "closed": "4"},
    Platform.MINIAPP: {"pending": "WAIT_PAY", "paid": "PAID", "partial": "PART_SHIPPED", "shipped": "SHIPPED",
                       "completed": "FINISHED", "closed_unpaid": "CLOSED", "closed": "REFUNDED"},
    Platform.SHOPIFY: {"pending": "pending", "paid": "paid", "partial": "paid", "shipped": "paid", "completed": "paid",
                       "closed_unpaid": "voided", "closed": "refunded"},
    Platform.AMAZON: {"pending": "Pending", "paid": "Unshipped", "partial": "PartiallyShipped", "shipped": "Shipped",
                      "completed": "Shipped", "closed_unpaid": "Canceled", "closed": "Canceled"},
}


# name → (weight, final platform-status key)
SCENARIOS = {
    "pending_payment": (5, "pending"),
    "paid": (6, "paid"),
    "paid_presale": (3, "paid"),
    "hold_stock_short": (3, "paid"),
    "hold_sku_unmapped": (2, "paid"),
    "hold_manual": (3, "paid"),
    "hold_check": (1, "paid"),
    "hold_reservation_expired": (1, "paid"),
    "allocated": (8, "allocated"),
    "packed": (6, "allocated"),
    "partially_shipped": (2, "partial"),
    "shipped": (12, "shipped"),
    "delivered": (12, "delivered"),
    "completed": (26, "completed"),
    "cancelled_unpaid": (3, "closed_unpaid"),
    "cancelled_paid": (2, "closed"),
    "cancelled_allocated": (1, "closed"),
    "returned": (4, "closed"),
}
UNPAID = {"pending_payment", "cancelled_unpaid"}
CN_ONLY = {"hold_stock_short", "partially_shipped", "paid_presale"}
US_ONLY = {"hold_reservation_expired"}
NOT_ON = {Platform.JD: UNPAID, Platform.PDD: UNPAID}  # these platforms only hand over paid orders
PLATFORM_WEIGHTS = {Platform.TAOBAO: 30, Platform.JD: 15, Platform.PDD: 18, Platform.DOUYIN: 15,
                    Platform.MINIAPP: 8, Platform.SHOPIFY: 7, Platform.AMAZON: 7}
