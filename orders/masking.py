"""Personal data masking: phone 138****5678, name 张*, address cut after the district."""

from __future__ import annotations

import re


def mask_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    if not digits:
        return ""
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * len(digits)


def mask_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1) if len(name) > 1 else name + "*"


def mask_address(address: str) -> str:
    """The detailed street address is hidden entirely; province/city/district stay visible."""
    return "****" if address else ""
