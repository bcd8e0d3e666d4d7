"""Internationalisation: Chinese is the default, English comes from locale/en through Django i18n."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import WarehouseFactory, staff

PO_FILE = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES" / "django.po"

# The <caption> of each app section on the admin index: <a href="/admin/orders/" ...>APP LABEL</a>
APP_CAPTION = r'<caption>\s*<a href="/admin/{app}/"[^>]*>([^<]*)</a>'


@pytest.fixture
def supervisor_client(client):
    client.force_login(staff("supervisor"))
    return client


def app_label(html: str, app: str) -> str:
    match = re.search(APP_CAPTION.format(app=app), html)
    assert match, f"no app section for {app!r} on the admin index"
    return match.group(1).strip()


def title(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match, "no <h1> on the page"
    return match.group(1).strip()


# --- rendered pages --------------------------------------------------------------------------
@pytest.mark.django_db
def test_admin_index_is_chinese_by_default(supervisor_client):
    response = supervisor_client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert app_label(html, "orders") == "订单"
    assert app_label(html, "inventory") == "库存"
    assert 'lang="zh-hans"' in html


@pytest.mark.django_db
def test_admin_index_in_english_via_accept_language(supervisor_client):
    response = supervisor_client.get("/admin/", headers={"accept-language": "en"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'lang="en"' in html
    assert app_label(html, "orders") == "Orders"
    assert app_label(html, "inventory") == "Inventory"
    # Model names in the app list are translated too; no Chinese app or model caption is left.
    assert '<a href="/admin/orders/shop/">Shops</a>' in html
    assert '<a href="/admin/inventory/routingrule/">Routing rules</a>' in html
    assert ">订单</a>" not in html
    assert ">库存</a>" not in html


@pytest.mark.django_db
def test_setlang_switches_the_session_to_english(supervisor_client):
    response = supervisor_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})
    assert response.status_code == 302
    html = supervisor_client.get("/admin/").content.decode()
    assert app_label(html, "orders") == "Orders"
    assert ">订单</a>" not in html


@pytest.mark.django_db
def test_order_changelist_in_english(supervisor_client):
    WarehouseFactory(code="suzhou", name="苏州仓")  # the warehouse filter only shows when there is a choice
    response = supervisor_client.get("/admin/orders/order/", headers={"accept-language": "en"})
    assert response.status_code == 200
    html = response.content.decode()
    assert title(html) == "Select Order to change"  # the model's verbose_name
    assert "By status" in html  # a field verbose_name, through the list filter
    assert "By reservation warehouse" in html  # a custom SimpleListFilter title
    assert "订单" not in title(html)


@pytest.mark.django_db
def test_shop_changelist_in_english_and_chinese(supervisor_client):
    english = supervisor_client.get("/admin/orders/shop/", headers={"accept-language": "en"}).content.decode()
    assert title(english) == "Select shop to change"
    chinese = supervisor_client.get("/admin/orders/shop/").content.decode()
    assert "店铺" in title(chinese)


# --- the catalogue itself (no compiled .mo needed) -------------------------------------------
def _po_entries(text: str):
    """Yield (msgid, msgstr, flags, line) for each entry; plural entries yield msgid_plural / msgstr[n] too."""
    entries, current, key = [], None, None

    def finish():
        if current is not None:
            entries.append(current)

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            current, key = None, None
            continue
        if line.startswith("#"):
            if current is not None and current["strings"]:
                finish()
                current, key = None, None
            if current is None:
                current = {"flags": set(), "strings": {}, "line": number, "obsolete": False}
            if line.startswith("#,"):
                current["flags"].update(f.strip() for f in line[2:].split(","))
            if line.startswith("#~"):
                current["obsolete"] = True
            continue
        if current is None:
            current = {"flags": set(), "strings": {}, "line": number, "obsolete": False}
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$', line)
        if match:
            key = match.group(1)
            current["strings"][key] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and key:
            current["strings"][key] += ast.literal_eval(line)
        else:
            raise AssertionError(f"{PO_FILE.name}:{number}: cannot parse {raw!r}")
    finish()
    return [e for e in entries if "msgid" in e["strings"] and not e["obsolete"]]


def test_english_catalogue_has_no_untranslated_or_fuzzy_entries():
    entries = _po_entries(PO_FILE.read_text(encoding="utf-8"))
    messages = [e for e in entries if e["strings"]["msgid"] != ""]  # skip the header
    assert messages, f"no messages found in {PO_FILE}"
    problems = []
    for entry in messages:
        strings = entry["strings"]
        translations = [v for k, v in strings.items() if k.startswith("msgstr")]
        if not translations or any(t == "" for t in translations):
            problems.append(f"line {entry['line']}: untranslated: {strings['msgid']!r}")
        if "fuzzy" in entry["flags"]:
            problems.append(f"line {entry['line']}: fuzzy: {strings['msgid']!r}")
    assert not problems, f"{PO_FILE} needs attention:\n" + "\n".join(problems)


def test_english_catalogue_keeps_every_placeholder():
    placeholder = re.compile(r"%\([a-z_]+\)[-+ #0]*\d*[sdfr]|%[sd]|\{[a-z_]*\}")
    problems = []
    for entry in _po_entries(PO_FILE.read_text(encoding="utf-8")):
        strings = entry["strings"]
        if strings["msgid"] == "":
            continue
        wanted = sorted(placeholder.findall(strings["msgid"]))
        for key, value in strings.items():
            if key.startswith("msgstr") and value and sorted(placeholder.findall(value)) != wanted:
                problems.append(f"line {entry['line']}: {strings['msgid']!r} → {value!r}")
    assert not problems, "placeholders differ:\n" + "\n".join(problems)
