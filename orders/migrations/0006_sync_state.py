"""Sync state in its own table (issue 14).

Shop.sync_cursor (a timestamp the sync never used) moves into ShopSyncState.start_from —
where a shop's first sync begins — and is removed from Shop, so saving a shop in the admin
can no longer touch where a running sync stands. Shop.api_base_url lets a shop point its
platform client at another gateway (sandbox, a local fake server in tests).
"""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


def copy_cursor(apps, schema_editor):
    Shop = apps.get_model("orders", "Shop")
    ShopSyncState = apps.get_model("orders", "ShopSyncState")
    for shop_id, cursor in Shop.objects.values_list("pk", "sync_cursor").iterator():
        ShopSyncState.objects.get_or_create(shop_id=shop_id, defaults={"start_from": cursor})


def copy_back(apps, schema_editor):
    Shop = apps.get_model("orders", "Shop")
    ShopSyncState = apps.get_model("orders", "ShopSyncState")
    for state in ShopSyncState.objects.exclude(start_from=None).iterator():
        Shop.objects.filter(pk=state.shop_id).update(sync_cursor=state.start_from)


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0005_staffprofile'),
    ]

    operations = [
        migrations.AddField(
            model_name='shop',
            name='api_base_url',
            field=models.CharField(blank=True, help_text='留空 = 平台正式网关;测试与沙箱可指向 http://127.0.0.1:…', max_length=300, validators=[django.core.validators.URLValidator(schemes=['http', 'https'])], verbose_name='接口地址'),
        ),
        migrations.CreateModel(
            name='ShopSyncState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('cursor', models.TextField(blank=True, help_text='平台适配器自定义的游标,每页入库后才前进', verbose_name='同步游标')),
                ('start_from', models.DateTimeField(blank=True, help_text='游标为空时从这里开始(为空 = 当前时间减回溯时长)', null=True, verbose_name='首次同步起点')),
                ('status', models.CharField(choices=[('never', '从未同步'), ('running', '同步中'), ('ok', '正常'), ('partial', '部分失败'), ('failed', '失败')], default='never', max_length=10, verbose_name='状态')),
                ('last_started_at', models.DateTimeField(blank=True, null=True, verbose_name='最近开始')),
                ('last_finished_at', models.DateTimeField(blank=True, null=True, verbose_name='最近结束')),
                ('last_succeeded_at', models.DateTimeField(blank=True, null=True, verbose_name='最近成功')),
                ('last_pages', models.PositiveIntegerField(default=0, verbose_name='页数')),
                ('last_fetched', models.PositiveIntegerField(default=0, verbose_name='拉取')),
                ('last_created', models.PositiveIntegerField(default=0, verbose_name='新建')),
                ('last_updated', models.PositiveIntegerField(default=0, verbose_name='更新')),
                ('last_unchanged', models.PositiveIntegerField(default=0, verbose_name='未变')),
                ('last_failed', models.PositiveIntegerField(default=0, verbose_name='失败')),
                ('newest_platform_updated_at', models.DateTimeField(blank=True, null=True, verbose_name='最新平台更新时间')),
                ('lag_seconds', models.PositiveIntegerField(blank=True, help_text='最近一次同步结束时:当前时间 − 最新平台更新时间', null=True, verbose_name='延迟(秒)')),
                ('last_error', models.TextField(blank=True, verbose_name='最近错误')),
                ('consecutive_failures', models.PositiveIntegerField(default=0, verbose_name='连续失败次数')),
                ('next_run_at', models.DateTimeField(blank=True, db_index=True, null=True, verbose_name='下次同步')),
                ('lease_owner', models.CharField(blank=True, max_length=100, verbose_name='租约持有者')),
                ('lease_expires_at', models.DateTimeField(blank=True, null=True, verbose_name='租约到期')),
                ('shop', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='sync_state', to='orders.shop', verbose_name='店铺')),
            ],
            options={
                'verbose_name': '同步状态',
                'verbose_name_plural': '同步状态',
                'ordering': ['shop__code'],
            },
        ),
        migrations.RunPython(copy_cursor, copy_back),
        migrations.RemoveField(
            model_name='shop',
            name='sync_cursor',
        ),
    ]
