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


def _catalogue_problems(text: str) -> list[str]:
    """Every entry (the header aside) with an empty msgstr / msgstr[n], or flagged fuzzy."""
    messages = [e for e in _po_entries(text) if e["strings"]["msgid"] != ""]  # skip the header
    assert messages, "no messages found in the catalogue"
    problems = []
    for entry in messages:
        strings = entry["strings"]
        translations = [v for k, v in strings.items() if k.startswith("msgstr")]
        if not translations or any(t == "" for t in translations):
            problems.append(f"line {entry['line']}: untranslated: {strings['msgid']!r}")
        if "fuzzy" in entry["flags"]:
            problems.append(f"line {entry['line']}: fuzzy: {strings['msgid']!r}")
    return problems


def test_english_catalogue_has_no_untranslated_or_fuzzy_entries():
    problems = _catalogue_problems(PO_FILE.read_text(encoding="utf-8"))
    assert not problems, f"{PO_FILE} needs attention (translate, remove the fuzzy flag, compilemessages):\n" + \
        "\n".join(problems)


SAMPLE_PO = '''msgid ""
msgstr ""
"Language: en\\n"

#: a.py:1
msgid "订单"
msgstr "Order"

#: a.py:2
#, fuzzy
#| msgid "旧"
msgid "新"
msgstr "old"

#: a.py:3
msgid "空"
msgstr ""

#: a.py:4
#, python-format
msgid "共 %(n)s 件"
msgid_plural "共 %(n)s 件"
msgstr[0] "%(n)s item"
msgstr[1] ""

#: a.py:5
msgctxt "plural"
msgid "订单"
msgstr "Orders"

#~ msgid "过时"
#~ msgstr ""
'''


def test_catalogue_check_flags_untranslated_fuzzy_and_half_translated_plural_entries():
    problems = [p.split(": ", 1)[1] for p in _catalogue_problems(SAMPLE_PO)]  # without "line N: "
    assert problems == ["fuzzy: '新'", "untranslated: '空'", "untranslated: '共 %(n)s 件'"]


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


def test_compiled_catalogue_matches_the_po_file():
    """django.mo is what Django reads: every translation in the .po must be in it, unchanged
    (a .po edited without `compilemessages` fails here)."""
    import gettext as gnu

    with open(PO_FILE.with_suffix(".mo"), "rb") as handle:
        catalog = gnu.GNUTranslations(handle)._catalog
    stale = []
    for entry in _po_entries(PO_FILE.read_text(encoding="utf-8")):
        strings = entry["strings"]
        if strings["msgid"] == "" or "fuzzy" in entry["flags"]:
            continue
        key = f"{strings['msgctxt']}\x04{strings['msgid']}" if "msgctxt" in strings else strings["msgid"]
        if "msgid_plural" in strings:
            wanted = {(key, int(k[7:-1])): v for k, v in strings.items() if k.startswith("msgstr[")}
        else:
            wanted = {key: strings["msgstr"]}
        stale += [f"line {entry['line']}: {strings['msgid']!r}" for k, v in wanted.items() if catalog.get(k) != v]
    assert not stale, "django.mo is out of date (run compilemessages -l en):\n" + "\n".join(stale)


GETTEXT_FUNCTIONS = {"_", "gettext", "gettext_lazy", "gettext_noop", "ngettext", "ngettext_lazy"}
PGETTEXT_FUNCTIONS = {"pgettext", "pgettext_lazy", "npgettext", "npgettext_lazy"}
SKIPPED_DIRS = {".venv", "bench", "tests", "node_modules", "locale"}


def _python_msgids():
    """(context, msgid, where) of every gettext call with literal arguments in the project's Python."""
    base = Path(settings.BASE_DIR)
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(base).parts
        if SKIPPED_DIRS & set(parts) or any(p.startswith(".") for p in parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
            where = f"{path.relative_to(base)}:{node.lineno}"
            if node.func.id in GETTEXT_FUNCTIONS and args and args[0]:
                yield None, args[0], where
            elif node.func.id in PGETTEXT_FUNCTIONS and len(args) >= 2 and args[0] and args[1]:
                yield args[0], args[1], where


def test_every_python_source_string_is_in_the_catalogue():
    """A string wrapped in gettext after the last `makemessages` would show in Chinese to an
    English reader; run makemessages (see README) and translate it."""
    known = {(e["strings"].get("msgctxt"), e["strings"]["msgid"]) for e in _po_entries(PO_FILE.read_text(encoding="utf-8"))}
    found = list(_python_msgids())
    assert len(found) > 100, "the source scan found almost nothing"
    missing = sorted({f"{where}: {msgid!r}" + (f" (context {ctx!r})" if ctx else "")
                      for ctx, msgid, where in found if (ctx, msgid) not in known})
    assert not missing, "strings missing from locale/en/LC_MESSAGES/django.po:\n" + "\n".join(missing)


TRANSLATE_TAG = re.compile(r"""\{%\s*(?:trans|translate)\s+(["'])(.*?)\1(?:\s+context\s+(["'])(.*?)\3)?[^%]*%\}""")


def test_every_template_translate_tag_is_in_the_catalogue():
    """The same for {% translate "…" %} in templates (blocktranslate bodies are left to makemessages)."""
    base = Path(settings.BASE_DIR)
    known = {(e["strings"].get("msgctxt"), e["strings"]["msgid"]) for e in _po_entries(PO_FILE.read_text(encoding="utf-8"))}
    found, missing = 0, []
    for path in sorted(base.rglob("*.html")):
        parts = path.relative_to(base).parts
        if SKIPPED_DIRS & set(parts) or any(p.startswith(".") for p in parts):
            continue
        for match in TRANSLATE_TAG.finditer(path.read_text(encoding="utf-8")):
            found += 1
            if (match.group(4), match.group(2)) not in known:
                missing.append(f"{path.relative_to(base)}: {match.group(2)!r}")
    assert found > 20, "the template scan found almost nothing"
    assert not missing, "template strings missing from the catalogue:\n" + "\n".join(missing)
