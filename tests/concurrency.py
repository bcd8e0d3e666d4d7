"""Run calls at the same moment from real threads, each with its own database connection."""

from __future__ import annotations

import threading
from typing import Callable

from django.db import connection


def run_together(calls: list[Callable[[], object]], *, timeout: float = 60) -> list[tuple[str, object]]:
    """Run every call in its own thread (own connection), all released at once by a barrier.

    Returns one ("ok", value) or ("error", exception) per call, in order.
    """
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, object] | None] = [None] * len(calls)

    def worker(i: int, call: Callable[[], object]) -> None:
        try:
            connection.ensure_connection()  # connect before the start line, so the race is the work
            barrier.wait(timeout=timeout)
            outcomes[i] = ("ok", call())
        except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
            outcomes[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker is stuck (lock wait?)"
    return outcomes  # type: ignore[return-value]
