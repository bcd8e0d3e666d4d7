"""The portal now finds gift parcels by `orders_order.receiver_phone_normalized`, which the
orders app indexes (orders/0006_order_search_indexes); the raw-column index of 0002 has no
reader left and only costs writes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_order_receiver_phone_index"),
        ("orders", "0006_order_search_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS portal_order_receiver_phone",
            "CREATE INDEX IF NOT EXISTS portal_order_receiver_phone ON orders_order (receiver_phone)",
        ),
    ]
