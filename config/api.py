"""API plumbing shared by every app: domain errors become {"code", "detail"} responses."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.permissions import BasePermission
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

    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField(required=False, child=serializers.ListField(child=serializers.CharField()))
