"""Close names that exist, for a name that does not: what a 404 offers instead.

The search parses at most a few files, so a typo stays cheap on a large repository.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from analyzer.locate.files import SourceFile
from analyzer.locate.tables import Parsed, star_exports

if TYPE_CHECKING:
    # The index calls this module; this module reads the index's tables.
    from analyzer.locate.resolver import SnapshotIndex

MAX_SUGGESTIONS = 5
# How many files a suggestion search may parse, per kind of typo: a 404 stays cheap.
_SUGGEST_FILES = 5
# How many re-exported names close to the one asked for a suggestion search follows, per module.
_SUGGEST_REEXPORTS = 3


def _reexported_names(index: SnapshotIndex, file: SourceFile, parsed: Parsed, wanted: str) -> dict[str, str]:
    """Public names `file` imports or lists in `__all__` that look like `wanted`, and the members
    of each (`httpx.Client`, `httpx.Client.send`), each -> the name where it is defined: only
    the few closest are followed."""
    listed = set(parsed.bindings).union(parsed.exports or ())
    # And what its star imports bring (the walk that failed has parsed those modules already).
    for level, module in parsed.stars:
        for target in index._module_files(file, level, module)[:1]:
            table = index._parse(target.path)
            if isinstance(table, Parsed):
                listed.update(n for n in (*table.definitions, *table.bindings) if star_exports(table, n))
    public = sorted(name for name in listed if not name.startswith("_") and name not in parsed.definitions)
    names: dict[str, str] = {}
    for name in difflib.get_close_matches(wanted, public, n=_SUGGEST_REEXPORTS, cutoff=0.6):
        found = index._resolve(file, [name], 0)
        if found is None:
            continue
        shown = ".".join([*file.display_module, name])
        names[shown] = found.qualified_name
        defining = index._parsed.get(found.path)
        if isinstance(defining, Parsed):
            inner = found.qualified_name.split(".")[len(index._files[found.path].display_module) :]
            prefix = ".".join(inner) + "."
            for q in defining.definitions:
                if q.startswith(prefix):
                    names[shown + "." + q[len(prefix) :]] = found.qualified_name + "." + q[len(prefix) :]
    return names


def suggest(index: SnapshotIndex, parts: list[str], names: Mapping[str, Iterable[str]]) -> list[str]:
    """Up to five dotted names that exist and look most like the one asked for; `names` is every
    `def`/`class` name of the snapshot's text -> the files it appears in (`LocalSearch.names`).

    Parses at most a few files: the modules the name's prefix points to (a typo in the
    function's name), and the files defining names close to its last part whose module looks
    most like the one asked for (a typo in the module part, or both).
    """
    wanted = ".".join(parts)
    pool: set[str] = set()
    prefix_files: list[tuple[SourceFile, int]] = []
    for split in range(len(parts), 0, -1):
        module = tuple(parts[:split])
        for table in (index._by_module, index._by_root_module, index._by_suffix):
            prefix_files.extend((f, split) for f in sorted(table.get(module, ()), key=lambda f: f.rank))
    seen: set[str] = set()
    # Where a re-exported public name is defined -> the public name.
    public_names: dict[str, str] = {}
    for file, split in prefix_files:
        if file.path in seen or len(seen) == _SUGGEST_FILES:
            continue
        seen.add(file.path)
        parsed = index._parse(file.path)
        if isinstance(parsed, Parsed):
            pool.update(".".join([*file.display_module, q]) for q in parsed.definitions)
            if split < len(parts):
                reexported = _reexported_names(index, file, parsed, parts[split])
                pool.update(reexported)
                public_names.update((defining, public) for public, defining in reexported.items())

    last = parts[-1]
    # A ratio of at least 0.75 needs lengths within 0.6x to 1.67x of each other: checking that
    # first spares difflib most of the vocabulary.
    shortest, longest = 0.6 * len(last), len(last) / 0.6
    vocabulary = [n for n in names if shortest <= len(n) <= longest]
    close = difflib.get_close_matches(last, vocabulary, n=6, cutoff=0.75)
    lowered = last.lower()
    close += [n for n in vocabulary if len(n) == len(last) and n.lower() == lowered and n not in close]
    wanted_module = ".".join(parts[:-1])
    holders: dict[str, list[str]] = {}
    for name in close:
        for path in names[name]:
            holders.setdefault(path, []).append(name)

    def likeness(path: str) -> tuple[float, tuple[int, int, int, int, str]]:
        file = index._files[path]
        module = ".".join(file.display_module)
        return (-difflib.SequenceMatcher(None, wanted_module, module).ratio(), file.rank)

    for path in sorted(holders, key=likeness)[: 2 * _SUGGEST_FILES]:
        file = index._files[path]
        parsed = index._parse(path)
        if not isinstance(parsed, Parsed):
            continue
        for name in holders[path]:
            pool.update(
                ".".join([*file.display_module, q])
                for q in parsed.definitions
                if q == name or q.endswith("." + name)
            )
    pool.discard(wanted)
    ranked = _closest(wanted, len(parts), pool)
    # A public name stands for its definition: not both among the suggestions.
    listed = set(ranked)
    return [name for name in ranked if public_names.get(name) not in listed][:MAX_SUGGESTIONS]


def _closest(wanted: str, depth: int, pool: Iterable[str]) -> list[str]:
    lowered = wanted.lower()
    scored: list[tuple[float, int, str]] = []
    for candidate in pool:
        tail = ".".join(candidate.split(".")[-depth:]).lower()
        score = max(
            difflib.SequenceMatcher(None, lowered, candidate.lower()).ratio(),
            difflib.SequenceMatcher(None, lowered, tail).ratio(),
        )
        if score >= 0.6:
            scored.append((-score, len(candidate), candidate))
    scored.sort()
    return [candidate for _, _, candidate in scored]
