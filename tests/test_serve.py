"""`manage.py serve` (what `make run` starts): the web server comes up, and stopping the
supervisor stops its children too."""

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
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "REDIS_URL": ""}
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "serve", "--no-cluster", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status = None
        for _ in range(100):
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except urllib.error.HTTPError as exc:  # unmigrated database: the queue table is missing → 503
                status = exc.code
            except OSError:
                time.sleep(0.2)
                continue
            break
        assert status in (200, 503)
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
