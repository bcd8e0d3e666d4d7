"""Carrier and tracking numbers lived only in the data of the timeline's ship events: give each
such event its `Shipment` (warehouse, carrier, tracking number, lines from the consumed
reservations of that warehouse). The events themselves are append-only and keep their copy
(the customer's wording shows it)."""

from collections import defaultdict

from django.db import migrations

SHIP_KINDS = ("shipped", "partially_shipped")
AT_THE_END = {"delivered", "completed", "returned"}


def forwards(apps, schema_editor):
    OrderEvent = apps.get_model("orders", "OrderEvent")
    Shipment = apps.get_model("orders", "Shipment")
    ShipmentLine = apps.get_model("orders", "ShipmentLine")
    Warehouse = apps.get_model("inventory", "Warehouse")
    Reservation = apps.get_model("inventory", "Reservation")
    OrderLine = apps.get_model("orders", "OrderLine")
    warehouses = {w.code: w.pk for w in Warehouse.objects.all()}
    existing = set(Shipment.objects.values_list("order_id", "warehouse_id"))
    for event in (OrderEvent.objects.filter(kind__in=SHIP_KINDS).select_related("order")
                  .order_by("order_id", "occurred_at", "id").iterator()):
        data = event.data or {}
        warehouse_id = warehouses.get(data.get("warehouse") or "")
        if (event.order_id, warehouse_id) in existing:
            continue
        existing.add((event.order_id, warehouse_id))
        delivered_at = None
        delivered = event.order.status in AT_THE_END
        if delivered:
            last = OrderEvent.objects.filter(order_id=event.order_id, kind="delivered").order_by("-occurred_at").first()
            delivered_at = last.occurred_at if last else None
        shipment = Shipment.objects.create(
            order_id=event.order_id, warehouse_id=warehouse_id, carrier=(data.get("carrier") or "")[:20],
            tracking_number=(data.get("tracking_number") or "")[:40], provider="sandbox",
            status="delivered" if delivered else "shipped", created_at=event.occurred_at,
            shipped_at=event.occurred_at, delivered_at=delivered_at,
        )
        consumed = Reservation.objects.filter(order_line__order_id=event.order_id, status="consumed")
        if warehouse_id is not None:
            consumed = consumed.filter(stock_level__warehouse_id=warehouse_id)
        quantities = defaultdict(int)
        for line_id, quantity in consumed.values_list("order_line_id", "quantity"):
            quantities[line_id] += quantity
        if not quantities:
            quantities = dict(OrderLine.objects.filter(order_id=event.order_id).values_list("id", "quantity"))
        ShipmentLine.objects.bulk_create([ShipmentLine(shipment=shipment, order_line_id=k, quantity=v)
                                          for k, v in quantities.items()])


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_shipments")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
