"""`Retry-After` (RFC 9110), read: how long a server asked its client to wait.

The gateway honours its providers' and the analyzer its gateway's with this one reading.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# delta-seconds (RFC 9110: digits; a decimal fraction is taken too): never a sign, NaN or infinity.
_DELTA_SECONDS = re.compile(r"\d{1,12}(?:\.\d{1,9})?")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now (delta-seconds or an HTTP date); None if absent or unreadable.

    `-5`, `NaN`, `inf` and the like are unreadable, not "now": a server that sends them gets the
    client's own backoff, never three retries in a few milliseconds.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    if value[:1] in "+-" or value[:1].isdigit():
        return None  # a number, but not delta-seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
