"""`manage.py serve` (what `make run` starts): the web server comes up healthy, and
stopping the supervisor stops its children too."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


@pytest.mark.skipif(sys.platform != "linux", reason="uses ps")
def test_serve_answers_and_stops_its_children(tmp_path):
    port = free_port()
    # DEBUG on, as `make run` sets it for the demo (no SECRET_KEY needed then).
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "REDIS_URL": "", "DEBUG": "1"}
    # A migrated database, as `make run` has: the ORM queue broker's table exists, so a
    # healthy server answers 200 and anything else (503 included) is a failure.
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "serve", "--no-cluster", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status, body = None, None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    status, body = response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:  # the server answered, but not healthy: keep it for the assert
                status, body = exc.code, json.loads(exc.read() or b"null")
            except OSError:  # not listening yet
                time.sleep(0.2)
                continue
            break
        assert status == 200, f"/healthz answered {status}: {body}"
        assert body == {"status": "ok", "database": "ok", "queue": "ok (orm)"}
        children = children_of(proc.pid)
        assert children, "serve started no web server"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(c) for c in children), "a child outlived serve"
    finally:
        if proc.poll() is None:
            proc.kill()
