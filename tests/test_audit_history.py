"""Audit trail of configuration edits (issue 17): django-simple-history on shops, warehouses,
SKUs, SKU mappings, routing rules and staff scope profiles.

Expectations are written from the role descriptions: supervisors and operations edit the
configuration; every role looks at it; a staff member without any role sees none of it.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from inventory.models import RoutingRule, SkuMapping, Warehouse
from orders.models import Shop, StaffProfile
from tests.factories import (RoutingRuleFactory, ShopFactory, SkuFactory, SkuMappingFactory, UserFactory,
                             WarehouseFactory, scoped, staff)

pytestmark = pytest.mark.django_db

SECRETS = {"app_secret": "APPSECRET-abc123", "access_token": "TOKEN-xyz789", "webhook_secret": "HOOK-s3cr3t"}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(client: Client, url: str) -> dict:
    """The change form's current values, as the browser would post them back."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        data[name] = value
    return data


def last_change(model, pk):
    return model.history.filter(id=pk).order_by("-history_date", "-history_id").first()


def changed_fields(record) -> set[str]:
    prev = record.prev_record
    assert prev is not None
    return set(record.diff_against(prev).changed_fields)


def test_admin_edit_of_a_warehouse_records_the_user_and_the_changed_field():
    wh = WarehouseFactory(code="suzhou", name="苏州仓", priority=50)
    boss = staff("supervisor")
    client = login(boss)
    url = reverse("admin:inventory_warehouse_change", args=[wh.pk])
    data = form_data(client, url) | {"priority": "7"}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    wh.refresh_from_db()
    assert wh.priority == 7
    record = last_change(Warehouse, wh.pk)
    assert record.history_type == "~"
    assert record.history_user == boss
    assert record.priority == 7
    assert changed_fields(record) == {"priority"}
    change = record.diff_against(record.prev_record).changes[0]
    assert (change.old, change.new) == (50, 7)


def test_admin_edit_of_a_routing_rule_records_the_user_and_the_changed_field():
    rule = RoutingRuleFactory(name="江浙沪", conditions={"all": [{"field": "province", "op": "in", "value": ["江苏"]}]})
    ops = staff("operations")
    client = login(ops)
    url = reverse("admin:inventory_routingrule_change", args=[rule.pk])
    new_conditions = {"all": [{"field": "province", "op": "in", "value": ["江苏", "浙江"]}]}
    data = form_data(client, url) | {"conditions": json.dumps(new_conditions, ensure_ascii=False), "mode": "strict"}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    record = last_change(RoutingRule, rule.pk)
    assert record.history_user == ops
    assert record.conditions == new_conditions
    assert changed_fields(record) == {"conditions", "mode"}


def test_admin_edit_of_a_sku_mapping_records_the_user_and_the_changed_field():
    mapping = SkuMappingFactory(platform_sku_id="P-1")
    other = SkuFactory(code="PEN-02")
    boss = staff("supervisor")
    client = login(boss)
    url = reverse("admin:inventory_skumapping_change", args=[mapping.pk])
    response = client.post(url, form_data(client, url) | {"sku": str(other.pk)})
    assert response.status_code == 302

    record = last_change(SkuMapping, mapping.pk)
    assert record.history_user == boss
    assert record.sku_id == other.pk
    assert changed_fields(record) == {"sku"}


