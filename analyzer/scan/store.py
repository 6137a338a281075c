"""Scans in the `scans` KV bucket: the record of each scan (changed only by compare-and-set), each
piece's result under a key of its own, the model budget a scan's workers share, and which scan a
request of a job is already running as.

Keys: `<scan_id>` the ScanRecord (JSON); `<scan_id>.p.<index>` a StoredPiece and
`<scan_id>.p.<index>.f.<part>` its findings (msgpack), so a piece stored again overwrites its own
keys and is never reported twice; `<scan_id>.budget` the model budget used; `req.<job_id>.<digest>`
the scan id of the last scan started with that request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from analyzer.errors import NatsUnavailable
from analyzer.scan.errors import ScanNotFound
from analyzer.scan.model import PieceResult, ScanRecord, StoredPiece
from review_contract.scan import ScanFinding

logger = logging.getLogger("analyzer.scan.store")

# Scan ids are uuid4 hex, issued by the analyzer.
SCAN_ID = re.compile(r"^[0-9a-f]{32}\Z")
# Compare-and-set attempts before a change is given up (each lost race means another worker's
# change went in: the counts still converge, so many attempts are only ever needed under a storm).
_CAS_ATTEMPTS = 200

_json = msgspec.json.Encoder()
_record = msgspec.json.Decoder(ScanRecord)
_pack = msgspec.msgpack.Encoder()
_piece = msgspec.msgpack.Decoder(StoredPiece)
_findings = msgspec.msgpack.Decoder(list[ScanFinding])
_use = msgspec.json.Decoder(tuple[int, int])


def check_scan_id(scan_id: str) -> str:
    """The id itself, or ScanNotFound (404): no scan could have it."""
    if SCAN_ID.match(scan_id) is None:
        raise ScanNotFound(
            f"no scan {scan_id[:100]!r}: a scan id is 32 lowercase hexadecimal digits", scan_id=scan_id[:100]
        )
    return scan_id


def _unavailable(what: str, exc: BaseException) -> NatsUnavailable:
    return NatsUnavailable(f"could not {what} on NATS: {exc!r}")


class ScanStore:
    """The `scans` bucket as the scan routes and workers use it. Every method raises
    NatsUnavailable (503) when NATS does not answer."""

    def __init__(self, kv: KeyValue, *, part_bytes: int = 256 * 1024) -> None:
        self._kv = kv
        # Findings of a piece per KV message, encoded: well under NATS' max payload (1 MiB default).
        self._part_bytes = part_bytes

    async def create(self, record: ScanRecord) -> None:
        try:
            await self._kv.create(record.status.scan_id, _json.encode(record))
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable("create the scan record", exc) from exc

    async def get(self, scan_id: str) -> tuple[ScanRecord, int]:
        """The scan's record and its revision. Raises ScanNotFound (404)."""
        check_scan_id(scan_id)
        try:
            entry = await self._kv.get(scan_id)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError) as exc:
            raise ScanNotFound(f"no scan {scan_id!r} (never started, or aged out)", scan_id=scan_id) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(f"read scan {scan_id}", exc) from exc
        if entry.value is None:
            raise ScanNotFound(f"no scan {scan_id!r}", scan_id=scan_id)
        try:
            return _record.decode(entry.value), entry.revision or 0
        except msgspec.DecodeError as exc:
            raise NatsUnavailable(f"scan {scan_id} has an unreadable record in NATS: {exc}") from exc

    async def change(
        self, scan_id: str, edit: Callable[[ScanRecord], ScanRecord | None]
    ) -> ScanRecord | None:
        """Apply `edit` to the current record by compare-and-set, again on the newer record each
        time another writer got in first. `edit` returns None for "no change"; so does this.
        Returns the record written. Raises ScanNotFound, NatsUnavailable."""
        for _ in range(_CAS_ATTEMPTS):
            record, revision = await self.get(scan_id)
            changed = edit(record)
            if changed is None:
                return None
            try:
                await self._kv.update(scan_id, _json.encode(changed), last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except (TimeoutError, nats.errors.Error) as exc:
                raise _unavailable(f"update scan {scan_id}", exc) from exc
            return changed
        raise NatsUnavailable(f"scan {scan_id}: {_CAS_ATTEMPTS} writers in a row changed it first")

    async def delete(self, scan_id: str) -> None:
        """Remove a scan's record (one that was never queued)."""
        try:
            await self._kv.delete(scan_id)
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(f"delete scan {scan_id}", exc) from exc

    async def claim(
        self, job_id: str, digest: str, scan_id: str, reusable: Callable[[str], Awaitable[bool]]
    ) -> str:
        """The scan id to answer for a request (`digest`) of a job: `scan_id` if no other scan of it
        is recorded, or if the recorded one is not `reusable`; else that one.
        Raises NatsUnavailable."""
        key = f"req.{job_id}.{digest}"
        for _ in range(_CAS_ATTEMPTS):
            try:
                entry = await self._kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                entry = None
            except (TimeoutError, nats.errors.Error) as exc:
                raise _unavailable("read the scans of the job", exc) from exc
            try:
                if entry is None or entry.value is None:
                    await self._kv.create(key, scan_id.encode())
                    return scan_id
                existing = entry.value.decode()
                if await reusable(existing):
                    return existing
                await self._kv.update(key, scan_id.encode(), last=entry.revision)
                return scan_id
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except (TimeoutError, nats.errors.Error) as exc:
                raise _unavailable("record the scan of the job", exc) from exc
        raise NatsUnavailable(f"job {job_id}: {_CAS_ATTEMPTS} scans in a row started first")

    async def put_piece(self, scan_id: str, index: int, result: PieceResult) -> StoredPiece:
        """Store a piece's result (findings sorted by path, line, rule), overwriting an earlier
        store of the same piece: its findings parts first, then the piece, which names how many
        parts count (a part left over from a longer earlier store is never read)."""
        findings = sorted(result.findings, key=finding_order)
        parts: list[list[ScanFinding]] = []
        size = self._part_bytes
        for finding in findings:
            encoded = len(_pack.encode(finding))
            if not parts or size + encoded > self._part_bytes:
                parts.append([])
                size = 0
            parts[-1].append(finding)
            size += encoded
        named = {finding.rule for finding in findings}
        stored = StoredPiece(
            files=result.files,
            functions=result.functions,
            findings=len(findings),
            parts=[len(part) for part in parts],
            skipped=result.skipped,
            rules={rule: info for rule, info in result.rules.items() if rule in named},
        )
        try:
            for number, part in enumerate(parts):
                await self._kv.put(f"{scan_id}.p.{index}.f.{number}", _pack.encode(part))
            await self._kv.put(f"{scan_id}.p.{index}", _pack.encode(stored))
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(f"store piece {index} of scan {scan_id}", exc) from exc
        return stored

    async def piece(self, scan_id: str, index: int) -> StoredPiece | None:
        """A stored piece (None: not stored)."""
        value = await self._value(f"{scan_id}.p.{index}")
        return None if value is None else _piece.decode(value)

    async def part(self, scan_id: str, index: int, number: int) -> list[ScanFinding]:
        value = await self._value(f"{scan_id}.p.{index}.f.{number}")
        if value is None:
            raise NatsUnavailable(f"scan {scan_id}: piece {index} lost its findings part {number}")
        return _findings.decode(value)

    async def budget_used(self, scan_id: str) -> tuple[tuple[int, int], int]:
        """(functions asked, tokens used) of the scan's model budget, and the key's revision (0: none)."""
        key = f"{scan_id}.budget"
        try:
            entry = await self._kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return (0, 0), 0
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(f"read the budget of scan {scan_id}", exc) from exc
        if entry.value is None:
            return (0, 0), 0
        return _use.decode(entry.value), entry.revision or 0

    async def set_budget_used(self, scan_id: str, used: tuple[int, int], revision: int) -> bool:
        """Write the budget used if it is still at `revision` (0: not yet written); False: it changed."""
        key = f"{scan_id}.budget"
        try:
            if revision == 0:
                await self._kv.create(key, _json.encode(used))
            else:
                await self._kv.update(key, _json.encode(used), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(f"update the budget of scan {scan_id}", exc) from exc
        return True

    async def _value(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(f"read {key}", exc) from exc
        return entry.value


def finding_order(finding: ScanFinding) -> tuple[str, int, str, int, str, str]:
    """The findings' stable order: path, line, rule (then column, fingerprint, message)."""
    return (
        finding.path,
        finding.line or 0,
        finding.rule,
        finding.column or 0,
        finding.fingerprint,
        finding.message,
    )
