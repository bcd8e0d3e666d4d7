"""Refuse to start with a configuration error as one clear line, not a traceback.

manage.py, wsgi.py and asgi.py call `load_settings()` before Django starts: it imports the
settings, and if they raise `ImproperlyConfigured` (e.g. DEBUG off and no SECRET_KEY) it
writes `Order Hub: refusing to start: <reason>` to stderr and exits with status 1.

Under gunicorn the status is 3 instead, gunicorn's "worker failed to boot": a worker that
exits with 1 is simply respawned, forever; 3 makes the master stop. (With `--preload` the
master loads the app itself and exits with that status.)
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured

GUNICORN_BOOT_ERROR = 3  # gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR


def load_settings() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    try:
        settings.SECRET_KEY  # noqa: B018 - imports the settings module and checks the key
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Order Hub: refusing to start: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(GUNICORN_BOOT_ERROR if "gunicorn" in sys.modules else 1) from None
