import uuid

from django.db import migrations, models


def create_row(apps, schema_editor):
    apps.get_model("inventory", "RoutingVersion").objects.update_or_create(pk=1, defaults={"token": uuid.uuid4().hex})


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_merge_20261203_0534")]

    operations = [
        migrations.CreateModel(
            name="RoutingVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token", models.CharField(default="", max_length=32)),
            ],
            options={"verbose_name": "分仓配置版本", "verbose_name_plural": "分仓配置版本"},
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
