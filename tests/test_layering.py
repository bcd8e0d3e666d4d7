"""The arrows point one way: orders orchestrates and calls inventory; inventory (its models,
services, allocation, admin, API, jobs, commands) never imports orders — not at load time and
not inside a function. Only `if TYPE_CHECKING:` blocks and string model references may name it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _runtime_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append(node.module or "")
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


INVENTORY_FILES = sorted(p for p in (ROOT / "inventory").rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", INVENTORY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_inventory_never_imports_orders(path):
    bad = [m for m in _runtime_imports(path) if m == "orders" or m.startswith("orders.")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_check_sees_a_function_level_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from orders.models import Order\n")
    assert _runtime_imports(probe) == ["orders.models"]


@pytest.mark.django_db(transaction=True)
def test_inventory_halves_of_order_services_refuse_to_run_outside_a_transaction():
    from config.actors import Actor
    from inventory import services
    from tests.factories import make_order

    order = make_order(lines=[])
    for func in (services.release_order_reservations, services.consume_order_reservations,
                 services.confirm_order_reservations, services.release_expired_reservations):
        kwargs = {"reason": "x"} if func is services.release_order_reservations else {}
        with pytest.raises(RuntimeError, match="inside the order service"):
            func(order=order, actor=Actor.system(), **kwargs)
