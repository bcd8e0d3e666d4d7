"""The sandbox carrier: moves demo parcels along, one scan per poll, deterministically.

No network: `next_update` looks at how many scans a parcel already has and answers with the
next one of a fixed script (time = now). One parcel in twenty (by its tracking number) hits
a delay exception half way and then carries on, so the demo shows exceptions too.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from orders.carriers.base import Scan, TrackingUpdate
from orders.models import TrackingState as T

name = "sandbox"

SCRIPT: tuple[tuple[str, str], ...] = (
    (T.PICKED_UP, "快件已揽收"),
    (T.IN_TRANSIT, "快件已到达始发转运中心"),
    (T.IN_TRANSIT, "快件已从始发转运中心发出,发往目的地"),
    (T.IN_TRANSIT, "快件已到达目的地转运中心"),
    (T.OUT_FOR_DELIVERY, "快递员正在派件"),
    (T.DELIVERED, "已签收,感谢使用"),
)
DELAY = (T.EXCEPTION, "快件延误,正在加急处理")


def script_for(tracking_number: str) -> tuple[tuple[str, str], ...]:
    if int(hashlib.sha256(tracking_number.encode()).hexdigest()[:8], 16) % 20 == 0:
        return SCRIPT[:3] + (DELAY,) + SCRIPT[3:]
    return SCRIPT


def next_update(*, carrier: str, tracking_number: str, scans_so_far: int, now: datetime) -> TrackingUpdate:
    """The parcel's next scan (or no news once the script is done)."""
    script = script_for(tracking_number)
    if scans_so_far >= len(script):
        return TrackingUpdate(carrier=carrier, tracking_number=tracking_number, state=None)
    state, text = script[scans_so_far]
    scan = Scan(occurred_at=now, description=text, state=state, carrier_state=f"step{scans_so_far + 1}",
                raw={"step": scans_so_far + 1})
    return TrackingUpdate(carrier=carrier, tracking_number=tracking_number, state=state, scans=(scan,),
                          provider_carrier=carrier)


# --- e-waybills: numbers issued locally, so the demo works offline ------------------------------
def issue_waybill(*, order, sequence: int):
    """A sandbox e-waybill: ``SB`` + 12 digits from a database sequence (unique, deterministic
    for a given sequence value) and a sort code from the receiver's province and city."""
    from orders.carriers.base import WaybillResult

    number = f"SB{sequence:012d}"
    sort_code = "-".join(x for x in (order.receiver.province[:2], order.receiver.city[:2]) if x)
    return WaybillResult(tracking_number=number, carrier=order.carrier, sort_code=sort_code,
                         package_center=f"{order.receiver.province[:2]}集包" if order.receiver.province else "",
                         raw={"sandbox": True, "sequence": sequence})
