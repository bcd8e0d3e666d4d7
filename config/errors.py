"""Domain errors, shared by every app: each refusal has a stable code and a human message.

The API turns them into `{"code", "detail"}` with their HTTP status (`config.api`), the
admin into a message, imports into a row error. Codes are an enum so a client can rely on
them and the OpenAPI schema can list them.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    DOMAIN_ERROR = "domain_error"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    TRANSITION_NOT_ALLOWED = "transition_not_allowed"
    CONCURRENT_UPDATE = "concurrent_update"
    INSUFFICIENT_STOCK = "insufficient_stock"
    UNKNOWN_TRANSITION = "unknown_transition"
    DUPLICATE = "duplicate"
    INVALID_CREDENTIALS = "invalid_credentials"
    BELOW_RESERVED = "below_reserved"
    NOTHING_TO_SHIP = "nothing_to_ship"
    NOTHING_TO_CONFIRM = "nothing_to_confirm"
    SKU_UNMAPPED = "sku_unmapped"
    HOLD_REASON_RESERVED = "hold_reason_reserved"
    FILTER_NOT_PERMITTED = "filter_not_permitted"
    THROTTLED = "throttled"
    LOCKED_OUT = "locked_out"


class DomainError(Exception):
    code: str = ErrorCode.DOMAIN_ERROR
    http_status = 400
    default_message = "操作无法完成"

    def __init__(self, message: str | None = None, *, code: str | None = None, **context):
        self.message = message or self.default_message
        if code:
            self.code = ErrorCode(code)
        self.context = context
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"code": str(self.code), "detail": self.message}


class InvalidInput(DomainError):
    code = ErrorCode.INVALID
    http_status = 400
    default_message = "输入无效"


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND
    http_status = 404
    default_message = "对象不存在"


class NotPermitted(DomainError):
    code = ErrorCode.PERMISSION_DENIED
    http_status = 403
    default_message = "没有权限执行此操作"


class FilterNotPermitted(NotPermitted):
    code = ErrorCode.FILTER_NOT_PERMITTED
    http_status = 403
    default_message = "没有按个人信息(手机号、姓名、地址)查询的权限"


class TransitionNotAllowed(DomainError):
    code = ErrorCode.TRANSITION_NOT_ALLOWED
    http_status = 409
    default_message = "当前状态不允许此操作"


class ConcurrentUpdate(DomainError):
    code = ErrorCode.CONCURRENT_UPDATE
    http_status = 409
    default_message = "订单已被他人修改,请刷新后重试"


class InsufficientStock(DomainError):
    code = ErrorCode.INSUFFICIENT_STOCK
    http_status = 409
    default_message = "库存不足"


class UnknownTransition(DomainError):
    code = ErrorCode.UNKNOWN_TRANSITION
    http_status = 404
    default_message = "未知的操作"
