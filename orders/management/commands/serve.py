"""`python manage.py serve`: the web server and a django-q2 cluster together, as `make run` uses.

Each child runs in its own session, so a terminal's Ctrl-C reaches only this process,
which then asks each child exactly once to stop with SIGTERM (a second signal makes the
cluster's shutdown hang; SIGINT may be ignored by a child started in the background) and
kills whatever has not stopped after a grace period.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

GRACE_SECONDS = 15


class Command(BaseCommand):
    help = "Run the web server and a task cluster together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--no-cluster", action="store_true", help="web server only")

    def handle(self, *args, host: str, port: int, no_cluster: bool, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = [manage + ["runserver", f"{host}:{port}", "--noreload"]]
        if not no_cluster:
            commands.append(manage + ["qcluster"])
        children = [subprocess.Popen(cmd, start_new_session=True) for cmd in commands]
        self.stdout.write(f"Order Hub on http://{host}:{port}/ — Ctrl-C stops the web server and the task cluster.")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.5)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + GRACE_SECONDS
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL)]
        if failed and not stopping:
            raise SystemExit(f"a child process stopped unexpectedly (exit {failed[0].returncode})")
