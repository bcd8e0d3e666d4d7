"""Indexes for the portal's order list (issue 16 benchmark): "orders of this customer, or
addressed to this phone, newest first, one page". Each branch of the query
(`portal.selectors._visible_ids_sql`) walks its own index in order and stops after the page,
instead of collecting every matching order and sorting it.

Plain SQL (no model state): the indexes serve the portal's query only and live with it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_drop_receiver_phone_index"),
        ("orders", "0006_order_search_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS portal_order_customer_placed "
            "ON orders_order (customer_id, placed_at DESC, id DESC)",
            "DROP INDEX IF EXISTS portal_order_customer_placed",
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS portal_order_rphone_placed "
            "ON orders_order (receiver_phone_normalized, placed_at DESC, id DESC) "
            "WHERE receiver_phone_normalized <> ''",
            "DROP INDEX IF EXISTS portal_order_rphone_placed",
        ),
    ]
