"""Scan events on core NATS: `codereview.scans.<scan_id>.progress|completed|failed`, the ScanStatus
JSON as payload; progress at most every ANALYZER_SCAN_PROGRESS_EVERY_S per scan and process."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient

from jobs_contract.messages import SCAN_EVENTS_PREFIX
from review_contract.scan import ScanStatus

logger = logging.getLogger("analyzer.scan.events")

PROGRESS = "progress"
COMPLETED = "completed"
FAILED = "failed"
# Scans whose last progress time is remembered (the oldest are forgotten: at worst one extra event).
_REMEMBERED = 10_000

_json = msgspec.json.Encoder()


def scan_event_subject(scan_id: str, event: str) -> str:
    return f"{SCAN_EVENTS_PREFIX}.{scan_id}.{event}"


class ScanEvents:
    """Publishes scan events; a lost event is logged, never an error (events are for watchers, the
    record in the `scans` bucket is the truth)."""

    def __init__(self, nc: NatsClient, *, progress_every_s: float) -> None:
        self._nc = nc
        self._every_s = progress_every_s
        self._last: OrderedDict[str, float] = OrderedDict()

    async def progress(self, status: ScanStatus, *, force: bool = False) -> None:
        now = time.monotonic()
        last = self._last.get(status.scan_id)
        if not force and last is not None and now - last < self._every_s:
            return
        self._last[status.scan_id] = now
        self._last.move_to_end(status.scan_id)
        while len(self._last) > _REMEMBERED:
            self._last.popitem(last=False)
        await self._publish(status, PROGRESS)

    async def ended(self, status: ScanStatus) -> None:
        """`.completed` or `.failed`, as the status says."""
        self._last.pop(status.scan_id, None)
        await self._publish(status, COMPLETED if status.status == "completed" else FAILED)

    async def _publish(self, status: ScanStatus, event: str) -> None:
        try:
            await self._nc.publish(scan_event_subject(status.scan_id, event), _json.encode(status))
        except (TimeoutError, nats.errors.Error) as exc:
            logger.warning("scan %s: the %s event was not published: %r", status.scan_id, event, exc)
