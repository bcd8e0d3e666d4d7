"""Privacy and security of the foundation: DEBUG off unless asked for, no start without a
SECRET_KEY, brute-force lock-out (django-axes) on the admin login and the token endpoint,
throttling of the token endpoint, and the client IP behind a proxy.

Expectations are written from the requirements: 5 failures lock that username from every
IP, and that IP for every username; the lock refuses even the right password; the token
endpoint answers 403 `locked_out` and 429 `throttled` with the API's error body; a client's
own X-Forwarded-For never changes who it is.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config.security import client_ip
from tests.factories import staff

ROOT = Path(__file__).resolve().parent.parent
ADMIN_LOGIN = "/admin/login/"
TOKEN_URL = "/api/v1/auth/token/"
PASSWORD = "pass-1234"  # tests.factories.UserFactory's password


# --- DEBUG and SECRET_KEY (fresh interpreters with a clean environment) ---------------------
def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No DEBUG, no SECRET_KEY, no DJANGO_ENV: only what a shell needs plus `extra`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'security.sqlite3'}",
    }
    env.update(extra)
    return env


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


PRINT_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
    "'debug': s.DEBUG, 'hops': s.TRUSTED_PROXY_HOPS, 'num_proxies': s.REST_FRAMEWORK['NUM_PROXIES'], "
    "'limit': s.AXES_FAILURE_LIMIT, 'cooloff': s.AXES_COOLOFF_TIME.total_seconds(), "
    "'params': s.AXES_LOCKOUT_PARAMETERS, 'cache': s.CACHES['default']['BACKEND'], "
    "'rate': s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['auth_token']}))"
)


def settings_in_subprocess(env: dict[str, str]) -> dict:
    result = run_python(["-c", PRINT_SETTINGS], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_debug_is_off_when_the_environment_does_not_ask_for_it(tmp_path):
    # DJANGO_ENV=development used to switch DEBUG on; now only DEBUG does.
    got = settings_in_subprocess(clean_env(tmp_path, SECRET_KEY="k", DJANGO_ENV="development"))
    assert got["debug"] is False
    assert (got["hops"], got["num_proxies"]) == (0, 0)
    assert (got["limit"], got["cooloff"]) == (5, 900.0)  # 5 failures, 15 minutes
    assert got["params"] == [["username"], ["ip_address"]]  # two independent counters
    assert got["cache"] == "django.core.cache.backends.db.DatabaseCache"  # shared by every process, never locmem
    assert got["rate"] == "10/min"


def test_debug_on_only_when_asked_and_the_knobs_come_from_the_environment(tmp_path):
    env = clean_env(tmp_path, DEBUG="1", TRUSTED_PROXY_HOPS="1", LOGIN_FAILURE_LIMIT="3",
                    LOGIN_COOLOFF_MINUTES="2", AUTH_TOKEN_THROTTLE_RATE="4/min",
                    REDIS_URL="redis://127.0.0.1:6379/1")
    got = settings_in_subprocess(env)
    assert got["debug"] is True
    assert (got["hops"], got["num_proxies"]) == (1, 1)  # axes and DRF trust the same proxy hops
    assert (got["limit"], got["cooloff"], got["rate"]) == (3, 120.0, "4/min")
    assert got["cache"] == "django.core.cache.backends.redis.RedisCache"


@pytest.mark.parametrize(
    "entry_point",
    [["manage.py", "check"], ["manage.py", "runserver", "--noreload"], ["-c", "import config.wsgi"],
     ["-c", "import config.asgi"]],
    ids=["manage-check", "manage-runserver", "wsgi", "asgi"],
)
def test_without_secret_key_and_debug_off_the_server_refuses_in_one_line(tmp_path, entry_point):
    result = run_python(entry_point, clean_env(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_gunicorn_stops_instead_of_respawning_refused_workers(tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    if not gunicorn.exists():
        pytest.skip("gunicorn not installed")
    result = subprocess.run([str(gunicorn), "--bind", "127.0.0.1:0", "--workers", "1", "config.wsgi"], cwd=ROOT,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 3  # gunicorn's "worker failed to boot": the master gives up
    refusals = [line for line in result.stderr.splitlines() if line.startswith("Order Hub: refusing to start")]
    assert len(refusals) == 1 and "SECRET_KEY" in refusals[0]
    assert "Traceback" not in result.stderr


def test_debug_on_starts_without_a_secret_key(tmp_path):
    result = run_python(["manage.py", "check"], clean_env(tmp_path, DEBUG="1"))
    assert result.returncode == 0, result.stderr


def test_a_secret_key_is_enough_with_debug_off(tmp_path):
    result = run_python(["manage.py", "check"], clean_env(tmp_path, SECRET_KEY="a-real-secret"))
    assert result.returncode == 0, result.stderr


# --- lock-out on the admin login ---------------------------------------------------------------
def admin_login(username: str, password: str, ip: str, **headers) -> tuple[int, Client]:
    client = Client()
    response = client.post(ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"},
                           REMOTE_ADDR=ip, **headers)
    return response.status_code, client


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def alice(fresh_security):
    return staff("supervisor", username="alice")


@pytest.fixture
def bob(fresh_security):
    return staff("finance", username="bob")


def test_admin_login_works_with_the_right_password(alice):
    status, client = admin_login("alice", PASSWORD, "10.0.0.1")
    assert status == 302 and logged_in(client)


def test_four_failures_do_not_lock(alice):
    for i in range(4):
        assert admin_login("alice", "wrong", f"10.0.1.{i}")[0] == 200  # the form again, with an error
    status, client = admin_login("alice", PASSWORD, "10.0.1.9")
    assert status == 302 and logged_in(client)


def test_five_failures_lock_that_user_even_from_other_ips(alice):
    statuses = [admin_login("alice", "wrong", f"10.0.2.{i}")[0] for i in range(5)]  # a new IP each time
    assert statuses == [200, 200, 200, 200, 403]
    status, client = admin_login("alice", PASSWORD, "10.0.2.99")  # right password, fresh IP
    assert status == 403
    assert not logged_in(client)
    assert "锁定" in client.post(ADMIN_LOGIN, {"username": "alice", "password": PASSWORD},
                                 REMOTE_ADDR="10.0.2.98").content.decode()


def test_five_failures_lock_that_ip_even_for_other_usernames(alice, bob):
    for i in range(5):
        admin_login(f"nobody{i}", "wrong", "10.0.3.1")  # a new username each time
    status, client = admin_login("bob", PASSWORD, "10.0.3.1")  # right password, same IP
    assert status == 403 and not logged_in(client)
    status, client = admin_login("bob", PASSWORD, "10.0.3.2")  # the same user elsewhere is fine
    assert status == 302 and logged_in(client)


def test_a_user_lock_does_not_lock_others_on_the_same_ips(alice, bob):
    for i in range(5):
        admin_login("alice", "wrong", f"10.0.4.{i}")
    status, client = admin_login("bob", PASSWORD, "10.0.4.0")  # one alice failure from this IP
    assert status == 302 and logged_in(client)


def test_axes_reset_unlocks(alice):
    for i in range(5):
        admin_login("alice", "wrong", "10.0.5.1")
    assert admin_login("alice", PASSWORD, "10.0.5.1")[0] == 403
    call_command("axes_reset", verbosity=0)
    status, client = admin_login("alice", PASSWORD, "10.0.5.1")
    assert status == 302 and logged_in(client)


# --- the token endpoint: lock-out and throttle ----------------------------------------------------
def token(username: str, password: str, ip: str = "10.1.0.1", **headers):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json",
                            REMOTE_ADDR=ip, **headers)


def test_token_endpoint_locks_out_with_403_and_the_error_body(alice):
    answers = [token("alice", "wrong", ip=f"10.1.1.{i}") for i in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 403]
    assert answers[0].json()["code"] == "invalid_credentials"
    locked = token("alice", PASSWORD, ip="10.1.1.50")  # right password while locked
    assert locked.status_code == 403
    body = locked.json()
    assert body["code"] == "locked_out"
    assert body["detail"] and "锁定" in body["detail"]
    assert "token" not in body


def test_token_failures_and_admin_failures_share_one_counter(alice):
    for i in range(3):
        admin_login("alice", "wrong", f"10.1.2.{i}")
    assert token("alice", "wrong", ip="10.1.2.10").status_code == 400
    assert token("alice", "wrong", ip="10.1.2.11").status_code == 403  # the 5th failure
    assert admin_login("alice", PASSWORD, "10.1.2.12")[0] == 403


def test_token_endpoint_locks_an_ip_for_every_username(alice, bob):
    for i in range(5):
        token(f"guess{i}", "wrong", ip="10.1.3.1")
    assert token("bob", PASSWORD, ip="10.1.3.1").json()["code"] == "locked_out"
    assert token("bob", PASSWORD, ip="10.1.3.2").status_code == 200


def test_token_endpoint_throttles_with_429_and_the_error_body(alice):
    for _ in range(10):  # successful requests count toward the rate, failures toward the lock
        assert token("alice", PASSWORD, ip="10.1.4.1").status_code == 200
    throttled = token("alice", PASSWORD, ip="10.1.4.1")
    assert throttled.status_code == 429
    body = throttled.json()
    assert body["code"] == "throttled"
    assert body["detail"]
    assert int(throttled["Retry-After"]) > 0
    assert token("alice", PASSWORD, ip="10.1.4.2").status_code == 200  # per client IP


def test_the_schema_documents_the_token_refusals(db):
    schema = json.loads(APIClient().get("/api/schema/", {"format": "json"}).content)
    responses = schema["paths"][TOKEN_URL]["post"]["responses"]
    assert {"200", "400", "403", "429"} <= set(responses)
    for status in ("400", "403", "429"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOutput")


# --- client IP and proxies ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hops", "xff", "expected"),
    [
        (0, None, "192.0.2.10"),
        (0, "198.51.100.1", "192.0.2.10"),  # a client-sent header changes nothing
        (1, "198.51.100.1", "198.51.100.1"),  # our proxy appended the client
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the spoofed leftmost entry is ignored
        (1, "6.6.6.6,198.51.100.1 ", "198.51.100.1"),
        (1, None, "192.0.2.10"),  # not through the proxy: the connection's address
        (1, "6.6.6.6, not-an-ip", "192.0.2.10"),
        (2, "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"),
        (2, "198.51.100.1", "192.0.2.10"),  # fewer entries than hops
    ],
)
def test_client_ip(settings, hops, xff, expected):
    settings.TRUSTED_PROXY_HOPS = hops
    headers = {"HTTP_X_FORWARDED_FOR": xff} if xff is not None else {}
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.10", **headers)
    assert client_ip(request) == expected


def test_spoofed_forwarded_for_does_not_escape_the_ip_lock_without_a_proxy(alice, bob, settings):
    settings.TRUSTED_PROXY_HOPS = 0
    for i in range(5):
        admin_login(f"guess{i}", "wrong", "10.2.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    status, client = admin_login("bob", PASSWORD, "10.2.0.1", HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert status == 403 and not logged_in(client)


def test_behind_one_proxy_the_rightmost_entry_is_the_client(alice, bob, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = "10.2.1.1"  # every request arrives from the proxy
    for i in range(5):  # the attacker varies the leftmost entry; the proxy appends 203.0.113.7
        admin_login(f"guess{i}", "wrong", proxy, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7")
    status, _client = admin_login("bob", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.7")
    assert status == 403
    status, client = admin_login("bob", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.8")  # someone else
    assert status == 302 and logged_in(client)


def test_behind_one_proxy_the_throttle_keys_on_the_rightmost_entry(alice, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = "10.2.2.1"
    for i in range(10):
        assert token("alice", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7").status_code == 200
    assert token("alice", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7").status_code == 429
    assert token("alice", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


# --- the shared cache -----------------------------------------------------------------------------------
def test_migrate_creates_the_database_cache_table(tmp_path):
    # Not the test database: Django's test runner creates cache tables itself.
    env = clean_env(tmp_path, SECRET_KEY="k")
    result = run_python(["manage.py", "migrate", "--noinput", "-v0"], env)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "security.sqlite3") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "orderhub_cache" in tables


def test_without_redis_the_cache_is_the_shared_database_table(db, settings):
    if os.environ.get("REDIS_URL"):
        assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
        return
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    table = settings.CACHES["default"]["LOCATION"]
    from django.core.cache import cache

    cache.set("security-test", 42)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
        assert cursor.fetchone()[0] == 1  # stored in the table, where every process reads it
    assert cache.get("security-test") == 42
