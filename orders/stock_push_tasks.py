"""django-q2 jobs for stock back to channels. Thin and idempotent: the service decides.

`push_stock_to_channels` runs every minute (setup_schedules). A run holds a lease on the
cursor row, so two clusters never push at once; a run killed mid-way leaves the cursor where
it was, and the next run recomputes the same listings (an unchanged figure costs no call).
"""

from __future__ import annotations

from config.actors import Actor, Source
from orders import stock_push


def push_stock_to_channels() -> dict:
    report = stock_push.push_changed(actor=Actor.system("stock_push", Source.JOB))
    return report.as_dict()
