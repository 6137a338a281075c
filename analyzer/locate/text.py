"""The `def name` / `class name` of a snapshot's text: which files may define a name, and close names.

What a lookup asks of the whole snapshot, not of one parsed file: the files whose bytes have
`def name` or `class name` (an over-inclusive filter: parsing decides), and for a 404 the close
names that exist. Over a large snapshot this is CPU work proportional to its size (an index of
300k names takes most of a second), so a server does it through a `Search` that runs in a worker
process (analyzer.searching); `LocalSearch` is the same work in this process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from analyzer.locate import suggest
from analyzer.locate.names import normalize
from analyzer.locate.tables import collector_paused
from analyzer.sources import SourceDecodeError, decode_source

if TYPE_CHECKING:
    # The index calls this module; this module reads the index's files.
    from analyzer.locate.resolver import SnapshotIndex

# `def name` / `class name` anywhere in the bytes: a cheap, over-inclusive filter that says which
# files may define a name (parsing decides). Two plain patterns beat one alternation: each keeps
# the literal prefix the regex engine scans for.
_DEF_NAMES = re.compile(rb"def[ \t]+([A-Za-z_\x80-\xff][\w\x80-\xff]*)")
_CLASS_NAMES = re.compile(rb"class[ \t]+([A-Za-z_\x80-\xff][\w\x80-\xff]*)")
_TEXT_NAMES = re.compile(r"(?:def|class)[ \t]+([^\W\d]\w*)")
# Names looked up by scanning the bytes before the index of every name is built instead.
_SCANS_BEFORE_INDEX = 4
# Bytes one regex call scans at most (cut at a line end): a call holds the GIL throughout, so a
# scan of a huge file is cut into pieces, and other threads get their turn between them.
_SCAN_PIECE = 256 * 1024


class Search(Protocol):
    """What a `SnapshotIndex` asks of its snapshot's whole text."""

    def holders(self, name: str, within: tuple[str, ...] | None) -> frozenset[str]:
        """The files (of `within`, or all) whose text has `def name` or `class name`."""
        ...

    def suggest(self, parts: list[str]) -> list[str]:
        """Up to five dotted names that exist and look most like `parts` (see `suggest.suggest`)."""
        ...


class LocalSearch:
    """`Search` in this process, over the files of `index`. Safe to share between threads."""

    def __init__(self, index: SnapshotIndex, files: Mapping[str, bytes]) -> None:
        self._index = index
        self._data = files
        self._lock = threading.Lock()
        self._names: dict[str, set[str]] | None = None
        self._scanned: set[str] = set()

    def holders(self, name: str, within: tuple[str, ...] | None) -> frozenset[str]:
        """An over-inclusive filter: parsing decides whether a definition is real. The first few
        names are each found by one scan of the bytes (tens of ms on the stdlib, so a first lookup
        stays fast); after that the index of every name is built once (about 100 ms)."""
        scan = within is not None or len(self._scanned) < _SCANS_BEFORE_INDEX
        if self._names is not None or not name.isascii() or not scan:
            found = frozenset(self.names().get(name, ()))
            return found if within is None else found.intersection(within)
        if within is None:
            self._scanned.add(name)
        needle = name.encode("ascii")
        tail = re.escape(needle) + rb"(?![\w\x80-\xff])"
        # Two patterns, each with a literal prefix the regex engine can skip ahead to.
        patterns = (re.compile(rb"def[ \t]+" + tail), re.compile(rb"class[ \t]+" + tail))
        return frozenset(
            path
            for path in (self._index.python_paths() if within is None else within)
            if needle in (data := self._data[path])
            and any(p.search(piece) for piece in _pieces(data) for p in patterns)
        )

    def suggest(self, parts: list[str]) -> list[str]:
        return suggest.suggest(self._index, parts, self.names())

    def names(self) -> dict[str, set[str]]:
        """Every `def`/`class` name that appears in the text -> the files it appears in."""
        names = self._names
        if names is not None:
            return names
        with self._lock:
            if self._names is not None:
                return self._names
            names = {}
            with collector_paused():
                for path in self._index.python_paths():
                    for name in self._scan_names(path):
                        holders = names.get(name)
                        if holders is None:
                            names[name] = {path}
                        else:
                            holders.add(path)
            self._names = names
        return names

    def _scan_names(self, path: str) -> set[str]:
        data = self._data[path]
        raw: set[bytes] = set()
        for piece in _pieces(data):
            raw.update(_DEF_NAMES.findall(piece))
            raw.update(_CLASS_NAMES.findall(piece))
        if all(item.isascii() for item in raw):
            return {item.decode("ascii") for item in raw}
        # Non-ASCII names: read them from the decoded text, whatever the file's encoding.
        try:
            text = decode_source(data)
        except SourceDecodeError:
            text = data.decode("utf-8", errors="replace")
        return {normalize(name) for name in _TEXT_NAMES.findall(text)}


def _pieces(data: bytes) -> Iterator[bytes | memoryview]:
    """`data` in pieces of about `_SCAN_PIECE` bytes, each ending at a line end (a `def name`
    never spans one): no copies, and no piece at all for a small file."""
    if len(data) <= _SCAN_PIECE:
        yield data
        return
    view = memoryview(data)
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + _SCAN_PIECE)
        end = len(data) if end < 0 else end + 1
        yield view[start:end]
        start = end
