"""Copy the streams of one NATS (a single server's store) into another (a cluster): nothing lost.

nats-server does not adopt a single server's streams into a cluster: a cluster started on the old
store folder does not see them, and the analyzer then creates new, empty ones. So the move is a
copy, made while both run (the old server on its old store, the cluster on new ones):

    python -m jobs_contract.migrate --source nats://old:4222 --target nats://n1:4222,nats://n2:4222

Every stream of the source is copied message by message, in order, with its subject and headers
(a KV entry, an Object Store chunk or metadata, a queued fetch request, a cached review are each
one message), into the stream of the same name on the target: created from the source's
configuration with `--replicas` copies when missing (the analyzer's own, when it started first).
A target stream that already holds messages is left alone (a copy made twice would double every
queued request) unless `--into-nonempty`. Ages start again on the target (NATS stamps a message
when it is stored), so kept data lives up to one max age longer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import nats
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

log = logging.getLogger("jobs_contract.migrate")

# Headers the target sets itself (or that would make it drop the copy as a duplicate / refuse it).
_SERVER_HEADERS = frozenset(
    {"Nats-Expected-Last-Subject-Sequence", "Nats-Expected-Last-Sequence", "Nats-Expected-Stream"}
)


@dataclass(frozen=True)
class Copied:
    stream: str
    messages: int
    skipped: bool = False


async def copy_stream(
    source: JetStreamContext,
    target: JetStreamContext,
    stream: str,
    replicas: int,
    *,
    into_nonempty: bool = False,
) -> Copied:
    """Copy `stream`'s messages from `source` to `target` (created there with `replicas` copies if
    missing). Raises nats errors when either side does not answer."""
    info = await source.stream_info(stream)
    try:
        held = (await target.stream_info(stream)).state.messages
    except NotFoundError:
        config = info.config
        config.num_replicas = replicas
        await target.add_stream(config)
        held = 0
    if held and not into_nonempty:
        log.warning("the stream %s already holds %d messages on the target: not copied", stream, held)
        return Copied(stream, 0, skipped=True)
    copied = 0
    sequence = info.state.first_seq
    while sequence <= info.state.last_seq:
        try:
            message = await source.get_msg(stream, seq=sequence, next=True)
        except NotFoundError:
            break  # nothing at or after `sequence`: the rest was deleted meanwhile
        headers = {key: value for key, value in (message.headers or {}).items() if key not in _SERVER_HEADERS}
        # A work queue's request keeps its Nats-Msg-Id: the target's duplicate window drops a copy
        # of a request the analyzer publishes again meanwhile.
        await target.publish(
            message.subject or "", message.data or b"", stream=stream, headers=headers or None
        )
        copied += 1
        sequence = (message.seq or sequence) + 1
    return Copied(stream, copied)


async def migrate(
    source_url: str, target_url: str, replicas: int, *, into_nonempty: bool = False
) -> list[Copied]:
    """Copy every stream of the NATS at `source_url` into the one at `target_url`."""
    source = await nats.connect(source_url.split(","), connect_timeout=5, max_reconnect_attempts=3)
    try:
        target = await nats.connect(target_url.split(","), connect_timeout=5, max_reconnect_attempts=3)
        try:
            source_js, target_js = source.jetstream(timeout=10), target.jetstream(timeout=10)
            names = [info.config.name for info in await source_js.streams_info() if info.config.name]
            results = []
            for name in names:
                result = await copy_stream(source_js, target_js, name, replicas, into_nonempty=into_nonempty)
                log.info(
                    "%s: %s",
                    name,
                    "skipped (not empty)" if result.skipped else f"{result.messages} messages copied",
                )
                results.append(result)
            return results
        finally:
            await target.close()
    finally:
        await source.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs_contract.migrate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--source", required=True, help="the old NATS (a single server on its old store)")
    parser.add_argument("--target", required=True, help="the new NATS: a cluster's servers, comma-separated")
    parser.add_argument(
        "--replicas", type=int, default=3, help="copies of a stream created on the target (NATS_REPLICAS)"
    )
    parser.add_argument(
        "--into-nonempty", action="store_true", help="also copy into target streams that hold messages"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        results = asyncio.run(
            migrate(args.source, args.target, args.replicas, into_nonempty=args.into_nonempty)
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        log.error("migration failed: %r", exc)
        return 1
    return 1 if any(result.skipped for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
