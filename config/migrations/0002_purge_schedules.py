"""The daily jobs that delete uploaded import files older than IMPORT_KEEP_DAYS and task
export files older than EXPORT_KEEP_DAYS (the history rows stay)."""

from django.db import migrations

SCHEDULES = {
    "清理过期导入文件": ("inventory.imports.purge_import_files", "30 3 * * *"),
    "清理过期导出文件": ("orders.exports.purge_export_files", "40 3 * * *"),
}


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, (func, cron) in SCHEDULES.items():
        if not Schedule.objects.filter(name=name).exists():
            Schedule.objects.create(name=name, func=func, schedule_type="C", cron=cron, repeats=-1)


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create, remove)]
