"""`python manage.py ingest --shop CODE FILE` as DESIGN.md states it."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from config.actors import Source
from orders.models import Order, OrderStatus, Platform, Shop
from tests.factories import ShopFactory, SkuFactory, WarehouseFactory, stock
from tests.orders.platforms.shared import fixture_path, load

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_test_connection(monkeypatch):
    # run_from_argv closes every connection when it ends: that would end the test's transaction.
    from django.db import connections

    monkeypatch.setattr(connections, "close_all", lambda: None)


def run(*argv) -> tuple[int, str, str]:
    """The command as from the shell (argument parsing, CommandError → one line on stderr and
    the exit code): (exit code, stdout, stderr)."""
    try:
        execute_from_command_line(["manage.py", "ingest", *argv])
    except SystemExit as exc:
        return int(exc.code or 0), "", ""
    return 0, "", ""


def shell(capsys, *argv) -> tuple[int, str, str]:
    code, _o, _e = run(*argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_taobao_list_response_then_replayed(capsys):
    shop = ShopFactory(code="tb", platform=Platform.TAOBAO)
    path = str(fixture_path("taobao/trades_sold_get.doc_example.json"))
    assert shell(capsys, "--shop", "tb", path) == (0, "created=1 updated=0 unchanged=0 failed=0\n", "")
    assert shell(capsys, "--shop", "tb", path) == (0, "created=0 updated=0 unchanged=1 failed=0\n", "")
    order = Order.objects.get(shop=shop)
    assert order.platform_order_id == "2231958349" and order.status == OrderStatus.PENDING_PAYMENT
    event = order.events.get()
    assert (event.source, event.actor_label) == (Source.IMPORT, "ingest:tb")


def test_single_order_responses_of_each_platform(capsys):
    ShopFactory(code="tb", platform=Platform.TAOBAO)
    ShopFactory(code="us", platform=Platform.SHOPIFY)
    ShopFactory(code="pdd", platform=Platform.PDD)
    assert shell(capsys, "--shop", "tb", str(fixture_path("taobao/trade_fullinfo_get.jdp_push_row.json")))[:2] == (
        0, "created=1 updated=0 unchanged=0 failed=0\n")
    assert shell(capsys, "--shop", "us", str(fixture_path("shopify/order.single.json")))[:2] == (
        0, "created=1 updated=0 unchanged=0 failed=0\n")
    assert shell(capsys, "--shop", "pdd", str(fixture_path("pdd/order_list_get.response.doc_example.json")))[:2] == (
        0, "created=1 updated=0 unchanged=0 failed=0\n")
    assert Order.objects.get(platform_order_id="452790065331038").status == OrderStatus.CANCELLED
    assert Order.objects.get(platform_order_id="450789469").currency == "USD"


def test_a_bad_payload_between_two_good_ones(tmp_path, capsys):
    ShopFactory(code="tb", platform=Platform.TAOBAO)
    trade = load("taobao/trade_fullinfo_get.jdp_push_row.json")["trade_fullinfo_get_response"]["trade"]
    good1, bad, good2 = copy.deepcopy(trade), copy.deepcopy(trade), copy.deepcopy(trade)
    good1["tid"], good2["tid"] = 1, 3
    del bad["tid"]
    code, out, err = shell(capsys, "--shop", "tb", write(tmp_path, "three.json", [good1, bad, good2]))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "created=2 updated=0 unchanged=0 failed=1"
    assert lines[1].startswith("failed #2: ") and "tid" in lines[1] and len(lines) == 2
    assert err.strip() == "CommandError: 1 of 3 payloads failed" and "Traceback" not in err
    assert sorted(Order.objects.values_list("platform_order_id", flat=True)) == ["1", "3"]


def test_a_stale_version_counts_unchanged(tmp_path, capsys):
    ShopFactory(code="tb", platform=Platform.TAOBAO)
    trade = load("taobao/trade_fullinfo_get.jdp_push_row.json")["trade_fullinfo_get_response"]["trade"]
    older = dict(copy.deepcopy(trade), modified="2014-01-01 00:00:00", buyer_message="旧")
    shell(capsys, "--shop", "tb", str(fixture_path("taobao/trade_fullinfo_get.jdp_push_row.json")))
    assert shell(capsys, "--shop", "tb", write(tmp_path, "old.json", older))[:2] == (
        0, "created=0 updated=0 unchanged=1 failed=0\n")
    assert Order.objects.get().buyer_note == ""


@pytest.mark.parametrize("case", ["unknown_shop", "missing_file", "bad_json", "not_utf8", "scalar", "no_adapter"])
def test_wrong_file_or_shop_is_one_clear_line(tmp_path, capsys, case):
    ShopFactory(code="tb", platform=Platform.TAOBAO)
    good = str(fixture_path("taobao/trades_sold_get.doc_example.json"))
    argv = {
        "unknown_shop": ["--shop", "nope", good],
        "missing_file": ["--shop", "tb", str(tmp_path / "missing.json")],
        "bad_json": ["--shop", "tb", write(tmp_path, "bad.json", '{"tid": 1,')],
        "not_utf8": ["--shop", "tb", write(tmp_path, "gbk.json", '{"收货人": "张三"}'.encode("gbk"))],
        "scalar": ["--shop", "tb", write(tmp_path, "n.json", "42")],
        "no_adapter": ["--shop", "odd", good],
    }[case]
    if case == "no_adapter":
        Shop.objects.filter(pk=ShopFactory(code="odd").pk).update(platform="ebay")
    code, out, err = shell(capsys, *argv)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("CommandError: ") and "Traceback" not in err
    assert {"unknown_shop": "unknown shop: nope", "missing_file": "cannot read", "bad_json": "not valid JSON",
            "not_utf8": "not UTF-8", "scalar": "expected an order object", "no_adapter": "没有适配器"}[case] in err
    assert not Order.objects.exists()


def test_call_command_raises_command_error_on_failures(tmp_path):
    ShopFactory(code="tb", platform=Platform.TAOBAO)
    with pytest.raises(CommandError, match="1 of 1 payloads failed"):
        call_command("ingest", "--shop", "tb", write(tmp_path, "x.json", [{"not": "an order"}]))


def test_distributor_csv_file(tmp_path, capsys):
    shop = ShopFactory(code="fx", platform=Platform.DISTRIBUTOR)
    wh = WarehouseFactory(code="hz")
    for code in ("SKU-A", "SKU-B"):
        stock(wh, SkuFactory(code=code), 10)
    header = "分销商订单号,下单时间,收货人,电话,省,市,区,地址,SKU编码,商品名称,数量,单价,运费,备注,赠品"
    rows = ["FX1001,2024-01-02 15:04:05,张三,13800000000,浙江省,杭州市,西湖区,文三路100号,SKU-A,保温杯,2,12.50,6,尽快发货,",
            "FX1001,,,,,,,,SKU-B,杯垫,1,0,,,是"]
    path = write(tmp_path, "drop.csv", ("\n".join([header, *rows]) + "\n").encode("utf-8-sig"))
    code, out, _err = shell(capsys, "--shop", "fx", path)
    assert (code, out) == (0, "created=1 updated=0 unchanged=0 failed=0\n")
    order = Order.objects.get(shop=shop, platform_order_id="FX1001")
    assert sorted(order.lines.values_list("sku__code", "quantity")) == [("SKU-A", 2), ("SKU-B", 1)]
    assert shell(capsys, "--shop", "fx", path)[:2] == (0, "created=0 updated=0 unchanged=1 failed=0\n")
