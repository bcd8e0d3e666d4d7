"""setup_roles and setup_schedules: idempotent, and what they create is what the jobs need."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from config import roles
from orders.management.commands.setup_schedules import SCHEDULES

pytestmark = pytest.mark.django_db


def test_setup_roles_prints_each_role_and_creates_its_group(capsys):
    Group.objects.all().delete()
    out = StringIO()
    call_command("setup_roles", stdout=out)
    printed = capsys.readouterr().out + out.getvalue()
    for role, spec in roles.ROLES.items():
        assert f"role {spec['name']} ({role})" in printed
        group = Group.objects.get(name=roles.group_name(role))
        assert group.permissions.count() == len(roles.role_permissions(role))
    assert "5 roles in sync" in printed


def test_setup_roles_twice_keeps_one_group_per_role(capsys):
    call_command("setup_roles", stdout=StringIO())
    call_command("setup_roles", stdout=StringIO())
    names = [roles.group_name(r) for r in roles.ROLES]
    assert Group.objects.filter(name__in=names).count() == len(names)


def _schedules() -> dict[str, Schedule]:
    return {s.name: s for s in Schedule.objects.all()}


def test_setup_schedules_creates_the_jobs_with_importable_functions():
    call_command("setup_schedules", stdout=StringIO())
    schedules = _schedules()
    expiry = schedules["reservation expiry"]
    assert (expiry.func, expiry.schedule_type, expiry.minutes) == (
        "orders.tasks.expire_lead_time_reservations", Schedule.MINUTES, 10)
    audit = schedules["inventory audit"]
    assert (audit.func, audit.schedule_type, audit.cron) == (
        "inventory.tasks.run_inventory_audit", Schedule.CRON, "30 2 * * *")
    assert audit.next_run > timezone.now()  # waits for its nightly slot instead of running at start-up
    retry = schedules["stock short retry"]
    assert (retry.func, retry.minutes) == ("orders.tasks.retry_stock_short_orders", 5)
    for schedule in schedules.values():
        assert callable(import_string(schedule.func)), schedule.func
        assert schedule.repeats == -1


def test_setup_schedules_twice_keeps_one_row_per_job():
    call_command("setup_schedules", stdout=StringIO())
    first = {name: (s.pk, s.next_run) for name, s in _schedules().items()}
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    jobs = len(SCHEDULES)  # every helper appends its jobs; the count is the list's
    assert Schedule.objects.count() == len(first) == jobs
    assert {"reservation expiry", "stock short retry", "inventory audit", "carrier tracking poll",
            "carrier push retry", "webhook inbox retry"} <= set(first)
    assert {name: (s.pk, s.next_run) for name, s in _schedules().items()} == first
    assert out.getvalue().count("unchanged") == jobs


def test_setup_schedules_puts_back_a_changed_schedule():
    call_command("setup_schedules", stdout=StringIO())
    Schedule.objects.filter(name="reservation expiry").update(minutes=60, func="inventory.tasks.nothing")
    call_command("setup_schedules", stdout=StringIO())
    expiry = Schedule.objects.get(name="reservation expiry")
    assert (expiry.minutes, expiry.func) == (10, "orders.tasks.expire_lead_time_reservations")
    assert Schedule.objects.count() == len(SCHEDULES)


def test_the_supervisor_holds_every_order_action_listed_by_hand():
    """Written out by hand: a new action in orders.transitions reaches the supervisor without
    an edit in config/roles.py, and nothing else slips in."""
    from django.contrib.auth.models import Group

    call_command("setup_roles", stdout=StringIO())
    held = {f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=roles.group_name("supervisor")).permissions.select_related("content_type")}
    for perm in ["orders.pay_order", "orders.allocate_order", "orders.hold_order", "orders.release_order",
                 "orders.pack_order", "orders.ship_order", "orders.deliver_order", "orders.complete_order",
                 "orders.cancel_order", "orders.return_order", "inventory.confirm_reservation"]:
        assert perm in held
    assert not any(p.startswith("*") for p in roles.role_permissions("supervisor"))
