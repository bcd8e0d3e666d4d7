"""python manage.py setup_schedules — the django-q2 schedules, kept in one list (idempotent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

# One row per background job. Add new jobs here; `name` is the key, so renaming one
# creates a new schedule (delete the old one in the admin).
SCHEDULES: list[dict] = [
    {
        "name": "reservation expiry",
        "func": "orders.tasks.expire_lead_time_reservations",
        "schedule_type": Schedule.MINUTES,
        "minutes": 10,
    },
    {
        "name": "stock short retry",
        "func": "orders.tasks.retry_stock_short_orders",
        "schedule_type": Schedule.MINUTES,
        "minutes": 5,
    },
    {
        "name": "inventory audit",
        "func": "inventory.tasks.run_inventory_audit",
        "schedule_type": Schedule.CRON,
        "cron": "30 2 * * *",  # nightly at 02:30 (TIME_ZONE)
    },
    {
        # Every minute: enqueue each enabled shop whose own sync interval has passed.
        "name": "platform sync dispatcher",
        "func": "orders.sync_tasks.dispatch_due_syncs",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        # Every minute: push each changed channel stock figure once (coalesced).
        "name": "stock push to channels",
        "func": "orders.stock_push_tasks.push_stock_to_channels",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        "name": "carrier tracking poll",
        "func": "orders.tracking_tasks.poll_shipments",
        "schedule_type": Schedule.MINUTES,
        "minutes": 5,
    },
    {
        "name": "carrier push retry",
        "func": "orders.tracking_tasks.retry_failed_pushes",
        "schedule_type": Schedule.MINUTES,
        "minutes": 15,
    },
    {
        # Every 2 minutes: tracking numbers not yet pushed back to the platform (missed by the
        # on-commit task, or waiting for their 2^n-minute retry). Rows are claimed with a lease.
        "name": "tracking push retry",
        "func": "orders.tracking_push_tasks.retry_tracking_pushes",
        "schedule_type": Schedule.MINUTES,
        "minutes": 2,
    },
    {
        # Every 5 minutes: subscribe new parcels at their tracking provider, so it pushes scans.
        "name": "carrier subscriptions",
        "func": "orders.carrier_subscriptions.subscribe_shipments",
        "schedule_type": Schedule.MINUTES,
        "minutes": 5,
    },
    {
        # Every 2 minutes: staff alerts not yet sent to the group-chat robot (config/notify.py).
        "name": "staff notification delivery",
        "func": "config.notify.deliver_pending",
        "schedule_type": Schedule.MINUTES,
        "minutes": 2,
    },
    {
        "name": "webhook inbox retry",
        "func": "orders.webhook_tasks.retry_webhook_events",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        "name": "purge import files",
        "func": "inventory.imports.purge_import_files",  # uploads older than IMPORT_KEEP_DAYS
        "schedule_type": Schedule.CRON,
        "cron": "40 3 * * *",
    },
    {
        "name": "purge export files",
        "func": "orders.exports.purge_export_files",  # task exports older than EXPORT_KEEP_DAYS
        "schedule_type": Schedule.CRON,
        "cron": "50 3 * * *",
    },
]


def _pick_batch_schedules() -> list[dict]:
    """"pick batch": cron at ORDERHUB["PICK_BATCH_TIMES"] (TIME_ZONE), one entry per distinct minute."""
    from orders.batches import batch_times

    by_minute: dict[int, list[int]] = {}
    for t in batch_times():
        hour, minute = (int(x) for x in t.split(":"))
        by_minute.setdefault(minute, []).append(hour)
    return [{"name": "pick batch" if i == 0 else f"pick batch :{minute:02d}",
             "func": "orders.batch_tasks.build_pick_batches",
             "schedule_type": Schedule.CRON,
             "cron": f"{minute} {','.join(str(h) for h in sorted(hours))} * * *"}
            for i, (minute, hours) in enumerate(sorted(by_minute.items()))]


SCHEDULES += _pick_batch_schedules() + [
    {
        "name": "auto complete",
        "func": "orders.batch_tasks.auto_complete_delivered",
        "schedule_type": Schedule.MINUTES,
        "minutes": 60,
    },
]


def _spec(entry: dict) -> dict:
    return {"minutes": None, "cron": None, "args": None, "kwargs": None, "repeats": -1,
            **{k: v for k, v in entry.items() if k != "name"}}


@transaction.atomic
def sync_schedules() -> list[tuple[Schedule, str]]:
    """Create or update every schedule by name. Returns (schedule, "created"|"updated"|"unchanged")."""
    result = []
    for entry in SCHEDULES:
        spec = _spec(entry)
        schedule = Schedule.objects.filter(name=entry["name"]).order_by("id").first()
        if schedule is None:
            schedule = Schedule(name=entry["name"], **spec)
            schedule.full_clean()
            # A cron job waits for its first slot; an interval job starts at once.
            schedule.next_run = schedule.calculate_next_run() if schedule.schedule_type == Schedule.CRON else timezone.now()
            schedule.save()
            result.append((schedule, "created"))
            continue
        changed = {k: v for k, v in spec.items() if getattr(schedule, k) != v}
        if not changed:
            result.append((schedule, "unchanged"))
            continue
        for key, value in changed.items():
            setattr(schedule, key, value)
        schedule.full_clean()
        if {"schedule_type", "minutes", "cron"} & changed.keys() and schedule.schedule_type == Schedule.CRON:
            schedule.next_run = schedule.calculate_next_run()
        schedule.save()
        result.append((schedule, "updated"))
    return result


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules (reservation expiry, stock-short retry, nightly inventory audit)."

    def handle(self, *args, **options):
        for schedule, outcome in sync_schedules():
            when = f"every {schedule.minutes} min" if schedule.schedule_type == Schedule.MINUTES else f"cron {schedule.cron}"
            self.stdout.write(f"{outcome:<9} {schedule.name}: {schedule.func} ({when})")
        self.stdout.write(self.style.SUCCESS(f"{len(SCHEDULES)} schedules in sync"))
