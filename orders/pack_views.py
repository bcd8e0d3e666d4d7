"""The packing-by-scan pages (`/pack/`, issue 15): thin over `orders.packing`.

Server-rendered plain forms (a barcode scanner is a keyboard that types and presses Enter),
each POST with its CSRF token, the scan field autofocused; no script needed. The session
keeps the chosen warehouse and each open box's scan progress. A success redirects (so a
reload never repeats it); a refusal renders the page again with the message and the
error's HTTP status (400/404/409), having changed nothing. A scan posted with a stale form
number (the same form sent twice) is ignored.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from config.admin_tools import admin_actor
from config.errors import DomainError, NotFound
from orders import packing
from orders.carriers.codes import CARRIERS

WAREHOUSE_KEY = "pack_warehouse"
PROGRESS_KEY = "pack_progress"
MAX_OPEN_BOXES = 20  # progress kept for at most this many boxes per session


def pack_staff(view):
    """Logged-in staff with the pack permission; anonymous → the admin login (then back)."""
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (request.user.is_active and request.user.has_perm(packing.PACK_PERMISSION)):
            return render(request, "orders/pack/forbidden.html", status=403)
        return view(request, admin_actor(request), *args, **kwargs)
    return wrapper


def _warehouses(request, actor):
    choices = packing.pack_warehouses(actor=actor)
    chosen_id = request.session.get(WAREHOUSE_KEY)
    chosen = next((w for w in choices if w.pk == chosen_id), None)
    if chosen is None and len(choices) == 1:
        chosen = choices[0]
    return choices, chosen


def _progress(request, key: str) -> dict:
    return (request.session.get(PROGRESS_KEY) or {}).get(key) or packing.new_progress()


def _save_progress(request, key: str, progress: dict | None) -> None:
    stored = dict(request.session.get(PROGRESS_KEY) or {})
    stored.pop(key, None)
    if progress is not None:
        stored[key] = progress
        while len(stored) > MAX_OPEN_BOXES:
            stored.pop(next(iter(stored)))
    request.session[PROGRESS_KEY] = stored


def _context(request, choices, chosen, **extra) -> dict:
    return {"warehouses": choices, "warehouse": chosen, "carriers": sorted(CARRIERS.items()), **extra}


@require_http_methods(["GET", "POST"])
@pack_staff
def index(request, actor):
    """The list of boxes of the chosen warehouse, and the scan field that opens one."""
    choices, chosen = _warehouses(request, actor)
    if chosen is None:
        return render(request, "orders/pack/index.html", _context(request, choices, None))
    status, error = 200, ""
    if request.method == "POST":
        code = request.POST.get("code", "")
        try:
            unit = packing.unit_find(code=code, actor=actor, warehouse=chosen)
        except DomainError as exc:
            status, error = exc.http_status, exc.message
        else:
            return redirect("pack:unit", key=unit.key)
    board = packing.pack_board(actor=actor, warehouse=chosen)
    return render(request, "orders/pack/index.html", _context(request, choices, chosen, board=board, error=error),
                  status=status)


@require_POST
@pack_staff
def choose_warehouse(request, actor):
    choices, _chosen = _warehouses(request, actor)
    wanted = request.POST.get("warehouse", "")
    match = next((w for w in choices if str(w.pk) == wanted), None)
    if match is None:
        return render(request, "orders/pack/index.html",
                      _context(request, choices, None, error=_("请选择您负责的仓库")), status=400)
    request.session[WAREHOUSE_KEY] = match.pk
    return redirect("pack:index")


def _unit_page(request, actor, chosen, choices, key: str, *, error: str = "", status: int = 200):
    try:
        unit = packing.unit_get(key=key, actor=actor, warehouse=chosen)
    except NotFound as exc:
        return render(request, "orders/pack/index.html", _context(
            request, choices, chosen, board=packing.pack_board(actor=actor, warehouse=chosen), error=exc.message),
            status=404)
    except DomainError as exc:
        return render(request, "orders/pack/index.html", _context(
            request, choices, chosen, board=packing.pack_board(actor=actor, warehouse=chosen), error=exc.message),
            status=exc.http_status)
    progress = _progress(request, unit.key)
    packing.apply_progress(unit, progress)
    return render(request, "orders/pack/unit.html", _context(
        request, choices, chosen, unit=unit, progress=progress, error=error, missing=packing.missing_lines(unit),
        can_ship=actor.can(packing.SHIP_PERMISSION)), status=status)


@require_http_methods(["GET", "POST"])
@pack_staff
def unit(request, actor, key: str):
    """One box: its lines and progress; POST = one scan (SKU barcode/code, or another box's code)."""
    choices, chosen = _warehouses(request, actor)
    if chosen is None:
        return redirect("pack:index")
    if request.method == "GET":
        return _unit_page(request, actor, chosen, choices, key)
    progress = _progress(request, key)
    if request.POST.get("seq", "") != str(progress.get("seq", 0)):
        messages.warning(request, _("重复提交已忽略,请核对数量后继续扫描"))
        return redirect("pack:unit", key=key)
    raw = (request.POST.get("quantity") or "1").strip()
    try:
        quantity = int(raw)
    except ValueError:
        return _unit_page(request, actor, chosen, choices, key, status=400,
                          error=_("数量必须是 1 到 %(max)s 之间的整数") % {"max": packing.MAX_QUANTITY})
    try:
        current = packing.unit_get(key=key, actor=actor, warehouse=chosen)
        scan = packing.unit_scan(unit=current, progress=progress, code=request.POST.get("code", ""),
                                 quantity=quantity, actor=actor, warehouse=chosen)
    except DomainError as exc:
        return _unit_page(request, actor, chosen, choices, key, error=exc.message, status=exc.http_status)
    if scan.kind == "counted":
        _save_progress(request, key, scan.progress)
        messages.success(request, scan.message)
        return redirect("pack:unit", key=key)
    if scan.message:
        messages.info(request, scan.message)
    return redirect("pack:unit", key=scan.key)


@require_POST
@pack_staff
def pack(request, actor, key: str):
    """确认装箱."""
    choices, chosen = _warehouses(request, actor)
    if chosen is None:
        return redirect("pack:index")
    try:
        outcome = packing.unit_pack(key=key, actor=actor, warehouse=chosen, progress=_progress(request, key))
    except DomainError as exc:
        return _unit_page(request, actor, chosen, choices, key, error=exc.message, status=exc.http_status)
    _save_progress(request, key, None)
    (messages.success if outcome.changed else messages.info)(request, outcome.message)
    return redirect("pack:unit", key=key)


@require_POST
@pack_staff
def ship(request, actor, key: str):
    """Scanning the box's tracking number (or carrier + number) ships it."""
    choices, chosen = _warehouses(request, actor)
    if chosen is None:
        return redirect("pack:index")
    try:
        outcome = packing.unit_ship(key=key, actor=actor, warehouse=chosen,
                                    tracking_number=request.POST.get("tracking_number", ""),
                                    carrier=request.POST.get("carrier", ""))
    except DomainError as exc:
        return _unit_page(request, actor, chosen, choices, key, error=exc.message, status=exc.http_status)
    (messages.success if outcome.changed else messages.info)(request, outcome.message)
    return redirect("pack:index")


@require_POST
@pack_staff
def reset(request, actor, key: str):
    """Start counting this box again."""
    _save_progress(request, key, None)
    messages.info(request, _("已清空本包裹的扫描记录"))
    return redirect("pack:unit", key=key)
