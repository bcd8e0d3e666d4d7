"""Inventory API serializers: output only (stock changes go through inventory.services)."""

from __future__ import annotations

from rest_framework import serializers

from inventory.models import StockLevel


class StockLevelOutputSerializer(serializers.ModelSerializer):
    """One pool (warehouse × SKU). available = on_hand − reserved; inbound is shown, never sold."""

    warehouse = serializers.SlugRelatedField(slug_field="code", read_only=True)
    warehouse_name = serializers.CharField(source="warehouse.name", read_only=True)
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True)
    sku_name = serializers.CharField(source="sku.name", read_only=True)
    category = serializers.CharField(source="sku.category", read_only=True)
    available = serializers.IntegerField(read_only=True)

    class Meta:
        model = StockLevel
        fields = ["warehouse", "warehouse_name", "sku", "sku_name", "category", "on_hand", "reserved", "available",
                  "inbound", "inbound_eta", "updated_at"]
        read_only_fields = fields


class StockFilterSerializer(serializers.Serializer):
    """Query parameters of the stock list; an empty one (`?sku=`) is ignored."""

    sku = serializers.CharField(required=False, allow_blank=True, help_text="SKU 编码")
    warehouse = serializers.CharField(required=False, allow_blank=True, help_text="仓库编码")
    category = serializers.CharField(required=False, allow_blank=True, help_text="SKU 类目")
