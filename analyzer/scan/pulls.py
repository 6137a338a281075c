"""A pull request scan's scope: the fetcher describes the pull request (jobs_contract.pulls), and
the scan then reviews the head commit's functions on the lines the pull request adds or changes.

The analyzer never talks to GitHub itself: the fetcher holds the client (token, host, rate limits).
"""

from __future__ import annotations

import logging

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient

from analyzer.errors import NatsUnavailable
from analyzer.scan.model import PullScope
from jobs_contract.pulls import PULLS_SUBJECT, PullDescription, PullQuery
from review_contract.scan import SkippedFile
from servicekit.text import printable

logger = logging.getLogger("analyzer.scan.pulls")

_description = msgspec.json.Decoder(PullDescription)


class PullNotDescribedError(Exception):
    """The fetcher answered that the pull request cannot be described (not found, rate limited,
    ...): its reason, in its words; asking again will not change it soon."""


class PullDescriber:
    """Asks the fetchers (NATS request-reply on PULLS_SUBJECT) what a pull request changes."""

    def __init__(self, nc: NatsClient, *, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def describe(self, owner: str, repo: str, number: int) -> tuple[str, PullScope]:
        """The pull request's head commit and its scope.

        Raises PullNotDescribedError when the fetcher says why it cannot, and NatsUnavailable (a
        retry may help) when no fetcher answers within ANALYZER_SCAN_PULL_TIMEOUT_S or none listens.
        """
        query = msgspec.json.encode(PullQuery(owner=owner, repo=repo, number=number))
        try:
            reply = await self._nc.request(PULLS_SUBJECT, query, timeout=self._timeout_s)
        except nats.errors.NoRespondersError as exc:
            raise NatsUnavailable(
                "no fetcher answers pull request questions (is a fetcher running?)"
            ) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailable(
                f"no fetcher described pull request {number} within {self._timeout_s:g} s "
                "(ANALYZER_SCAN_PULL_TIMEOUT_S)"
            ) from exc
        try:
            described = _description.decode(reply.data)
        except msgspec.DecodeError as exc:
            raise PullNotDescribedError(
                f"the fetcher's description of pull request {number} is unreadable"
            ) from exc
        if described.error is not None or not described.head_sha:
            raise PullNotDescribedError(
                printable(described.error or f"pull request {number} has no head commit")
            )
        logger.info(
            "pull request %d of %s/%s: head %s, %d Python files changed, %d skipped%s",
            number,
            owner,
            repo,
            described.head_sha[:12],
            len(described.files),
            len(described.skipped),
            " (truncated)" if described.truncated else "",
        )
        return described.head_sha, PullScope(
            lines={changed.path: changed.lines for changed in described.files},
            skipped=[SkippedFile(path=skip.path, reason=skip.reason) for skip in described.skipped],
        )
