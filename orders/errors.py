"""Domain errors: every refusal has a stable code and a human message.

The API turns them into HTTP responses (`http_status`), the admin into a message,
imports into a row error.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    http_status = 400
    default_message = "操作无法完成"

    def __init__(self, message: str | None = None, *, code: str | None = None, **context):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.context = context
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"code": self.code, "detail": self.message}


class InvalidInput(DomainError):
    code = "invalid"
    http_status = 400
    default_message = "输入无效"


class NotPermitted(DomainError):
    code = "permission_denied"
    http_status = 403
    default_message = "没有权限执行此操作"


class TransitionNotAllowed(DomainError):
    code = "transition_not_allowed"
    http_status = 409
    default_message = "当前状态不允许此操作"


class ConcurrentUpdate(DomainError):
    code = "concurrent_update"
    http_status = 409
    default_message = "订单已被他人修改,请刷新后重试"


class InsufficientStock(DomainError):
    code = "insufficient_stock"
    http_status = 409
    default_message = "库存不足"


class UnknownTransition(DomainError):
    code = "unknown_transition"
    http_status = 404
    default_message = "未知的操作"
