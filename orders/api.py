"""Order REST API (/api/v1/): thin over `orders.selectors` (reads) and `orders.services` (writes).

Refusals are `DomainError`s raised by the services; `config.api.exception_handler` turns
them into `{"code", "detail"}` with their HTTP status, so no view here catches anything.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.actors import Actor, Source
from config.api import ErrorOutputSerializer, holds_permission
from config.security import AUTH_TOKEN_THROTTLE_SCOPE, TokenRateThrottle, authenticate_for_token
from orders import selectors, services
from config.errors import FilterNotPermitted, InvalidInput
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
class TokenInputSerializer(serializers.Serializer):
    username = serializers.CharField(label="用户名")
    password = serializers.CharField(label="密码", style={"input_type": "password"}, trim_whitespace=False)


@extend_schema(
    tags=["auth"],
    summary="用用户名和密码换取 API Token",
    request=TokenInputSerializer,
    responses={
        200: inline_serializer("TokenOutput", fields={"token": serializers.CharField()}),
        400: OpenApiResponse(ErrorOutputSerializer, description="用户名或密码错误,或缺少字段"),
        403: OpenApiResponse(ErrorOutputSerializer, description="登录失败次数过多,已暂时锁定(code: locked_out)"),
        429: OpenApiResponse(ErrorOutputSerializer, description="请求过于频繁(code: throttled)"),
    },
    auth=[],
)
class TokenObtainApi(APIView):
    """`POST {"username", "password"}` → `{"token": ...}`; then send `Authorization: Token <token>`.

    Repeated failures lock the username and the client IP (django-axes), and the endpoint is
    rate-limited per client IP: see `config.security`."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenRateThrottle]
    throttle_scope = AUTH_TOKEN_THROTTLE_SCOPE

    def post(self, request):
        serializer = TokenInputSerializer(data=request.data)
        if not serializer.is_valid():
            raise ValidationError(serializer.errors)
        user = authenticate_for_token(request, **serializer.validated_data)  # raises LockedOut
        if user is None or not user.is_active:
            raise InvalidInput("用户名或密码错误", code="invalid_credentials")
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


# --- orders -------------------------------------------------------------------------------
@extend_schema(
    tags=["orders"],
    summary="订单列表",
    description=(
        "只列出用户数据范围内(店铺/仓库)的订单。按个人信息筛选(`phone`,以及任何姓名、地址参数)"
        "需要「可查看客户个人信息」权限;没有该权限(个人信息脱敏的角色)时返回 403,"
        "code 为 `filter_not_permitted`,且不透露是否有匹配的订单。"
    ),
    parameters=[
        OrderFilterSerializer,
        OpenApiParameter("phone", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                         description="客户或收件人手机号(任意格式)。需要 orders.view_pii 权限,否则 403 filter_not_permitted"),
    ],
    responses={
        200: OrderListOutputSerializer(many=True),
        400: OpenApiResponse(ErrorOutputSerializer, description="筛选参数无效(状态、时间)"),
        403: OpenApiResponse(ErrorOutputSerializer, description=(
            "没有权限(code: permission_denied);个人信息脱敏的角色按手机号/姓名/地址筛选"
            "(code: filter_not_permitted)")),
    },  # 401, and 404 for a page out of range: config.api.AutoSchema
)
class OrderListApi(_ApiContextMixin, ListAPIView):
    """Orders newest first, filtered by status, shop code, phone (any format), platform
    order id and placing time; personal data masked unless the user may see it."""

    permission_classes = [IsAuthenticated, CanViewOrders]
    serializer_class = OrderListOutputSerializer
    filter_backends: list = []  # filtering is OrderFilterSerializer + selectors.order_list
    queryset = Order.objects.none()  # for schema introspection only; see get_queryset

    def get_queryset(self):
        actor = Actor.of(self.request.user, Source.API)
        # Refused before anything is read, whatever the value: the answer must not tell a
        # masked role whether a phone or a name has orders.
        if not selectors.can_view_pii(actor) and selectors.PII_QUERY_PARAMS & set(self.request.query_params):
            raise FilterNotPermitted()
        filters = OrderFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.order_list(actor=actor, **filters.validated_data).prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("id"))
        )


@extend_schema(
    tags=["orders"],
    summary="订单详情",
    responses={
        200: OrderDetailOutputSerializer,
        404: OpenApiResponse(ErrorOutputSerializer, description="订单不存在,或不在用户的数据范围(店铺/仓库)内"),
    },
)
class OrderDetailApi(_ApiContextMixin, RetrieveAPIView):
    """One order with its lines, timeline and the transitions the user may take now."""

    permission_classes = [IsAuthenticated, CanViewOrders]
    serializer_class = OrderDetailOutputSerializer
    lookup_field = "number"
    lookup_url_kwarg = "number"

    def get_queryset(self):
        return selectors.order_detail_queryset(actor=Actor.of(self.request.user, Source.API))


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
        404: OpenApiResponse(ErrorOutputSerializer, description="订单不存在或不在数据范围内,或未知的流转(code: not_found / unknown_transition)"),
        409: OpenApiResponse(ErrorOutputSerializer, description="当前状态不允许(code: transition_not_allowed / concurrent_update)"),
    },
)
class OrderTransitionApi(APIView):
    """Run one lifecycle transition through `orders.services.order_transition`."""

    permission_classes = [IsAuthenticated, CanViewOrders]

    def post(self, request, number: str, name: str):
        actor = Actor.of(request.user, Source.API)
        order = selectors.scope_orders(Order.objects.all(), actor=actor).filter(number=number).first()
        if order is None:  # unknown, or outside the user's shops / warehouses: the same answer
            raise Http404
        params = request.data
        if hasattr(params, "dict"):  # form-encoded: a QueryDict
            params = params.dict()
        if not isinstance(params, dict):
            raise InvalidInput("请求体必须是 JSON 对象")
        order = services.order_transition(order=order, name=name, actor=actor, params=params)
        order = selectors.order_after_action(pk=order.pk)
        return Response(OrderDetailOutputSerializer(order, context={"request": request, "actor": actor}).data)
