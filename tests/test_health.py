"""GET /healthz: the real database and queue checks, up and down.

Nothing here replaces the check under test: "down" is made real, either by sending the
check to a database that cannot be reached or by making the live connection's queries
fail at the driver boundary (`connection.execute_wrapper`), the way a dropped server does.
"""

import pytest
from django.db import OperationalError, connection, connections
from django.test.utils import CaptureQueriesContext

from config import health

pytestmark = pytest.mark.django_db

HEALTHY = {"status": "ok", "database": "ok", "queue": "ok (orm)"}


def unreachable_connection():
    """A real connection object of the test database's engine that cannot connect."""
    real = connections["default"]
    settings_dict = {**real.settings_dict}
    if real.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent-dir/orderhub/down.sqlite3"  # sqlite cannot create the directory
    else:
        settings_dict.update(HOST="127.0.0.1", PORT="1", OPTIONS={**settings_dict.get("OPTIONS", {}), "connect_timeout": 1})
    return type(real)(settings_dict, alias="healthz-down")


def test_the_database_check_queries_the_real_database():
    with CaptureQueriesContext(connection) as queries:
        assert health._database() == "ok"
    assert [q["sql"] for q in queries] == ["SELECT 1"]


def test_healthz_reports_database_and_queue(client, settings):
    settings.REDIS_URL = ""  # the ORM broker on the test database
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == HEALTHY
    assert any(q["sql"] == "SELECT 1" for q in queries)  # it really asked the database
    assert "no-cache" in response["Cache-Control"]  # never_cache: a probe must not read a cached answer


def test_healthz_is_get_only(client):
    assert client.post("/healthz").status_code == 405


def test_healthz_is_503_when_the_queue_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("error", "ok")
    assert body["queue"].startswith("error: ") and "ConnectionError" in body["queue"]


def test_the_database_check_fails_on_an_unreachable_database(monkeypatch):
    down = unreachable_connection()
    monkeypatch.setattr(health, "connection", down)
    try:
        assert health._database() == "error: OperationalError"
    finally:
        down.close()


def test_healthz_is_503_when_the_database_cannot_be_reached(client, settings, monkeypatch):
    settings.REDIS_URL = ""
    down = unreachable_connection()
    monkeypatch.setattr(health, "connection", down)  # the check's connection, not the check
    try:
        response = client.get("/healthz")
    finally:
        down.close()
    assert response.status_code == 503
    # The queue (ORM broker on the still-working default database) is fine: the database
    # alone makes the server unhealthy.
    assert response.json() == {"status": "error", "database": "error: OperationalError", "queue": "ok (orm)"}


def test_healthz_is_503_when_every_query_fails(client, settings):
    settings.REDIS_URL = ""

    def server_gone(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(server_gone):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == "error: OperationalError"
    assert body["queue"].startswith("error: ")  # the ORM broker lives in the same database
