"""API plumbing shared by every app: domain errors become {"code", "detail"} responses, and
the schema documents every error response an operation can give."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as DrfAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "code" not in response.data:
        detail = response.data.get("detail")
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        if detail is None:  # validation errors: field -> messages
            response.data = {"code": "invalid", "detail": "输入无效", "errors": response.data}
        else:
            response.data = {"code": code, "detail": str(detail)}
    return response


def holds_permission(perm: str, message: str) -> type[BasePermission]:
    """A DRF permission class: signed in and holding the Django permission `perm`."""

    class HoldsPermission(BasePermission):
        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(perm))

    HoldsPermission.message = message
    HoldsPermission.__name__ = HoldsPermission.__qualname__ = f"Holds_{perm.replace('.', '_')}"
    return HoldsPermission


class ErrorOutputSerializer(serializers.Serializer):
    """Every refusal: a stable code and a human message (validation errors add `errors`)."""

    code = serializers.CharField(help_text="稳定的错误代码,如 invalid、not_authenticated、permission_denied、"
                                           "not_found、transition_not_allowed、throttled")
    detail = serializers.CharField(help_text="给人看的说明")
    errors = serializers.DictField(required=False, child=serializers.ListField(child=serializers.CharField()),
                                   help_text="仅输入无效时:字段 → 原因列表")


# --- the OpenAPI schema ----------------------------------------------------------------------
ERROR_DESCRIPTIONS = {
    400: "请求参数无效(code: invalid 等;errors 按字段列出原因)",
    401: "未登录或凭据无效(code: not_authenticated / authentication_failed)",
    403: "没有权限(code: permission_denied)",
    404: "对象不存在或页码超出范围(code: not_found)",
    409: "当前状态不允许(code: transition_not_allowed / concurrent_update 等)",
    429: "请求过于频繁,稍后再试(code: throttled;Retry-After 头给出秒数)",
}


class AutoSchema(DrfAutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses each operation can give, so
    every status the API answers is in the schema without repeating them per view.

    Derived from the view: 400 when it takes a body or validated query parameters; 401 (or
    403 without a challenge-capable authenticator) when it needs a signed-in user; 403 when
    a permission beyond "signed in" guards it or it is a session-authenticated write (CSRF);
    404 for path parameters and paginated lists (page out of range); 429 when throttled.
    A view adds codes only it can give (409 for a state conflict) with `error_responses =
    {409: "…"}`; `@extend_schema(responses=…)` keeps the last word on any code it names.
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code, description in sorted(self.error_responses(operation).items()):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    OpenApiResponse(ErrorOutputSerializer, description=description), str(code)
                )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_responses(self, operation: dict) -> dict[int, str]:
        view = self.view
        errors: dict[int, str] = {}
        parameters = operation.get("parameters", [])
        paginator = self._get_paginator() if self.method == "GET" and self._is_list_view() else None
        page_params = {p["name"] for p in self._get_pagination_parameters()} if paginator else set()
        if "requestBody" in operation or any(p["in"] == "query" and p["name"] not in page_params for p in parameters):
            errors[400] = ERROR_DESCRIPTIONS[400]
        permissions = view.get_permissions()
        if not all(isinstance(p, AllowAny) for p in permissions):
            authenticators = view.get_authenticators()
            challenge = bool(authenticators) and bool(authenticators[0].authenticate_header(getattr(view, "request", None)))
            errors[401 if challenge else 403] = ERROR_DESCRIPTIONS[401]
            csrf = self.method not in ("GET", "HEAD", "OPTIONS") and any(
                isinstance(a, SessionAuthentication) for a in authenticators)
            if csrf or any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in permissions):
                errors[403] = ERROR_DESCRIPTIONS[403]
        if paginator or any(p["in"] == "path" for p in parameters):
            errors[404] = ERROR_DESCRIPTIONS[404]
        if view.get_throttles():
            errors[429] = ERROR_DESCRIPTIONS[429]
        for code, description in getattr(view, "error_responses", {}).items():
            errors[int(code)] = description or ERROR_DESCRIPTIONS.get(int(code), "")
        return errors
