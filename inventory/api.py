"""Inventory REST API (/api/v1/stock/): read-only stock levels."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated

from config.actors import Actor, Source
from config.api import holds_permission
from inventory.models import StockLevel
from inventory.selectors import stock_level_list
from inventory.serializers import StockFilterSerializer, StockLevelOutputSerializer


CanViewStock = holds_permission("inventory.view_stocklevel", "没有查看库存的权限")


@extend_schema(
    tags=["stock"],
    summary="库存列表",
    description="只列出用户数据范围内的仓库的库存。",
    parameters=[StockFilterSerializer],
    responses={
        200: StockLevelOutputSerializer(many=True),
    },  # 400/401/403/404: config.api.AutoSchema
)
class StockLevelListApi(ListAPIView):
    """Stock per warehouse × SKU: on hand, reserved, available, inbound with its ETA."""

    permission_classes = [IsAuthenticated, CanViewStock]
    serializer_class = StockLevelOutputSerializer
    filter_backends: list = []  # filtering is StockFilterSerializer + stock_level_list
    queryset = StockLevel.objects.none()  # for schema introspection only; see get_queryset

    def get_queryset(self):
        filters = StockFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return stock_level_list(actor=Actor.of(self.request.user, Source.API), **filters.validated_data)
