"""Shared plumbing for the bench scripts: a dedicated PostgreSQL database and Django setup.

Benchmarks never touch the project's own database: they derive `<name>_bench` from
DATABASE_URL (same server and credentials), create it if missing and migrate it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


class BenchError(SystemExit):
    """A reason the bench cannot run, printed as one line (no traceback)."""

    def __init__(self, script: str, message: str):
        print(f"{script}: {message}", file=sys.stderr)
        super().__init__(2)


def require_postgres_url(script: str) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in POSTGRES_SCHEMES:
        raise BenchError(script, "needs PostgreSQL: run with DATABASE_URL=postgres://user@host:5432/dbname "
                                 "(a dedicated <dbname>_bench database is created and used)")
    return url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def ensure_database(url: str, script: str) -> bool:
    """Create the database named in `url` (via the server's `postgres` database) if missing.

    Returns True when it was created.
    """
    import psycopg
    from psycopg import sql

    name = database_name(url)
    try:
        with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.OperationalError as exc:
        raise BenchError(script, f"cannot reach PostgreSQL: {str(exc).strip().splitlines()[0]}") from exc


def setup_django(url: str) -> None:
    """Point Django at `url` and set it up (call once per process, before importing models).

    DEBUG is off unless the caller set it: with DEBUG on Django keeps every query in memory,
    which is not what production pays.
    """
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")  # settings refuse an empty key with DEBUG off
    import django

    django.setup()
    import logging

    # One INFO line per notification would measure the terminal, not the service.
    logging.getLogger("orderhub").setLevel(logging.WARNING)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]
