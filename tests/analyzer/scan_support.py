"""What the scan tests share: a piece checker that finds every `def` line (so the expected findings
are known from the files alone), a worker analyzer without HTTP, and a subprocess entry point
(`python -m tests.analyzer.scan_support NATS_URL MARKER DELAY_S`) for the kill test."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats

from analyzer.jobs import JobStore
from analyzer.scan.model import ModelBudget, Piece, PieceResult
from analyzer.scan.service import ScanService
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from jobs_contract import ensure_jetstream
from review_contract.checks import RuleInfo
from review_contract.scan import ScanFinding, SkippedFile
from tests.analyzer.helpers import settings_without_gateway

RULE = "test-def"
SEVERITIES = ("error", "warning", "note")


def def_findings(files: Mapping[str, str]) -> list[tuple[str, int, str]]:
    """(path, line, function) of every `def` line of `files`: what DefChecker reports, sorted."""
    found = []
    for path, text in files.items():
        for number, line in enumerate(text.splitlines(), start=1):
            if line.lstrip().startswith("def "):
                found.append((path, number, line.split("def ", 1)[1].split("(")[0]))
    return sorted(found)


class DefChecker:
    """One finding per `def` line, severities in turn (error, warning, note by line number).
    A file holding `# scan-test: raise` fails the piece, one holding `# scan-test: skip` is
    skipped; `delay_s` per piece; `marker` gets a line per piece begun (the kill test waits for
    it); `pieces` lists the indexes this checker finished."""

    def __init__(self, delay_s: float = 0.0, marker: Path | None = None, ask_model: bool = False) -> None:
        self.delay_s = delay_s
        self.marker = marker
        self.ask_model = ask_model
        self.pieces: list[int] = []

    async def check(self, piece: Piece, loaded: LoadedSnapshot, budget: ModelBudget | None) -> PieceResult:
        if self.marker is not None:
            with self.marker.open("a") as marker:
                marker.write(f"{piece.index}\n")
        await asyncio.sleep(self.delay_s)
        findings = []
        skipped = []
        functions = asked = 0
        exhausted = False
        for path in piece.paths:
            data = loaded.snapshot.files[path]
            text = data.decode(errors="replace")
            if "# scan-test: raise" in text:
                raise ValueError(f"the checker refuses {path}")
            if "# scan-test: skip" in text:
                skipped.append(SkippedFile(path=path, reason="over the limits: test"))
                continue
            for _, line, name in def_findings({path: text}):
                functions += 1
                if budget is not None and self.ask_model:
                    if await budget.take():
                        asked += 1
                        await budget.spend(10)
                    else:
                        exhausted = True
                findings.append(
                    ScanFinding(
                        rule=RULE,
                        message=f"{name} is defined here",
                        severity=SEVERITIES[line % 3],  # type: ignore[arg-type]
                        fingerprint=f"{path}:{line}",
                        path=path,
                        function=name,
                        line=line,
                    )
                )
        self.pieces.append(piece.index)
        return PieceResult(
            files=len(piece.paths) - len(skipped),
            functions=functions,
            findings=findings,
            skipped=skipped,
            rules={RULE: RuleInfo(name="def", summary="A function is defined.")} if findings else {},
            functions_asked=asked,
            tokens_used=asked * 10,
            budget_exhausted=exhausted,
        )


@asynccontextmanager
async def worker_analyzer(
    nats_url: str, checker: DefChecker | None, **settings: Any
) -> AsyncGenerator[ScanService]:
    """A ScanService on a NATS connection of its own (as another analyzer process has): its
    workers take pieces when `checker` is given."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        stores = await ensure_jetstream(js)
        jobs = JobStore(js, stores.kv)
        snapshots = SnapshotCache(js, stores.repos, max_entries=4, max_bytes=1_000_000_000)
        values = {"analyzer_scan_ack_wait_s": 2.0, **settings}
        async with ScanService(
            client, jobs, snapshots, checker, settings_without_gateway(nats_url, **values), repos=stores.repos
        ) as scans:
            yield scans
    finally:
        await client.close()


async def _serve(nats_url: str, marker: Path, delay_s: float) -> None:
    async with worker_analyzer(nats_url, DefChecker(delay_s=delay_s, marker=marker)):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
