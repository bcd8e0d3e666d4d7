import os

import pytest
from django.conf import settings

from config.actors import Actor, Source


def _is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://...")
    for item in items:
        if "postgres" in item.keywords and not _is_postgres():
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(skip_redis)


@pytest.fixture
def system():
    return Actor.system("tests")


@pytest.fixture
def actor_for():
    """actor_for(user, source="admin") → Actor."""

    def make(user, source: str = Source.ADMIN) -> Actor:
        return Actor.of(user, source)

    return make


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The default PBKDF2 hasher costs ~0.3 s per user; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_shared_cache(request):
    """Throttle counters live in the shared cache. The database cache is emptied by each
    test's rollback; Redis (REDIS_URL) or an in-process cache outlive a test, so clear them."""
    from django.core.cache import cache

    backend = settings.CACHES["default"]["BACKEND"]
    if not backend.endswith("DatabaseCache"):
        cache.clear()
    yield


@pytest.fixture
def fresh_security(db):
    """A clean slate for brute-force tests: no axes attempts, no throttle counters, before and after."""
    from axes.handlers.proxy import AxesProxyHandler
    from django.core.cache import cache

    def reset():
        AxesProxyHandler.reset_attempts()
        AxesProxyHandler.reset_logs()
        cache.clear()

    reset()
    yield
    reset()


@pytest.fixture(autouse=True)
def _default_language():
    """Every test starts in the project's default language (zh-hans): a test that activates
    English (directly or through a request with Accept-Language / the language cookie) must
    not change what the next test in the same worker reads."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)
