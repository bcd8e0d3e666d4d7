"""Order REST API (/api/v1/): thin over `orders.selectors` (reads) and `orders.services` (writes).

Refusals are `DomainError`s raised by the services; `config.api.exception_handler` turns
them into `{"code", "detail"}` with their HTTP status, so no view here catches anything.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.actors import Actor, Source
from config.api import ErrorOutputSerializer, holds_permission
from orders import selectors, services
from config.errors import InvalidInput
from orders.models import Order, OrderLine
from orders.serializers import (
    OrderDetailOutputSerializer,
    OrderFilterSerializer,
    OrderListOutputSerializer,
    TransitionParamsInputSerializer,
)
from orders.transitions import api_description

CanViewOrders = holds_permission("orders.view_order", "没有查看订单的权限")  # every staff role has it


class _ApiContextMixin:
    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["actor"] = Actor.of(self.request.user, Source.API)
        return context


# --- auth ---------------------------------------------------------------------------------
@extend_schema(
    tags=["auth"],
    summary="用用户名和密码换取 API Token",
    request=AuthTokenSerializer,
    responses={
        200: inline_serializer("TokenOutput", fields={"token": serializers.CharField()}),
        400: OpenApiResponse(ErrorOutputSerializer, description="用户名或密码错误,或缺少字段"),
    },
    auth=[],
)
class TokenObtainApi(APIView):
    """`POST {"username", "password"}` → `{"token": ...}`; then send `Authorization: Token <token>`."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if "non_field_errors" in serializer.errors:  # both given, but they do not match an active user
                raise InvalidInput("用户名或密码错误", code="invalid_credentials")
            raise ValidationError(serializer.errors)
        token, _created = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


# --- orders -------------------------------------------------------------------------------
@extend_schema(
    tags=["orders"],
    summary="订单列表",
    parameters=[OrderFilterSerializer],
    responses={
        200: OrderListOutputSerializer(many=True),
        400: OpenApiResponse(ErrorOutputSerializer, description="筛选参数无效(状态、时间)"),
    },  # 401/403, and 404 for a page out of range: config.api.AutoSchema
)
class OrderListApi(_ApiContextMixin, ListAPIView):
    """Orders newest first, filtered by status, shop code, phone (any format), platform
    order id and placing time; personal data masked unless the user may see it."""

    permission_classes = [IsAuthenticated, CanViewOrders]
    serializer_class = OrderListOutputSerializer
    filter_backends: list = []  # filtering is OrderFilterSerializer + selectors.order_list
    queryset = Order.objects.none()  # for schema introspection only; see get_queryset

    def get_queryset(self):
        filters = OrderFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.order_list(**filters.validated_data).prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("id"))
        )


@extend_schema(
    tags=["orders"],
    summary="订单详情",
    responses={
        200: OrderDetailOutputSerializer,
        404: OpenApiResponse(ErrorOutputSerializer, description="订单不存在"),
    },
)
class OrderDetailApi(_ApiContextMixin, RetrieveAPIView):
    """One order with its lines, timeline and the transitions the user may take now."""

    permission_classes = [IsAuthenticated, CanViewOrders]
    serializer_class = OrderDetailOutputSerializer
    lookup_field = "number"
    lookup_url_kwarg = "number"

    def get_queryset(self):
        return selectors.order_detail_queryset()


@extend_schema(
    tags=["orders"],
    summary="执行订单状态流转",
    description=api_description(),
    parameters=[
        OpenApiParameter("number", OpenApiTypes.STR, OpenApiParameter.PATH, description="订单号"),
        OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="流转名称",
                         enum=list(services.TRANSITION_SERVICES)),
    ],
    request=TransitionParamsInputSerializer,
    responses={
        200: OrderDetailOutputSerializer,
        400: OpenApiResponse(ErrorOutputSerializer, description="参数无效(code: invalid 等)"),
        403: OpenApiResponse(ErrorOutputSerializer, description="没有权限执行此流转(code: permission_denied)"),
        404: OpenApiResponse(ErrorOutputSerializer, description="订单不存在或未知的流转(code: not_found / unknown_transition)"),
        409: OpenApiResponse(ErrorOutputSerializer, description="当前状态不允许(code: transition_not_allowed / concurrent_update)"),
    },
)
class OrderTransitionApi(APIView):
    """Run one lifecycle transition through `orders.services.order_transition`."""

    permission_classes = [IsAuthenticated, CanViewOrders]

    def post(self, request, number: str, name: str):
        order = get_object_or_404(Order, number=number)
        params = request.data
        if hasattr(params, "dict"):  # form-encoded: a QueryDict
            params = params.dict()
        if not isinstance(params, dict):
            raise InvalidInput("请求体必须是 JSON 对象")
        actor = Actor.of(request.user, Source.API)
        order = services.order_transition(order=order, name=name, actor=actor, params=params)
        order = selectors.order_detail_queryset().get(pk=order.pk)
        return Response(OrderDetailOutputSerializer(order, context={"request": request, "actor": actor}).data)
