"""Order Hub settings: one module, driven by environment variables with safe defaults.

DATABASE_URL  default: SQLite file db.sqlite3 beside manage.py
REDIS_URL     if set, django-q2 uses the Redis broker (and Redis as cache); else the ORM broker
SECRET_KEY    required when DEBUG is off (without it the server refuses to start: config/startup.py)
DEBUG         "1"/"true" turns debug on; default OFF (`make run` turns it on for the demo)
TRUSTED_PROXY_HOPS, LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES, AUTH_TOKEN_THROTTLE_RATE
              brute-force protection and client IP, see config/security.py
ALLOWED_HOSTS comma separated
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)  # off unless asked for: `make run` sets DEBUG=1 for the demo
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # manage.py, wsgi.py and asgi.py print this one line and exit 1 (config/startup.py).
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set SECRET_KEY in the environment (or DEBUG=1 for local development only)"
        )
    SECRET_KEY = "dev-only-insecure-key-orderhub"  # noqa: S105 - development default only
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "import_export",
    "pgtrigger",
    "axes",
    "simple_history",  # audit of configuration edits (config/history.py)
    "config.apps.CoreConfig",
    "inventory",
    "orders",
    "aftersales",
    "finance",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orders.webhooks.PlatformHookFastPath",  # /hooks/<platform>/<shop>/ straight to its view (orders/webhooks.py)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",  # the admin user on history rows
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.PortalSecurityHeadersMiddleware",  # /h5/ only: CSP, frame-ancestors, no-store
    "axes.middleware.AxesMiddleware",  # last: turns a lock-out into config.security.lockout_response
]

SIMPLE_HISTORY_REVERT_DISABLED = True  # history pages are read-only: no "revert" that skips the forms

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout keep the web server and the ORM-broker cluster from tripping
    # over each other's locks in the demo.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Queue and cache --------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "orderhub",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    "timeout": 120,
    "retry": 180,  # must exceed timeout, or a slow task runs twice
    "max_attempts": 3,  # django-q2's default is unlimited
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "label": "任务队列",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    # Sessions read from Redis, written through to the database (kept across a Redis restart):
    # no session SELECT per request (the portal's pages, issue 16 benchmark).
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1
    # A cache every process shares (throttle counters must not be per worker): the database.
    # Its table is created after `migrate` (config/apps.py).
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "orderhub_cache"}
    }
# The portal's rendered page fragments (portal/pagecache.py) in a cache of their own: with
# the database cache their churn must never cull the throttle counters of "default".
CACHES["portal_pages"] = (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL} if REDIS_URL else
    {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "orderhub_portal_pages",
     "OPTIONS": {"MAX_ENTRIES": 50_000}}
)

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "admin:login"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out users and IPs
    "django.contrib.auth.backends.ModelBackend",
]
# Brute-force protection (django-axes) and the client IP behind proxies; the code is in
# config/security.py. Per username (from any IP) and per IP (with any username), separately.
TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS") or 0)  # proxies of ours in front
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT") or 5)
LOGIN_COOLOFF_MINUTES = int(os.environ.get("LOGIN_COOLOFF_MINUTES") or 15)
AUTH_TOKEN_THROTTLE_RATE = os.environ.get("AUTH_TOKEN_THROTTLE_RATE") or "10/min"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # shared by every process
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username"], ["ip_address"]]
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"
# Not reset on success: axes would delete every failure from that IP *or* for that username,
# so an attacker could clear a victim's counter by logging into an account of their own.
AXES_RESET_ON_SUCCESS = False
AXES_VERBOSE = False  # no "AXES: BEGIN" line on every command; failures are still logged

# --- I18n / time ------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"  # shown to people; the database stores UTC
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise) ----------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "config.api.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # Client IP for throttling: the same proxy trust as axes (config/security.py).
    "NUM_PROXIES": TRUSTED_PROXY_HOPS,
    "DEFAULT_THROTTLE_RATES": {"auth_token": AUTH_TOKEN_THROTTLE_RATE},  # config.security.TokenRateThrottle
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Order Hub API",
    "DESCRIPTION": "Orders from every channel, one stock pool, one lifecycle.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"OrderStatusEnum": "orders.models.OrderStatus"},
    # Request bodies get their own components (AuthTokenRequest…), so a write-only field is
    # not "required" in a response and an input that may not be blank says minLength 1.
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Business settings ------------------------------------------------------------------
ORDERHUB = {
    # Reservations on lead-time stock expire unless confirmed within this many hours.
    "LEAD_TIME_RESERVATION_HOURS": int(os.environ.get("LEAD_TIME_RESERVATION_HOURS", "24")),
    # Time zone for order numbers and dates when a shop does not say otherwise.
    "DEFAULT_TIME_ZONE": os.environ.get("SHOP_TIME_ZONE") or "Asia/Shanghai",
    # Daily pick batches per warehouse (merge, pick list, packing lists), "HH:MM" in TIME_ZONE;
    # `setup_schedules` turns them into the "pick batch" cron.
    "PICK_BATCH_TIMES": os.environ.get("PICK_BATCH_TIMES") or "09:00,15:00",
    # Delivered orders complete by themselves after this many days when nothing is open.
    "AUTO_COMPLETE_DAYS": int(os.environ.get("AUTO_COMPLETE_DAYS") or 7),
}
# Platform webhooks (/hooks/<platform>/<shop>/): larger bodies are refused with 413 unread.
WEBHOOK_MAX_BODY_BYTES = int(os.environ.get("WEBHOOK_MAX_BODY_BYTES") or 1024 * 1024)
# Each web process keeps the active shops it answered for this long (a query less per delivery);
# a new secret or a deactivated shop takes effect within it. 0 = look the shop up every time.
WEBHOOK_SHOP_CACHE_SECONDS = float(os.environ.get("WEBHOOK_SHOP_CACHE_SECONDS") or 5)

# Carrier push subscriptions (orders/carrier_subscriptions.py): the public address carriers push
# to, e.g. https://hub.example.com → https://hub.example.com/hooks/carriers/kuaidi100/
CARRIER_CALLBACK_BASE_URL = os.environ.get("CARRIER_CALLBACK_BASE_URL", "")

# --- Staff alerts to the team's group chat (config/notify.py) ----------------------------
# Parcel exceptions and returns, SKUs below safety stock, failing syncs, dead platform pushes.
NOTIFY_WECOM_WEBHOOK = os.environ.get("NOTIFY_WECOM_WEBHOOK", "")  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…
NOTIFY_DINGTALK_WEBHOOK = os.environ.get("NOTIFY_DINGTALK_WEBHOOK", "")  # https://oapi.dingtalk.com/robot/send?access_token=…
NOTIFY_DINGTALK_SECRET = os.environ.get("NOTIFY_DINGTALK_SECRET", "")  # 加签 secret (SEC…)
NOTIFY_SITE_URL = os.environ.get("NOTIFY_SITE_URL", "")  # e.g. https://hub.example.com: links in messages
NOTIFY_BATCH = int(os.environ.get("NOTIFY_BATCH") or 20)  # alerts per message

# --- Customer portal (/h5/) and SMS -----------------------------------------------------
# See portal/__init__.py. Codes: 6 digits, hashed, PORTAL_CODE_TTL_SECONDS valid, at most
# PORTAL_CODE_MAX_ATTEMPTS tries. Rate limits "N/seconds", counted in the shared cache.
PORTAL_CODE_TTL_SECONDS = int(os.environ.get("PORTAL_CODE_TTL_SECONDS") or 300)
PORTAL_CODE_MAX_ATTEMPTS = int(os.environ.get("PORTAL_CODE_MAX_ATTEMPTS") or 5)
PORTAL_SESSION_IDLE_SECONDS = int(os.environ.get("PORTAL_SESSION_IDLE_SECONDS") or 1800)
PORTAL_RATE_LIMITS = {
    "send_phone_interval": os.environ.get("PORTAL_SEND_PHONE_INTERVAL") or "1/60",  # one code a minute
    "send_phone": os.environ.get("PORTAL_SEND_PHONE_RATE") or "5/3600",
    "send_ip": os.environ.get("PORTAL_SEND_IP_RATE") or "20/3600",
    "verify_phone": os.environ.get("PORTAL_VERIFY_PHONE_RATE") or "10/3600",
    "verify_ip": os.environ.get("PORTAL_VERIFY_IP_RATE") or "50/3600",
}
PORTAL_SERVICE_PHONE = os.environ.get("PORTAL_SERVICE_PHONE") or "400-800-8888"
PORTAL_SERVICE_HOURS = os.environ.get("PORTAL_SERVICE_HOURS") or _("每天 9:00–21:00")
PORTAL_TIME_ZONE = os.environ.get("PORTAL_TIME_ZONE") or "Asia/Shanghai"
# The render cache of "my orders" and an order's page (portal/pagecache.py), in the default
# cache: seconds a fragment is kept (0 = no cache). Keys carry a fingerprint of the data.
PORTAL_PAGE_CACHE_SECONDS = int(os.environ.get("PORTAL_PAGE_CACHE_SECONDS") or 600)
# Who may frame the portal (CSP frame-ancestors). WeChat's menu opens it top-level in its
# own browser; 'self' plus WeChat's domains keeps article/menu embeds working.
PORTAL_FRAME_ANCESTORS = os.environ.get("PORTAL_FRAME_ANCESTORS") or "'self' https://*.weixin.qq.com https://*.qq.com"
# SMS: "outbox" (default: stored in PortalSmsOutbox, shown in the admin and the log) or
# "aliyun" (Alibaba Cloud SMS SendSms, RPC-signed).
SMS_BACKEND = os.environ.get("SMS_BACKEND") or "outbox"
SMS_ALIYUN = {
    "ENDPOINT": os.environ.get("SMS_ALIYUN_ENDPOINT") or "https://dysmsapi.aliyuncs.com/",
    "ACCESS_KEY_ID": os.environ.get("SMS_ALIYUN_ACCESS_KEY_ID", ""),
    "ACCESS_KEY_SECRET": os.environ.get("SMS_ALIYUN_ACCESS_KEY_SECRET", ""),
    "SIGN_NAME": os.environ.get("SMS_ALIYUN_SIGN_NAME", ""),
    "TEMPLATE_CODE": os.environ.get("SMS_ALIYUN_TEMPLATE_CODE", ""),
    "REGION_ID": os.environ.get("SMS_ALIYUN_REGION_ID") or "cn-hangzhou",
    "TIMEOUT": float(os.environ.get("SMS_ALIYUN_TIMEOUT") or 5),
}

# --- Excel import / export ---------------------------------------------------------------
# Uploaded import files are kept under MEDIA_ROOT for IMPORT_KEEP_DAYS (then
# `purge_import_files` deletes them; the ImportJob row stays). Never served publicly.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "media")
MEDIA_URL = "/media/"
IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES") or 20 * 1024 * 1024)
IMPORT_ASYNC_ROWS = int(os.environ.get("IMPORT_ASYNC_ROWS") or 5000)  # more rows: a django-q2 task
IMPORT_KEEP_DAYS = int(os.environ.get("IMPORT_KEEP_DAYS") or 30)
# An xlsx export of more rows is written by a django-q2 task (download link on its page);
# CSV always streams. Task files are kept EXPORT_KEEP_DAYS.
EXPORT_ASYNC_ROWS = int(os.environ.get("EXPORT_ASYNC_ROWS") or 20000)
EXPORT_KEEP_DAYS = int(os.environ.get("EXPORT_KEEP_DAYS") or 7)

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Production security (switched on when DEBUG is off) --------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