def test_created_and_deleted_rows_are_in_the_history():
    ops = staff("operations")
    client = login(ops)
    mapping = SkuMappingFactory(platform_sku_id="DEL-1")
    response = client.post(reverse("admin:inventory_skumapping_delete", args=[mapping.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not SkuMapping.objects.filter(pk=mapping.pk).exists()
    kinds = list(SkuMapping.history.filter(id=mapping.pk).order_by("history_date").values_list("history_type", flat=True))
    assert kinds == ["+", "-"]
    assert SkuMapping.history.filter(id=mapping.pk, history_type="-").get().history_user == ops
    # The history page of a deleted row still answers, from its last historical record.
    assert client.get(reverse("admin:inventory_skumapping_history", args=[mapping.pk])).status_code == 200


def _all_history_text(shop_pk) -> str:
    rows = list(Shop.history.filter(id=shop_pk).values())
    return json.dumps(rows, default=str, ensure_ascii=False)


def test_shop_secrets_never_reach_the_history_only_which_changed():
    shop = ShopFactory(code="tmall-1", **SECRETS)
    boss = staff("supervisor")
    client = login(boss)
    url = reverse("admin:orders_shop_change", args=[shop.pk])
    data = form_data(client, url) | {"name": "新名字", "app_secret": "NEW-APPSECRET-999", "access_token": ""}
    response = client.post(url, data)
    assert response.status_code == 302

    shop.refresh_from_db()
    assert shop.app_secret == "NEW-APPSECRET-999"
    assert shop.access_token == SECRETS["access_token"]  # blank box keeps the stored value

    history_columns = {f.name for f in Shop.history.model._meta.fields}
    assert not history_columns & {"app_secret", "access_token", "webhook_secret"}
    text = _all_history_text(shop.pk)
    for secret in [*SECRETS.values(), "NEW-APPSECRET-999"]:
        assert secret not in text

    created = Shop.history.filter(id=shop.pk, history_type="+").get()
    assert set(created.secrets_changed.split(",")) == {"app_secret", "access_token", "webhook_secret"}
    record = last_change(Shop, shop.pk)
    assert record.history_user == boss
    assert record.secrets_changed == "app_secret"
    assert changed_fields(record) == {"name"}

    # An edit that leaves the credentials alone says so.
    shop.name = "再改名"
    shop.save()
    assert last_change(Shop, shop.pk).secrets_changed == ""


def test_shop_history_pages_never_show_a_secret():
    shop = ShopFactory(code="tmall-2", **SECRETS)
    shop.name = "改名"
    shop.app_secret = "ROTATED-SECRET-42"
    shop.save()
    client = login(staff("supervisor"))
    page = client.get(reverse("admin:orders_shop_history", args=[shop.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "改名" in body and "app_secret" in body  # the marker of which credential changed
    record = last_change(Shop, shop.pk)
    one = client.get(reverse("admin:orders_shop_simple_history", args=[shop.pk, record.history_id]))
    assert one.status_code == 200
    for content in (body, one.content.decode()):
        for secret in [*SECRETS.values(), "ROTATED-SECRET-42"]:
            assert secret not in content


def test_staff_scope_changes_are_in_the_history():
    user = staff("customer_service", "cs-scoped")
    a, b = ShopFactory(code="a"), ShopFactory(code="b")
    scoped(user, shops=[a])
    profile = StaffProfile.objects.get(user=user)
    profile.shops.set([a, b])
    latest = profile.history.order_by("-history_date", "-history_id").first()
    assert {row.shop_id for row in latest.shops.all()} == {a.pk, b.pk}
    assert profile.history.count() >= 2


HISTORY_PAGES = [
    ("inventory_warehouse", lambda: WarehouseFactory()),
    ("inventory_sku", lambda: SkuFactory()),
    ("inventory_skumapping", lambda: SkuMappingFactory()),
    ("inventory_routingrule", lambda: RoutingRuleFactory()),
    ("orders_shop", lambda: ShopFactory()),
]


@pytest.mark.parametrize("admin_name,make", HISTORY_PAGES, ids=[n for n, _m in HISTORY_PAGES])
def test_history_pages_load_for_supervisors_and_operations(admin_name, make):
    obj = make()
    for role in ("supervisor", "operations"):
        response = login(staff(role)).get(reverse(f"admin:{admin_name}_history", args=[obj.pk]))
        assert response.status_code == 200, role
        assert response.templates[0].name.startswith("simple_history/")


@pytest.mark.parametrize("admin_name,make", HISTORY_PAGES, ids=[n for n, _m in HISTORY_PAGES])
def test_history_pages_refused_without_view_permission(admin_name, make):
    obj = make()
    nobody = UserFactory(username="no-role")  # staff, but no role: may view nothing
    assert not Group.objects.filter(user=nobody).exists()
    response = login(nobody).get(reverse(f"admin:{admin_name}_history", args=[obj.pk]))
    assert response.status_code == 403


def test_history_page_shows_who_and_what_changed():
    wh = WarehouseFactory(code="hz", name="杭州仓", priority=30)
    boss = staff("supervisor", "boss-li")
    client = login(boss)
    url = reverse("admin:inventory_warehouse_change", args=[wh.pk])
    client.post(url, form_data(client, url) | {"city": "杭州市"})
    body = client.get(reverse("admin:inventory_warehouse_history", args=[wh.pk])).content.decode()
    assert "boss-li" in body
    assert "杭州市" in body


def test_history_cannot_be_reverted_from_its_page():
    wh = WarehouseFactory(priority=30)
    wh.priority = 5
    wh.save()
    first = Warehouse.history.filter(id=wh.pk).order_by("history_date").first()
    client = login(staff("supervisor"))
    url = reverse("admin:inventory_warehouse_simple_history", args=[wh.pk, first.history_id])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()  # no revert button
    data = form_data(client, reverse("admin:inventory_warehouse_change", args=[wh.pk])) | {"priority": "30"}
    assert client.post(url, data).status_code == 403
    wh.refresh_from_db()
    assert wh.priority == 5
    assert Warehouse.history.filter(id=wh.pk).count() == 2


def test_history_outside_the_persons_scope_is_404():
    mine, theirs = WarehouseFactory(code="mine"), WarehouseFactory(code="theirs")
    shop_mine, shop_theirs = ShopFactory(code="s-mine"), ShopFactory(code="s-theirs")
    ops = scoped(staff("operations", "ops-scoped"), shops=[shop_mine], warehouses=[mine])
    client = login(ops)
    assert client.get(reverse("admin:inventory_warehouse_history", args=[mine.pk])).status_code == 200
    assert client.get(reverse("admin:inventory_warehouse_history", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:orders_shop_history", args=[shop_theirs.pk])).status_code == 404
    record = Warehouse.history.filter(id=theirs.pk).first()
    assert client.get(reverse("admin:inventory_warehouse_simple_history",
                              args=[theirs.pk, record.history_id])).status_code == 404
    mapping = SkuMappingFactory(shop=shop_theirs)
    assert client.get(reverse("admin:inventory_skumapping_history", args=[mapping.pk])).status_code == 404
    # A deleted object's history is for unscoped staff only.
    gone = SkuMappingFactory(shop=shop_theirs, platform_sku_id="GONE")
    gone_pk = gone.pk
    gone.delete()
    assert client.get(reverse("admin:inventory_skumapping_history", args=[gone_pk])).status_code == 404
    assert login(staff("supervisor")).get(
        reverse("admin:inventory_skumapping_history", args=[gone_pk])).status_code == 200


# --- bulk imports skip post_save: they write their history rows themselves ------------------------
@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _xlsx(rows: list[list]) -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _import(client, kind: str, rows: list[list]):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from config.models import ImportJob

    client.post(reverse("admin:core_importjob_upload"), {"kind": kind, "file": SimpleUploadedFile("f.xlsx", _xlsx(rows))})
    job = ImportJob.objects.order_by("-id").first()
    assert job.status == ImportJob.Status.PREVIEW, job.errors
    client.post(reverse("admin:core_importjob_confirm", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.errors


def test_sku_master_import_writes_history_with_the_importing_user(media):
    from inventory.models import Sku

    old = SkuFactory(code="BASIN-01", name="折叠盆 大号", safety_stock=1)
    ops = staff("operations")
    _import(login(ops), "sku", [["SKU编码", "名称", "类目", "安全库存"], ["NEW-01", "新品 杯子", "杯具", 3],
                                ["BASIN-01", "折叠盆 特大号", "", 5]])
    new = Sku.objects.get(code="NEW-01")
    created = Sku.history.filter(id=new.pk).get()
    assert (created.history_type, created.history_user, created.history_change_reason) == ("+", ops, "import")
    updated = last_change(Sku, old.pk)
    assert (updated.history_type, updated.history_user, updated.name, updated.safety_stock) == ("~", ops, "折叠盆 特大号", 5)
    assert changed_fields(updated) == {"name", "safety_stock"}


def test_sku_mapping_and_safety_stock_imports_write_history(media):
    shop = ShopFactory(code="demo-taobao")
    basin, cup = SkuFactory(code="BASIN-01"), SkuFactory(code="CUP-01")
    existing = SkuMappingFactory(shop=shop, platform_sku_id="TB-OLD", sku=cup)
    boss = staff("supervisor")
    client = login(boss)
    _import(client, "sku_mapping", [["店铺编码", "平台SKU ID", "SKU编码"], ["demo-taobao", "TB-1", "BASIN-01"],
                                    ["demo-taobao", "TB-OLD", "BASIN-01"]])
    fresh = SkuMapping.objects.get(platform_sku_id="TB-1")
    assert SkuMapping.history.filter(id=fresh.pk, history_type="+", history_user=boss).exists()
    record = last_change(SkuMapping, existing.pk)
    assert (record.history_user, record.sku_id) == (boss, basin.pk)
    assert changed_fields(record) == {"sku"}
    # One row per change, not two (the import's own post_save writes it, with the user).
    assert SkuMapping.history.filter(id=existing.pk).count() == 2
    assert SkuMapping.history.filter(id=fresh.pk).count() == 1

    _import(client, "safety_stock", [["SKU编码", "安全库存", "应急保留"], ["BASIN-01", 12, 2]])
    from inventory.models import Sku

    record = last_change(Sku, basin.pk)
    assert (record.history_user, record.safety_stock, record.emergency_buffer) == (boss, 12, 2)


# --- staff accounts: roles (groups) and permissions ------------------------------------------------
def test_a_role_change_in_the_admin_is_recorded_with_who_did_it():
    from django.contrib.auth import get_user_model

    from config import roles

    User = get_user_model()
    target = staff("customer_service", "cs-wang")
    admin_user = UserFactory(username="root", is_superuser=True)
    client = login(admin_user)
    url = reverse("admin:auth_user_change", args=[target.pk])
    data = form_data(client, url)
    ops_group = Group.objects.get(name=roles.group_name("operations"))
    data["groups"] = [str(ops_group.pk)]
    data.pop("user_permissions", None)
    data.pop("password", None)
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data.update({"date_joined_0": target.date_joined.strftime("%Y-%m-%d"),
                 "date_joined_1": target.date_joined.strftime("%H:%M:%S")})
    for prefix in ("staff_profile",):
        data.update({f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert list(target.groups.all()) == [ops_group]

    latest = User.history.filter(id=target.pk).order_by("-history_date", "-history_id").first()
    assert latest.history_user == admin_user
    assert [g.group_id for g in latest.groups.all()] == [ops_group.pk]
    assert "groups" in latest.diff_against(latest.prev_record).changed_fields

    page = client.get(reverse("admin:auth_user_history", args=[target.pk]))
    assert page.status_code == 200


def test_user_history_keeps_no_password_hash_and_no_login_rows():
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = staff("finance", "fin-zhao")
    user.set_password("a-new-pass-5678")
    user.save()
    before = User.history.filter(id=user.pk).count()
    assert User.history.filter(id=user.pk).order_by("-history_id").first().secrets_changed == "password"
    assert Client().login(username="fin-zhao", password="a-new-pass-5678")  # saves last_login only
    assert User.history.filter(id=user.pk).count() == before
    columns = {f.name for f in User.history.model._meta.fields}
    assert "password" not in columns and "last_login" not in columns
    text = json.dumps(list(User.history.filter(id=user.pk).values()), default=str)
    assert user.password not in text
    assert "pbkdf2" not in text and "md5$" not in text


def test_a_role_without_user_permissions_cannot_see_user_history():
    target = staff("warehouse", "wh-sun")
    assert login(staff("customer_service")).get(
        reverse("admin:auth_user_history", args=[target.pk])).status_code == 403
