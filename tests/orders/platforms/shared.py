"""Loading the published samples in ../shared/fixtures (the `shared` directory beside the repo)."""

import json
from dataclasses import fields
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = (REPO / ".." / "shared" / "fixtures").resolve()
OWN = REPO / "tests" / "fixtures_own"


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"published sample {name} not found: expected ../shared/fixtures beside the repo ({FIXTURES})")
    return path


def load(name: str):
    return json.loads(fixture_path(name).read_text(encoding="utf-8"))


def load_text(name: str) -> str:
    return fixture_path(name).read_text(encoding="utf-8")


def without_raw(order) -> dict:
    """A NormalizedOrder as a dict minus `raw` (the payload it came from)."""
    return {f.name: getattr(order, f.name) for f in fields(order) if f.name != "raw"}


def stringify_numbers(value):
    """The same payload with every number (not bool) written as a string."""
    if isinstance(value, dict):
        return {k: stringify_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify_numbers(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return value


def shuffled(value, extra: bool = True):
    """Keys in reverse order at every level, plus unknown extra keys when `extra`."""
    if isinstance(value, dict):
        out = {k: shuffled(value[k], extra) for k in reversed(list(value))}
        if extra:
            out["x_unknown_field_2027"] = {"nested": [1, "two"]}
        return out
    if isinstance(value, list):
        return [shuffled(v, extra) for v in value]
    return value
