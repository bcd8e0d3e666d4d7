import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_queue(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["queue"].startswith("ok")


def test_healthz_is_503_when_the_queue_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["queue"].startswith("error")


def test_healthz_is_503_when_the_database_is_down(client, monkeypatch):
    from config import health

    monkeypatch.setattr(health, "_database", lambda: "error: OperationalError")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
