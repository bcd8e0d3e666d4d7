"""Settings for the test suite: the real settings (config/settings.py) with DEBUG off and a
test-only SECRET_KEY, so `pytest` runs without any environment variables.

Only what a test run over plain http on 127.0.0.1 needs differs from production: no HTTPS
redirect or secure-only cookies (the browser tests use a live server on http), and static
files without a collectstatic manifest.
"""

import os

_key_was_set = "SECRET_KEY" in os.environ
os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")  # noqa: S105
try:
    from config.settings import *  # noqa: F403
finally:
    if not _key_was_set:  # keep it out of the environment subprocesses inherit
        del os.environ["SECRET_KEY"]

DEBUG = False
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AUTHENTICATION_BACKENDS = [
    "tests.auth_backends.AxesBackendAllowingTestClientLogin",
    *AUTHENTICATION_BACKENDS[1:],  # noqa: F405
]

# The order list opens on a role's default filter (orders.admin_orderlist); off in tests so a
# bare changelist GET shows every order, on in the tests of that feature.
ORDER_LIST_ROLE_DEFAULTS = False

# Webhook shops are looked up on every delivery in tests (a test that changes a shop's secret
# or deactivates it expects the next delivery to see it); the per-process cache has its own test.
WEBHOOK_SHOP_CACHE_SECONDS = 0
