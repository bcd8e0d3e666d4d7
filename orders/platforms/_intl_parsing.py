"""Small helpers shared by the token-paged adapters (Shopify, Amazon, sandbox).

`parsing.py` (money, ints, flags, times) covers the values; what is here is what the Chinese
platforms do not need: a cursor for APIs that page with an opaque token instead of a time
window, and case-insensitive HTTP header lookup (the interface's ``parse_list_response``
takes only the body, so these adapters accept the headers and status as extra keywords).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from orders.platforms.parsing import parse_time

__all__ = ["TokenCursor", "header", "iso_utc"]


def iso_utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenCursor:
    """``since|newest|token`` as an opaque string.

    ``since`` is the lower bound (updated at or after) of the run's query; ``token`` the
    platform's next-page token ("" = first page of the run); ``newest`` the newest platform
    update time seen so far in the run (or the bound the platform says it answered up to), so
    that when the last page is read the next run starts from there.
    """

    since: datetime
    newest: datetime | None = None
    token: str = ""

    def __str__(self) -> str:
        newest = iso_utc(self.newest) if self.newest else ""
        return f"{iso_utc(self.since)}|{newest}|{self.token}"

    @classmethod
    def parse(cls, cursor: str) -> "TokenCursor":
        try:
            since, newest, token = cursor.split("|", 2)
            start = parse_time(since)
            if start is None:
                raise ValueError(cursor)
            return cls(start, parse_time(newest) if newest else None, token)
        except ValueError as exc:
            raise ValueError(f"not a token cursor: {cursor!r}") from exc

    def seen(self, *times: datetime | None) -> "TokenCursor":
        """The same cursor with ``newest`` moved to the latest of ``times``."""
        newest = max([t for t in (self.newest, *times) if t is not None], default=None)
        return TokenCursor(self.since, newest, self.token)

    def next_page(self, token: str) -> "TokenCursor":
        return TokenCursor(self.since, self.newest, token)

    def next_run(self, *, overlap: timedelta) -> "TokenCursor":
        """Where the next run starts once the last page is committed: the newest update seen,
        minus ``overlap`` (orders updated while the run paged are read again, never missed;
        the upsert counts them unchanged), never before this run's own start."""
        if self.newest is None:
            return TokenCursor(self.since)
        return TokenCursor(max(self.since, self.newest - overlap))


def header(headers: Mapping[str, str] | None, name: str) -> str:
    """A header's value, whatever the case of its name ("" when absent)."""
    if not headers:
        return ""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return "" if value is None else str(value)
    return ""
