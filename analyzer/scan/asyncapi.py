"""The AsyncAPI 3.0 document of the scan's NATS traffic (docs/analyzer-asyncapi.json): the work
queue of starts and pieces the analyzers share, and the events for outside subscribers.

`python -m analyzer.scan.asyncapi [FILE]` writes it (stdout without FILE); a test keeps the
committed copy current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from analyzer.scan.events import COMPLETED, FAILED, PROGRESS
from analyzer.scan.model import Piece, ScanStart
from jobs_contract.messages import (
    SCAN_DURABLE,
    SCAN_EVENTS_PREFIX,
    SCAN_PIECE_SUBJECT,
    SCAN_START_SUBJECT,
    SCAN_STREAM,
)
from review_contract.scan import ScanStatus

_QUEUE = (
    f"Work queue (stream {SCAN_STREAM}, durable pull consumer {SCAN_DURABLE}, shared by every "
    "analyzer's scan workers)"
)
_CHANNELS: list[tuple[str, str, type[Any], str, str]] = [
    (
        "scan starts",
        SCAN_START_SUBJECT,
        ScanStart,
        "receive",
        f"{_QUEUE}: one ScanStart per scan, published by the analyzer that accepted POST /analyze/scan "
        "with Nats-Msg-Id = `<scan_id>.start`; a worker waits for the job, cuts its files into pieces "
        "and queues them.",
    ),
    (
        "scan pieces",
        SCAN_PIECE_SUBJECT,
        Piece,
        "receive",
        f"{_QUEUE}: one Piece (a batch of files) per message, Nats-Msg-Id = `<scan_id>.<index>`; "
        "acknowledged once its result is stored, redelivered if its worker dies.",
    ),
    (
        "scan progress",
        f"{SCAN_EVENTS_PREFIX}.{{scan_id}}.{PROGRESS}",
        ScanStatus,
        "send",
        "ScanStatus: the scan went running, or counted a piece (at most every "
        "ANALYZER_SCAN_PROGRESS_EVERY_S per analyzer). Core NATS, for outside subscribers.",
    ),
    (
        "scan completed",
        f"{SCAN_EVENTS_PREFIX}.{{scan_id}}.{COMPLETED}",
        ScanStatus,
        "send",
        "ScanStatus: every piece is counted; published once, by the worker that counted the last.",
    ),
    (
        "scan failed",
        f"{SCAN_EVENTS_PREFIX}.{{scan_id}}.{FAILED}",
        ScanStatus,
        "send",
        "ScanStatus with `error`: the job failed, the scan is over the limits, or a piece kept failing.",
    ),
]


def asyncapi_document() -> dict[str, Any]:
    """The document, built from the message structs themselves."""
    types = [shape for _, _, shape, _, _ in _CHANNELS]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for (name, address, shape, action, description), schema in zip(_CHANNELS, schemas, strict=True):
        ref = name.replace(" ", "%20")
        channels[name] = {
            "address": address,
            "description": description,
            "servers": [{"$ref": "#/servers/development"}],
            "messages": {"Message": {"$ref": f"#/components/messages/{ref}:Message"}},
            "bindings": {"nats": {"subject": address, "bindingVersion": "custom"}},
        }
        operations[name] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{ref}"},
            "messages": [{"$ref": f"#/channels/{ref}/messages/Message"}],
        }
        messages[f"{name}:Message"] = {"title": f"{name}:Message", "name": shape.__name__, "payload": schema}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "codereview analyzer scans",
            "version": "0.1.0",
            "description": "Scans of whole repository jobs (POST /analyze/scan): starts and pieces on a "
            "JetStream work queue any number of analyzers share, results in the KV bucket `scans`, and "
            "progress, completion and failure announced per scan.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "development": {
                "host": "127.0.0.1:4222",
                "pathname": "",
                "protocol": "nats",
                "protocolVersion": "custom",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }


def main(argv: list[str]) -> None:
    text = json.dumps(asyncapi_document(), indent=2) + "\n"
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
