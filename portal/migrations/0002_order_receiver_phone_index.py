"""An index on orders_order.receiver_phone: the portal finds the parcels addressed to a
phone (gifts) by it on every order-list request. Kept here, not in orders/, while the
portal is its only reader; plain SQL that SQLite and PostgreSQL both understand."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("orders", "0005_staffprofile"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS portal_order_receiver_phone ON orders_order (receiver_phone)",
            "DROP INDEX IF EXISTS portal_order_receiver_phone",
        ),
    ]
