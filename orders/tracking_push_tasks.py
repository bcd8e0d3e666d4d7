"""django-q2 jobs for tracking numbers back to the platforms (`orders.tracking_push`). Thin:
the service claims, pushes and records; running a job twice never pushes a parcel twice.

- `push_tracking_numbers(ids)` — enqueued on commit of the transaction that shipped them;
- `retry_tracking_pushes()` — every 2 minutes (setup_schedules): pending rows that are due
  (the task was lost, or a retry's 2^n-minute wait has passed). Runs are short (a bounded
  batch, a few tries per row, ≤ 10 s Retry-After), well inside the cluster's timeout
  (Q_CLUSTER: timeout 120 s < retry 180 s, max_attempts 3).
"""

from __future__ import annotations

from orders import tracking_push


def push_tracking_numbers(ids: list[int]) -> dict:
    return tracking_push.process_many(ids).as_dict()


def retry_tracking_pushes() -> dict:
    return tracking_push.process_due().as_dict()
