"""The model budget of one scan, shared by all its workers through the `scans` bucket."""

from __future__ import annotations

from analyzer.errors import NatsUnavailable
from analyzer.scan.store import ScanStore

_CAS_ATTEMPTS = 200


class KvBudget:
    """A `ModelBudget` kept under `<scan_id>.budget` and changed only by compare-and-set, so workers
    taking at the same time, in any processes, never let more than `max_functions` functions be
    asked, and none once `max_tokens` are spent (None: no bound). `exhausted` is True once this
    budget refused a function."""

    def __init__(
        self, store: ScanStore, scan_id: str, *, max_functions: int | None, max_tokens: int | None
    ) -> None:
        self._store = store
        self._scan_id = scan_id
        self.max_functions = max_functions
        self.max_tokens = max_tokens
        self.exhausted = False

    async def take(self) -> bool:
        """True: one more function may be asked the model, and it is counted. False: the budget is
        spent (functions or tokens). Raises NatsUnavailable (503) when NATS does not answer."""
        for _ in range(_CAS_ATTEMPTS):
            (asked, tokens), revision = await self._store.budget_used(self._scan_id)
            if (self.max_functions is not None and asked >= self.max_functions) or (
                self.max_tokens is not None and tokens >= self.max_tokens
            ):
                self.exhausted = True
                return False
            if await self._store.set_budget_used(self._scan_id, (asked + 1, tokens), revision):
                return True
        raise NatsUnavailable(f"scan {self._scan_id}: its budget kept changing under {_CAS_ATTEMPTS} tries")

    async def spend(self, tokens: int) -> None:
        """Count `tokens` the model used. Raises NatsUnavailable (503) when NATS does not answer."""
        if tokens <= 0:
            return
        for _ in range(_CAS_ATTEMPTS):
            (asked, used), revision = await self._store.budget_used(self._scan_id)
            if await self._store.set_budget_used(self._scan_id, (asked, used + tokens), revision):
                return
        raise NatsUnavailable(f"scan {self._scan_id}: its budget kept changing under {_CAS_ATTEMPTS} tries")

    async def used(self) -> tuple[int, int]:
        """(functions asked, tokens used) so far, by all workers."""
        return (await self._store.budget_used(self._scan_id))[0]
